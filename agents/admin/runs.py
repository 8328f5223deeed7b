"""Agent runs: a view-only list, and a detail page with the run's timeline and a cancel button."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from agents.admin.base import (
    BackendFilter,
    LeanListMixin,
    ScaleMixin,
    ToolsetFilter,
    backend_badge,
    json_block,
    seconds,
    subject_link,
)
from agents.models import AgentRun
from agents.selectors import run_timeline, toolset_label
from agents.services import InvalidTransition, run_cancel


@admin.register(AgentRun)
class AgentRunAdmin(ScaleMixin, LeanListMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "agent",
        "status",
        "model_column",
        "turns",
        "cost_usd",
        "tokens",
        "subject",
        "created_column",
    )
    list_display_links = ("id", "agent")
    list_defer = ("messages", "system")
    list_filter = ("status", ToolsetFilter, BackendFilter, "created_at")
    search_fields = ("subject_id", "status_reason")
    actions = ["cancel_selected"]
    change_form_template = "admin/agents/agentrun/change_form.html"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "agent",
                    "status",
                    "status_reason",
                    "subject",
                    "started_by",
                    "created_at",
                    "updated_at",
                    "finished_at",
                )
            },
        ),
        (
            "Model",
            {
                "fields": (
                    "backend_label",
                    "model",
                    "prompt",
                    "max_tokens",
                    "turns",
                    "step",
                    "attempts",
                    "next_attempt_at",
                    "last_stop_reason",
                )
            },
        ),
        (
            "Usage",
            {
                "fields": (
                    "input_tokens",
                    "output_tokens",
                    "cache_read_tokens",
                    "cache_write_tokens",
                    "cost_usd",
                )
            },
        ),
        ("System prompt", {"classes": ("collapse",), "fields": ("system_text",)}),
    )
    readonly_fields = (
        "agent",
        "status",
        "status_reason",
        "subject",
        "started_by",
        "created_at",
        "updated_at",
        "finished_at",
        "backend_label",
        "model",
        "prompt",
        "max_tokens",
        "turns",
        "step",
        "attempts",
        "next_attempt_at",
        "last_stop_reason",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "system_text",
    )

    # --- permissions: runs are written by the engine only -------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_cancel_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("agents.cancel_agentrun")

    # --- columns ------------------------------------------------------------------------------

    @admin.display(description="agent", ordering="toolset")
    def agent(self, run: AgentRun) -> str:
        return toolset_label(run.toolset)

    @admin.display(description="backend", ordering="backend")
    def backend_label(self, run: AgentRun) -> str:
        return backend_badge(run.backend)

    @admin.display(description="tokens (in / out)")
    def tokens(self, run: AgentRun) -> str:
        return f"{run.tokens_in:,} / {run.output_tokens:,}"

    @admin.display(description="subject", ordering="subject_id")
    def subject(self, run: AgentRun) -> str:
        return subject_link(run.subject_type, run.subject_id)

    @admin.display(description="model", ordering="model")
    def model_column(self, run: AgentRun) -> str:
        return format_html("{}<br>{}", run.model, backend_badge(run.backend))

    @admin.display(description="created", ordering="created_at")
    def created_column(self, run: AgentRun) -> str:
        return seconds(run.created_at)

    @admin.display(description="prompt")
    def prompt(self, run: AgentRun) -> str:
        return f"{run.prompt_name} v{run.prompt_version}"

    @admin.display(description="system prompt as sent")
    def system_text(self, run: AgentRun) -> str:
        return json_block(run.system)

    # --- the detail page: timeline and cancel -------------------------------------------------

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(
                timeline=run_timeline(run=obj),
                run=obj,
                timeline_url=reverse("admin:agents_agentrun_timeline", args=[obj.pk]),
                can_cancel=not obj.is_finished and self.has_cancel_permission(request, obj),
                cancel_url=reverse("admin:agents_agentrun_cancel", args=[obj.pk]),
                replay=obj.backend == "replay",
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        urls = [
            path(
                "<int:run_id>/cancel/",
                self.admin_site.admin_view(self.cancel_view),
                name="agents_agentrun_cancel",
            ),
            path(
                "<int:run_id>/timeline/",
                self.admin_site.admin_view(self.timeline_view),
                name="agents_agentrun_timeline",
            ),
        ]
        return urls + super().get_urls()

    def timeline_view(self, request: HttpRequest, run_id: int) -> HttpResponse:
        """The run's timeline alone, for its page to poll while the run goes on."""
        run = get_object_or_404(AgentRun, pk=run_id)
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        context = {
            "timeline": run_timeline(run=run),
            "run": run,
            "timeline_url": reverse("admin:agents_agentrun_timeline", args=[run.pk]),
            "partial": True,
        }
        return TemplateResponse(request, "agents/_timeline.html", context)

    def cancel_view(self, request: HttpRequest, run_id: int) -> HttpResponse:
        """Cancel one run, with the reason the person gave."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        run = get_object_or_404(AgentRun, pk=run_id)
        if not self.has_cancel_permission(request, run):
            raise PermissionDenied
        reason = request.POST.get("reason", "").strip()
        reason = f"Cancelled by {request.user.get_username()}: {reason or 'no reason given'}"
        try:
            run_cancel(run_id=run.pk, user=request.user, reason=reason)
        except InvalidTransition as error:
            messages.error(request, str(error))
        else:
            messages.success(
                request, f"Run #{run.pk} is cancelled; its open tool calls will not run."
            )
        return HttpResponseRedirect(reverse("admin:agents_agentrun_change", args=[run.pk]))

    @admin.action(description="Cancel the selected runs", permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset) -> None:
        cancelled = skipped = 0
        reason = f"Cancelled from the run list by {request.user.get_username()}."
        for run_id in queryset.values_list("pk", flat=True):
            try:
                run_cancel(run_id=run_id, user=request.user, reason=reason)
            except InvalidTransition:
                skipped += 1
            else:
                cancelled += 1
        self.message_user(
            request,
            f"{cancelled} run(s) cancelled; {skipped} already finished.",
            messages.SUCCESS if cancelled else messages.WARNING,
        )
