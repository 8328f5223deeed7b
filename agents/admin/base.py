"""Pieces the console's admins share: read-only logs, exports of the filtered list, filters,
and what keeps a list fast at a million rows (counts that stop counting, search the indexes
serve, filters whose choices cost no scan)."""

from __future__ import annotations

import json
import operator
from functools import reduce
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from agents.exports import FORMATS, export_response
from agents.llm import BACKENDS
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


# A count stops here; past it the list says "about" and shows the planner's estimate.
COUNT_CAP = 10_000
# A page of a list longer than this is read by id first (EstimatedCountPaginator.page).
IDS_FIRST_OVER = 1_000
# A search of a related table (users, tickets) becomes a list of ids up to this many.
RELATED_IDS_CAP = 500


class EstimatedCountPaginator(Paginator):
    """Count at most COUNT_CAP rows; past that, PostgreSQL's estimate (`estimated` is True).

    An exact COUNT(*) of a million rows reads them all, on every page; a person paging a list
    needs "about 1,000,000" and the first pages. On SQLite (the embedded default, small) it
    counts exactly.
    """

    estimated = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return super().count
        # Only the ids: an annotation (a ticket's message count) would be worked out per row.
        bounded = queryset.order_by().values("pk")[: COUNT_CAP + 1].count()
        if bounded <= COUNT_CAP:
            return bounded
        self.estimated = True
        return max(self._estimate(queryset, connection), COUNT_CAP + 1)

    def page(self, number: Any) -> Any:
        """The page's rows by id first, then the rows and what they show by those ids.

        Sorting the matches and joining only the hundred shown costs less than joining every
        match (its run, its user, its call) before sorting, which PostgreSQL does when it
        thinks a search matches a few rows and it matches thousands.
        """
        big = self.count > IDS_FIRST_OVER  # below it, joining every match costs little
        if connections[self.object_list.db].vendor != "postgresql" or self.orphans or not big:
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        ids = list(self.object_list.values_list("pk", flat=True)[bottom : bottom + self.per_page])
        rows = {row.pk: row for row in self.object_list.order_by().filter(pk__in=ids)}
        return self._get_page([rows[pk] for pk in ids if pk in rows], number, self)

    @staticmethod
    def _estimate(queryset: QuerySet, connection: Any) -> int:
        if not queryset.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [queryset.model._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0] > 0:
                return int(row[0])
        plan = json.loads(queryset.order_by().explain(format="json"))
        return int(plan[0]["Plan"]["Plan Rows"])


class IndexedSearchMixin:
    """Search that indexes can serve: text columns, JSON as text, related rows by their ids.

    `search_fields` name this model's own columns (each has a trigram index on PostgreSQL, see
    the console index migrations); `search_related` maps a foreign key to fields of the row it
    points to, searched there first and matched here by id, so that every condition stays on
    this table and the indexes can be combined (a condition across a join makes PostgreSQL
    read the whole table).
    """

    # JSON text escapes what sits inside a string value: quotes always, and on SQLite every
    # non-ASCII letter (Django writes with ensure_ascii). A search for `Müller` or `"stock": 10`
    # would miss those rows verbatim; the escaped spelling of the terms finds them.
    json_search_fields: tuple[str, ...] = ()
    search_related: dict[str, tuple[str, ...]] = {}

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        terms = search_term.split()
        if self.search_related and terms:
            results = results | queryset.filter(self._related_match(terms))
        escaped = json.dumps(search_term.strip())[1:-1]
        if not self.json_search_fields or escaped == search_term.strip():
            return results, may_have_duplicates
        match = Q()
        for term in escaped.split():
            match &= reduce(
                operator.or_, (Q(**{f"{f}__icontains": term}) for f in self.json_search_fields)
            )
        return results | queryset.filter(match), may_have_duplicates

    def _related_match(self, terms: list[str]) -> Q:
        """Rows whose related row matches every term (in any of its searched fields)."""
        match = Q()
        for fk, fields in self.search_related.items():
            related = self.model._meta.get_field(fk).related_model._default_manager
            found = related.all()
            for term in terms:
                found = found.filter(
                    reduce(operator.or_, (Q(**{f"{f}__icontains": term}) for f in fields))
                )
            ids = list(found.order_by().values_list("pk", flat=True)[: RELATED_IDS_CAP + 1])
            # Past the cap, the subquery: slower, but it finds every row.
            match |= Q(**{f"{fk}__in": ids if len(ids) <= RELATED_IDS_CAP else found.values("pk")})
        return match


