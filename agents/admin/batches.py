"""Message Batches (backlog mode): what each carried and what came of each run. Read-only."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count

from agents.admin.base import ReadOnlyAdmin, run_link
from agents.models import BatchRequest, MessageBatch


class BatchRequestInline(admin.TabularInline):
    model = BatchRequest
    extra = 0
    can_delete = False
    show_change_link = False
    fields = ("run_column", "step", "state", "result_type", "detail", "created_at", "finished_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        # Whoever may see a batch sees what it carried.
        return request.user.has_perm("agents.view_messagebatch")

    @admin.display(description="run")
    def run_column(self, request: BatchRequest) -> str:
        return run_link(request.run_id)


@admin.register(MessageBatch)
class MessageBatchAdmin(ReadOnlyAdmin):
    list_display = (
        "__str__",
        "status",
        "processing_status",
        "runs_column",
        "counts_column",
        "submitted_at",
        "ended_at",
    )
    list_filter = ("status",)
    search_fields = ("batch_id",)
    fields = (
        "batch_id",
        "status",
        "status_reason",
        "processing_status",
        "counts_column",
        "created_at",
        "submitted_at",
        "expires_at",
        "polled_at",
        "ended_at",
    )
    readonly_fields = fields
    inlines = [BatchRequestInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_runs=Count("requests"))

    @admin.display(description="runs", ordering="_runs")
    def runs_column(self, batch: MessageBatch) -> int:
        return batch._runs

    @admin.display(description="results")
    def counts_column(self, batch: MessageBatch) -> str:
        counts = {k: v for k, v in (batch.request_counts or {}).items() if v}
        return ", ".join(f"{v} {k}" for k, v in counts.items()) or "—"
