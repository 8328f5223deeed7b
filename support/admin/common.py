"""Pieces the support desk's admin pages share."""

from __future__ import annotations


class ReadOnlyMixin:
    """Rows are listed and opened; they change only through services."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
