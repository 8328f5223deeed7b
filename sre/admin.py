"""The SRE watchdog in the console: log sources (editable), incidents and counts (read-only).

Log text is untrusted: it is always rendered escaped (format_html, `<pre>`), never marked safe.
Admin actions call services; they hold no logic.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from agents.admin.base import LeanListMixin, ScaleMixin, url_pk
from agents.services.errors import InvalidTransition
from sre import selectors, services
from sre.dashboard import incident_chart_html
from sre.models import Incident, LogSource, PatchProposal, Spike, TrafficWindow


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _pre(text: str) -> str:
    return format_html(
        '<pre style="white-space:pre-wrap;max-height:40em;overflow:auto">{}</pre>', text
    )


@admin.register(LogSource)
class LogSourceAdmin(admin.ModelAdmin):
    list_display = ("path", "kind", "enabled", "from_env", "position", "unparsed", "scanned_at")
    list_filter = ("kind", "enabled", "from_env")
    list_select_related = ("checkpoint",)
    search_fields = ("path",)
    readonly_fields = ("from_env", "checkpoint_details", "unparsed_samples", "created_at")
    actions = ("scan_now",)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.from_env:
            # Managed by SRE_LOG_SOURCES: change it there.
            fields += ["kind", "path", "enabled"]
        return fields

    def _checkpoint(self, obj: LogSource):
        try:
            return obj.checkpoint
        except LogSource.checkpoint.RelatedObjectDoesNotExist:
            return None

    @admin.display(description="Read up to")
    def position(self, obj: LogSource) -> str:
        cp = self._checkpoint(obj)
        if cp is None:
            return "not scanned yet"
        if not cp.file_id:
            return "waiting for the file"
        return f"byte {cp.offset} of {cp.file_path}"

    @admin.display(description="Unparsed lines")
    def unparsed(self, obj: LogSource) -> int | str:
        cp = self._checkpoint(obj)
        return cp.unparsed_lines if cp else "—"

    @admin.display(description="Last scan")
    def scanned_at(self, obj: LogSource):
        cp = self._checkpoint(obj)
        return cp.scanned_at if cp else None

    @admin.display(description="Checkpoint")
    def checkpoint_details(self, obj: LogSource) -> str:
        cp = self._checkpoint(obj)
        if cp is None:
            return "—"
        return _pre(
            f"file: {cp.file_path or '(none yet)'} (device:inode {cp.file_id or '—'})\n"
            f"offset: {cp.offset}; first {cp.head_len} bytes: sha256 {cp.head_hash[:16]}…\n"
            f"read so far: {cp.bytes_read} bytes, {cp.lines_read} lines, "
            f"{cp.unparsed_lines} unparsed, {cp.cut_lines} cut\n"
            f"last scan: {cp.scanned_at}\n{cp.last_note}"
        )

    @admin.display(description="Latest lines nobody could parse")
    def unparsed_samples(self, obj: LogSource) -> str:
        cp = self._checkpoint(obj)
        if cp is None or not cp.unparsed_samples:
            return "—"
        return _pre("\n".join(cp.unparsed_samples))

    @admin.action(description="Scan the selected sources now", permissions=["change"])
    def scan_now(self, request, queryset):
        report = services.sre_scan(source_ids=list(queryset.values_list("pk", flat=True)))
        for source in report.sources:
            level = messages.ERROR if source.error else messages.INFO
            self.message_user(request, f"{source.path}: {source.error or source.summary()}", level)


@admin.register(Incident)
class IncidentAdmin(ScaleMixin, LeanListMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "title",
        "category",
        "status",
        "occurrences",
        "first_seen_at",
        "last_seen_at",
    )
    list_display_links = ("id", "title")
    list_filter = ("status", "category", "infrastructure_kind")
    search_fields = ("title", "culprit", "fingerprint")
    date_hierarchy = "last_seen_at"
    actions = ("resolve", "ignore", "escalate", "reopen")
    fields = (
        "title",
        ("category", "infrastructure_kind", "status"),
        "status_reason",
        "routing",
        ("exception_type", "culprit"),
        "exception_message",
        ("first_seen_at", "last_seen_at", "occurrences", "times_reopened"),
        ("fingerprint", "fingerprint_version"),
        "merge_suggestions",
        "window_counts",
        ("request_path", "sample_source", "sample_at"),
        "sample",
        "matching_requests",
        "recent_occurrences",
    )
    readonly_fields = tuple(n for f in fields for n in (f if isinstance(f, tuple) else (f,)))
    list_defer = ("sample_text", "exception_message")

    def has_decide_permission(self, request) -> bool:
        return request.user.has_perm("sre.decide_incident")

    @admin.display(description="Goes to")
    def routing(self, obj: Incident) -> str:
        if obj.needs_escalation:
            return "A person (infrastructure failure): never a code change."
        if obj.category == Incident.Category.CODE:
            return "The SRE agent on a spike of 5xx, then a person's review."
        return "A person."

    @admin.display(description="Sample (as logged; untrusted)")
    def sample(self, obj: Incident) -> str:
        return _pre(obj.sample_text) if obj.sample_text else "—"

    @admin.display(description="Counts per window")
    def window_counts(self, obj: Incident) -> str:
        return incident_chart_html(incident=obj, limit=288) or "—"

    @admin.display(description="Matching 5xx requests (latest 50)")
    def matching_requests(self, obj: Incident) -> str:
        rows = selectors.incident_requests(incident_id=obj.pk)
        if not rows:
            return "—"
        return _pre("\n".join(r.line for r in rows))

    @admin.display(description="Latest occurrences")
    def recent_occurrences(self, obj: Incident) -> str:
        rows = selectors.incident_occurrences(incident_id=obj.pk, limit=20)
        if not rows:
            return "—"
        return format_html_join(
            "",
            "<div>{} {} {}{}</div>",
            (
                (
                    f"{o.occurred_at:%Y-%m-%d %H:%M:%S}",
                    o.source.get_kind_display() if o.source else "(source removed)",
                    o.request_path,
                    " — a copy of an occurrence in another log" if o.duplicate_of_id else "",
                )
                for o in rows
            ),
        )

    @admin.display(description="Possibly the same problem")
    def merge_suggestions(self, obj: Incident) -> str:
        rows = selectors.incident_merge_suggestions(incident=obj)[:10]
        if not rows:
            return "—"
        return format_html_join("", "<div>#{} {}</div>", ((i.pk, i.title) for i in rows))

    def _decide(self, request, queryset, service, verb: str) -> None:
        done = 0
        for incident_id in queryset.values_list("pk", flat=True):
            try:
                service(
                    incident_id=incident_id, actor=request.user, reason=f"{verb} in the console"
                )
                done += 1
            except InvalidTransition as error:
                self.message_user(request, str(error), messages.WARNING)
        if done:
            self.message_user(request, f"{verb}: {done} incident(s).")

    @admin.action(description="Resolve", permissions=["decide"])
    def resolve(self, request, queryset):
        self._decide(request, queryset, services.incident_resolve, "Resolved")

    @admin.action(description="Ignore", permissions=["decide"])
    def ignore(self, request, queryset):
        self._decide(request, queryset, services.incident_ignore, "Ignored")

    @admin.action(description="Escalate to a person", permissions=["decide"])
    def escalate(self, request, queryset):
        self._decide(request, queryset, services.incident_escalate, "Escalated")

    @admin.action(description="Reopen", permissions=["decide"])
    def reopen(self, request, queryset):
        self._decide(request, queryset, services.incident_reopen, "Reopened")


@admin.register(Spike)
class SpikeAdmin(ScaleMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("window_start", "server_errors", "baseline", "threshold", "detected_at")
    date_hierarchy = "window_start"


@admin.register(TrafficWindow)
class TrafficWindowAdmin(ScaleMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("window_start", "route_label", "requests", "server_errors")
    # A date filter, not a date hierarchy: the hierarchy lists its months and days by a
    # DISTINCT over every row of a table that grows by the minute.
    list_filter = ("window_start",)
    search_fields = ("route",)

    @admin.display(description="Route", ordering="route")
    def route_label(self, obj: TrafficWindow) -> str:
        return obj.route or "(all routes)"


@admin.register(PatchProposal)
class PatchProposalAdmin(ScaleMixin, ReadOnlyMixin, admin.ModelAdmin):
    """Read-only; a patch is reviewed and decided on its proposal's review page."""

    list_display = ("__str__", "state", "incident", "review_link", "pull_request", "created_at")
    list_filter = ("tool_call__status", "pr_state")
    list_select_related = ("incident", "tool_call__proposal")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("tool_call__proposal__approvals")

    @admin.display(description="where it stands")
    def state(self, obj: PatchProposal) -> str:
        return obj.get_status_display()

    @admin.display(description="Pull request", ordering="pr_number")
    def pull_request(self, obj: PatchProposal) -> str:
        if not obj.pr_url:
            return "-"
        return format_html('<a href="{}">#{}</a>', obj.pr_url, obj.pr_number or "?")

    @admin.display(description="Review")
    def review_link(self, obj: PatchProposal) -> str:
        url = reverse("admin:agents_toolcall_review", args=[obj.tool_call_id])
        return format_html(
            '<a class="button" href="{}">{}</a>', url, "Review" if obj.is_open else "Open"
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return self._review(request, object_id)

    def get_urls(self):
        review = path(
            "<str:patch_id>/review/",
            self.admin_site.admin_view(self.review_view),
            name="sre_patchproposal_review",
        )
        return [review, *super().get_urls()]

    def review_view(self, request: HttpRequest, patch_id: str) -> HttpResponse:
        return self._review(request, patch_id)

    def _review(self, request: HttpRequest, patch_id: str) -> HttpResponse:
        call_id = (
            PatchProposal.objects.filter(pk=url_pk(patch_id))
            .values_list("tool_call_id", flat=True)
            .first()
        )
        if call_id is None:
            messages.error(request, f"There is no patch #{patch_id}.")
            return HttpResponseRedirect(reverse("admin:sre_patchproposal_changelist"))
        return HttpResponseRedirect(reverse("admin:agents_toolcall_review", args=[call_id]))