class ScaleMixin:
    """What a list of a large table needs: capped counts, no full count, no facet counts."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER


class ReadOnlyAdmin(ScaleMixin, IndexedSearchMixin, LeanListMixin, admin.ModelAdmin):
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


class FieldFilter(admin.SimpleListFilter):
    """Filter one field (`field_path`) by the value chosen; with none chosen, every row."""

    field_path = ""

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.field_path: self.value()})
        return queryset


class ToolsetFilter(FieldFilter):
    """Filter by agent: the toolsets registered with the engine."""

    title = "agent"
    parameter_name = "toolset"
    field_path = "toolset"

    def lookups(self, request, model_admin):
        return [(ts.name, ts.label) for ts in toolset_list()]


class RunToolsetFilter(ToolsetFilter):
    field_path = "run__toolset"


class FixedChoicesFilter(admin.SimpleListFilter):
    """Filter a column by values known in advance: listing them costs no query."""

    values: tuple[tuple[str, str], ...] = ()

    def lookups(self, request, model_admin):
        return list(self.values)

    def queryset(self, request, queryset):
        if self.value() is not None:
            return queryset.filter(**{self.parameter_name: self.value()})
        return queryset


class BackendFilter(FixedChoicesFilter):
    title = "backend"
    parameter_name = "backend"
    values = tuple((name, name) for name in BACKENDS)


class IndexedValuesFilter(FixedChoicesFilter):
    """Filter by the values a column holds, found by walking its index, not by DISTINCT.

    A DISTINCT over a million rows reads them all; on PostgreSQL a recursive query asks the
    index for the next larger value, once per value (a loose index scan), so ten values cost
    ten index probes. The column needs a B-tree index.
    """

    def lookups(self, request, model_admin):
        model = model_admin.model
        column = model._meta.get_field(self.parameter_name).column
        connection = connections[model_admin.get_queryset(request).db]
        if connection.vendor != "postgresql":
            values = (
                model._default_manager.order_by(self.parameter_name)
                .values_list(self.parameter_name, flat=True)
                .distinct()
            )
            return [(v, v or "(none)") for v in values]
        table, col = (connection.ops.quote_name(n) for n in (model._meta.db_table, column))
        sql = (
            f"WITH RECURSIVE v(x) AS ((SELECT {col} FROM {table} ORDER BY {col} LIMIT 1) "
            f"UNION ALL SELECT (SELECT {col} FROM {table} WHERE {col} > v.x ORDER BY {col} "
            f"LIMIT 1) FROM v WHERE v.x IS NOT NULL) SELECT x FROM v WHERE x IS NOT NULL"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return [(v, v or "(none)") for (v,) in cursor.fetchall()]


class StaffFilter(admin.RelatedFieldListFilter):
    """Filter by a person: the staff (a short list), not a DISTINCT over every row."""

    def field_choices(self, field, request, model_admin):
        ordering = self.field_admin_ordering(field, request, model_admin)
        return field.get_choices(
            include_blank=False, limit_choices_to={"is_staff": True}, ordering=ordering
        )


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


class ToolNameFilter(FieldFilter):
    """Filter by tool: every tool the registered toolsets declare."""

    title = "tool"
    parameter_name = "tool"
    field_path = "tool_name"

    def lookups(self, request, model_admin):
        names = sorted({name for ts in toolset_list() for name in ts.tools})
        return [(name, name) for name in names]


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
