"""The audit log: every tool call, model call and decision, read-only and exportable."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from agents.admin.approvals import ApprovalsMixin
from agents.admin.base import (
    BackendFilter,
    ExportMixin,
    FixedChoicesFilter,
    IndexedValuesFilter,
    ReadOnlyAdmin,
    RunToolsetFilter,
    StaffFilter,
    ToolNameFilter,
    backend_badge,
    ellipsis,
    json_block,
    run_link,
    seconds,
    subject_link,
)
from agents.admin.retention import RetentionMixin
from agents.models import AuditEvent, ModelCall, ToolCall


class EventToolFilter(ToolNameFilter):
    field_path = "tool_call__tool_name"


class StopReasonFilter(FixedChoicesFilter):
    """The Messages API's stop reasons; a failed call has none."""

    title = "stop reason"
    parameter_name = "stop_reason"
    values = tuple(
        (name, name)
        for name in (
            "end_turn",
            "tool_use",
            "max_tokens",
            "pause_turn",
            "refusal",
            "stop_sequence",
            "model_context_window_exceeded",
        )
    )


class ModelFilter(IndexedValuesFilter):
    title = "model"
    parameter_name = "model"


class KindFilter(IndexedValuesFilter):
    """Every kind of event the log holds: the domains add their own, so no fixed list."""

    title = "kind"
    parameter_name = "kind"


@admin.register(ToolCall)
class ToolCallAdmin(ApprovalsMixin, ExportMixin, ReadOnlyAdmin):
    list_display = (
        "id",
        "created_column",
        "tool_name",
        "run_column",
        "status",
        "decision",
        "decided_by",
        "input_column",
    )
    list_filter = (
        ToolNameFilter,
        "decision",
        ("decided_by", StaffFilter),
        RunToolsetFilter,
        "created_at",
        "status",
    )
    list_select_related = ("run", "decided_by")
    list_defer = ("run__messages", "run__system", "result")
    search_fields = (
        "tool_name",
        "input_proposed",
        "input_executed",
        "result",
        "decision_reason",
        "tool_use_id",
    )
    search_related = {"decided_by": ("username",)}
    json_search_fields = ("input_proposed", "input_executed", "result")
    export_name = "tool-calls"
    export_columns = {
        name: name
        for name in (
            "id",
            "created_at",
            "run_id",
            "turn",
            "position",
            "tool_use_id",
            "tool_name",
            "status",
            "requires_approval",
            "approval_permission",
            "input_proposed",
            "validation_errors",
            "checks",
            "input_executed",
            "decision",
            "decided_at",
            "decision_reason",
            "idempotency_key",
            "attempts",
            "result",
            "is_error",
            "started_at",
            "finished_at",
            "duration_ms",
        )
    } | {"toolset": "run__toolset", "decided_by_user": "decided_by__username"}
    fieldsets = (
        (
            None,
            {"fields": ("run_column", "tool_use_id", "turn", "position", "tool_name", "status")},
        ),
        ("Input", {"fields": ("proposed", "validation", "policy_checks", "executed")}),
        (
            "Decision",
            {
                "fields": (
                    "review_link",
                    "requires_approval",
                    "approval_permission",
                    "decision",
                    "decided_by",
                    "decided_at",
                    "decision_reason",
                )
            },
        ),
        (
            "Execution",
            {
                "fields": (
                    "idempotency_key",
                    "attempts",
                    "created_at",
                    "started_at",
                    "finished_at",
                    "duration_ms",
                    "is_error",
                    "result_text",
                )
            },
        ),
    )
    readonly_fields = (
        "run_column",
        "tool_use_id",
        "turn",
        "position",
        "tool_name",
        "status",
        "proposed",
        "validation",
        "policy_checks",
        "executed",
        "review_link",
        "requires_approval",
        "approval_permission",
        "decision",
        "decided_by",
        "decided_at",
        "decision_reason",
        "idempotency_key",
        "attempts",
        "created_at",
        "started_at",
        "finished_at",
        "duration_ms",
        "is_error",
        "result_text",
    )

    def changelist_view(self, request: HttpRequest, extra_context=None):
        return super().changelist_view(
            request, {"title": "Audit log: tool calls", **(extra_context or {})}
        )

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("run", "decided_by")

    @admin.display(description="run", ordering="run")
    def run_column(self, call: ToolCall) -> str:
        return run_link(call.run_id, call.run.toolset)

    @admin.display(description="created", ordering="created_at")
    def created_column(self, call: ToolCall) -> str:
        return seconds(call.created_at)

    @admin.display(description="input")
    def input_column(self, call: ToolCall) -> str:
        return ellipsis(call.effective_input, 70)

    @admin.display(description="input as proposed")
    def proposed(self, call: ToolCall) -> str:
        return json_block(call.input_proposed)

    @admin.display(description="validation errors")
    def validation(self, call: ToolCall) -> str:
        return json_block(call.validation_errors) if call.validation_errors else "none"

    @admin.display(description="policy checks")
    def policy_checks(self, call: ToolCall) -> str:
        return json_block(call.checks) if call.checks else "none"

    @admin.display(description="input as edited by the reviewer")
    def executed(self, call: ToolCall) -> str:
        return json_block(call.input_executed) if call.input_executed is not None else "not edited"

    @admin.display(description="result")
    def result_text(self, call: ToolCall) -> str:
        return json_block(call.result)

    @admin.display(description="review")
    def review_link(self, call: ToolCall) -> str:
        if call.status != ToolCall.Status.AWAITING_APPROVAL:
            return "—"
        url = reverse("admin:agents_toolcall_review", args=[call.pk])
        return format_html('<a class="button" href="{}">Review this call</a>', url)


