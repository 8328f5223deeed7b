"""Pieces the console's admins share: read-only logs, exports of the filtered list, filters."""

from __future__ import annotations

import json
import operator
from functools import reduce
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from agents.exports import FORMATS, export_response
from agents.registry import subject_url, toolset_list
from agents.selectors import json_pretty, json_readable, toolset_label


class LeanChangeList(ChangeList):
    """A changelist that leaves unread the big columns its ModelAdmin names in `list_defer`."""

    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        return queryset.defer(*self.model_admin.list_defer)


class LeanListMixin:
    """List pages skip conversations, replies and results: they never show them in full."""

    list_defer: tuple[str, ...] = ()

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return LeanChangeList


class JsonSearchMixin:
    """Search JSON columns for text as it is stored there, escaped, as well as verbatim."""

    # JSON text escapes what sits inside a string value: quotes always, and on SQLite every
    # non-ASCII letter (Django writes with ensure_ascii). A search for `Müller` or `"stock": 10`
    # would miss those rows verbatim; the escaped spelling of the terms finds them.
    json_search_fields: tuple[str, ...] = ()

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        escaped = json.dumps(search_term.strip())[1:-1]
        if not self.json_search_fields or escaped == search_term.strip():
            return results, may_have_duplicates
        match = Q()
        for term in escaped.split():
            match &= reduce(
                operator.or_, (Q(**{f"{f}__icontains": term}) for f in self.json_search_fields)
            )
        return results | queryset.filter(match), may_have_duplicates


class ReadOnlyAdmin(JsonSearchMixin, LeanListMixin, admin.ModelAdmin):
    """An append-only log: rows can be listed and opened, never added, changed or deleted."""

    actions = None

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ExportMixin:
    """Add CSV and JSON Lines exports of the changelist as currently filtered and searched."""

    change_list_template = "admin/agents/change_list_export.html"
    # Column name in the file -> lookup on the model.
    export_columns: dict[str, str] = {}
    export_name = ""

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        urls = [
            path(
                "export/<str:fmt>/",
                self.admin_site.admin_view(self.export_view),
                name="{}_{}_export".format(*info),
            )
        ]
        return urls + super().get_urls()

    def export_view(self, request: HttpRequest, fmt: str) -> HttpResponse:
        """Stream every row the changelist would show for this query string, not one page."""
        if fmt not in FORMATS:
            raise Http404(f"No export format {fmt!r}.")
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            info = self.opts.app_label, self.opts.model_name
            return HttpResponseRedirect(reverse("admin:{}_{}_changelist".format(*info)) + "?e=1")
        return export_response(
            queryset=changelist.queryset,
            columns=self.export_columns,
            fmt=fmt,
            filename=self.export_name or self.opts.model_name,
        )


class ToolsetFilter(admin.SimpleListFilter):
    """Filter by agent: the toolsets registered with the engine."""

    title = "agent"
    parameter_name = "toolset"
    field_path = "toolset"

    def lookups(self, request, model_admin):
        return [(ts.name, ts.label) for ts in toolset_list()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.field_path: self.value()})
        return queryset


class RunToolsetFilter(ToolsetFilter):
    field_path = "run__toolset"


def json_block(value: Any) -> str:
    """Render a JSON value readably, in a block that keeps its line breaks."""
    if value is None:
        return "—"
    return format_html('<pre class="cs-json">{}</pre>', json_readable(value))


def backend_badge(backend: str) -> str:
    """Show the model backend, with replays visibly marked as stand-ins."""
    if backend == "replay":
        return mark_safe(
            '<span class="cs-badge cs-standin" title="Recorded replies, not Claude">replay</span>'
        )
    return backend


def run_link(run_id: int | None, toolset: str = "") -> str:
    if run_id is None:
        return "—"
    url = reverse("admin:agents_agentrun_change", args=[run_id])
    label = f"Run #{run_id}" + (f" · {toolset_label(toolset)}" if toolset else "")
    return format_html('<a href="{}">{}</a>', url, label)


class ToolNameFilter(admin.SimpleListFilter):
    """Filter by tool: every tool the registered toolsets declare."""

    title = "tool"
    parameter_name = "tool"
    field_path = "tool_name"

    def lookups(self, request, model_admin):
        names = sorted({name for ts in toolset_list() for name in ts.tools})
        return [(name, name) for name in names]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.field_path: self.value()})
        return queryset


def seconds(value: Any) -> str:
    """A time to the second, in the console's time zone, for list columns."""
    if value is None:
        return "—"
    return format_html(
        '<span class="cs-nowrap">{}</span>', f"{timezone.localtime(value):%Y-%m-%d %H:%M:%S}"
    )


def ellipsis(value: Any, limit: int = 80) -> str:
    """One line of at most `limit` characters, the whole text on hover."""
    text = value if isinstance(value, str) else json_pretty(value)
    line = short(text, limit)
    if line == " ".join(text.split()):
        return format_html('<span class="cs-cell">{}</span>', line)
    return format_html('<span class="cs-cell" title="{}">{}</span>', text[:2000], line)


def url_pk(value: Any) -> int:
    """An integer id from a URL, or 0 (no row) for anything that is not one."""
    # str.isdigit() accepts "²", which int() refuses; and SQLite's integers stop at 2**63.
    try:
        number = int(str(value).strip()) if str(value).strip().isascii() else 0
    except (TypeError, ValueError):
        return 0
    return number if 0 < number < 2**63 else 0


def short(value: Any, limit: int = 80) -> str:
    """Return one line of at most `limit` characters, for list columns."""
    text = value if isinstance(value, str) else json_pretty(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def subject_link(subject_type: str, subject_id: str) -> str:
    """What a row is about, linked to its page when its domain registered one."""
    label = f"{subject_type.rpartition('.')[2]} #{subject_id}" if subject_id else subject_type
    if not label:
        return "—"
    url = subject_url(subject_type, subject_id)
    return format_html('<a href="{}">{}</a>', url, label) if url else label
