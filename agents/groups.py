"""Built-in groups, kept in step with the installed models after every migrate."""

from __future__ import annotations

from typing import Any

AUDITORS = "Auditors"


def groups_sync(sender: Any = None, **kwargs: Any) -> None:
    """Auditors may view every model of the console and change nothing."""
    from django.contrib.auth.models import Group, Permission

    auditors, _ = Group.objects.get_or_create(name=AUDITORS)
    view = Permission.objects.filter(codename__startswith="view_").exclude(
        content_type__app_label__in=["sessions", "contenttypes"]
    )
    auditors.permissions.set(view)