@admin.register(ModelCall)
class ModelCallAdmin(ExportMixin, ReadOnlyAdmin):
    list_display = (
        "id",
        "created_column",
        "run_column",
        "model_column",
        "stop_reason",
        "tokens_column",
        "cost_usd",
        "latency_ms",
        "failed",
    )
    list_filter = (BackendFilter, StopReasonFilter, ModelFilter, "created_at")
    list_select_related = ("run",)
    list_defer = ("run__messages", "run__system", "response")
    search_fields = ("request_id", "message_id", "error")
    export_name = "model-calls"
    export_columns = {
        name: name
        for name in (
            "id",
            "created_at",
            "run_id",
            "step",
            "backend",
            "model",
            "request_id",
            "message_id",
            "stop_reason",
            "error",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "cost_usd",
            "latency_ms",
            "response",
        )
    } | {"toolset": "run__toolset"}
    fields = (
        "run_column",
        "step",
        "backend_label",
        "model",
        "request_id",
        "message_id",
        "stop_reason",
        "error",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "latency_ms",
        "created_at",
        "response_text",
    )
    readonly_fields = fields

    def changelist_view(self, request: HttpRequest, extra_context=None):
        return super().changelist_view(
            request, {"title": "Audit log: model calls", **(extra_context or {})}
        )

    @admin.display(description="run", ordering="run")
    def run_column(self, call: ModelCall) -> str:
        return run_link(call.run_id, call.run.toolset)

    @admin.display(description="created", ordering="created_at")
    def created_column(self, call: ModelCall) -> str:
        return seconds(call.created_at)

    @admin.display(description="model", ordering="model")
    def model_column(self, call: ModelCall) -> str:
        return format_html("{}<br>{}", call.model, self.backend_label(call))

    @admin.display(description="tokens in / out")
    def tokens_column(self, call: ModelCall) -> str:
        return f"{call.tokens_in:,} / {call.output_tokens:,}"

    @admin.display(description="backend", ordering="backend")
    def backend_label(self, call: ModelCall) -> str:
        return backend_badge(call.backend)

    @admin.display(description="failed")
    def failed(self, call: ModelCall) -> str:
        # Only a failure is marked: a red cross on every call that went well reads as an alarm.
        return format_html('<span class="cs-badge cs-error">failed</span>') if call.error else "—"

    @admin.display(description="response")
    def response_text(self, call: ModelCall) -> str:
        return json_block(call.response)


@admin.register(AuditEvent)
class AuditEventAdmin(RetentionMixin, ExportMixin, ReadOnlyAdmin):
    list_display = (
        "created_column",
        "kind",
        "actor",
        "run_column",
        "tool_call_column",
        "subject",
        "message_column",
    )
    list_display_links = ("created_column",)
    list_filter = (KindFilter, EventToolFilter, ("actor", StaffFilter), "created_at")
    list_select_related = ("actor", "run", "tool_call")
    list_defer = ("run__messages", "run__system", "tool_call__result", "data")
    # Events are found by tool with the tool filter: a search across the join to the tool
    # calls would read every event.
    search_fields = ("kind", "message", "subject_id", "data")
    search_related = {"actor": ("username",)}
    json_search_fields = ("data",)
    export_name = "audit-events"
    export_columns = {
        name: name
        for name in (
            "id",
            "created_at",
            "kind",
            "run_id",
            "tool_call_id",
            "subject_type",
            "subject_id",
            "message",
            "data",
        )
    } | {"actor_user": "actor__username", "tool_use_id": "tool_call__tool_use_id"}
    fields = (
        "created_at",
        "kind",
        "actor",
        "run_column",
        "tool_call_column",
        "subject",
        "message",
        "data_text",
    )
    readonly_fields = fields

    def changelist_view(self, request: HttpRequest, extra_context=None):
        return super().changelist_view(
            request, {"title": "Audit log: decisions and events", **(extra_context or {})}
        )

    @admin.display(description="run", ordering="run")
    def run_column(self, event: AuditEvent) -> str:
        return run_link(event.run_id, event.run.toolset if event.run_id else "")

    @admin.display(description="tool call")
    def tool_call_column(self, event: AuditEvent) -> str:
        if event.tool_call_id is None:
            return "—"
        url = reverse("admin:agents_toolcall_change", args=[event.tool_call_id])
        return format_html('<a href="{}">{}</a>', url, event.tool_call.tool_name)

    @admin.display(description="created", ordering="created_at")
    def created_column(self, event: AuditEvent) -> str:
        return seconds(event.created_at)

    @admin.display(description="subject")
    def subject(self, event: AuditEvent) -> str:
        return subject_link(event.subject_type, event.subject_id)

    @admin.display(description="message")
    def message_column(self, event: AuditEvent) -> str:
        return ellipsis(event.message, 90) if event.message else "—"

    @admin.display(description="data")
    def data_text(self, event: AuditEvent) -> str:
        return json_block(event.data)
