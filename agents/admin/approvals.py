"""The approvals queue and the review page where a person decides on one tool call."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from agents.models import ToolCall
from agents.registry import tool_review_url
from agents.selectors import (
    approvals_can_view,
    json_pretty,
    tool_call_checks,
    tool_call_conversation,
    tool_call_pending_list,
    tool_call_validation,
    toolset_label,
)
from agents.services import (
    InvalidToolInput,
    InvalidTransition,
    tool_call_approve,
    tool_call_can_decide,
    tool_call_reject,
)

APPROVE, EDIT, REJECT = "approve", "edit", "reject"


class DecisionForm(forms.Form):
    """One of the review page's three forms, told apart by `action`."""

    action = forms.ChoiceField(choices=[(APPROVE, "Approve"), (EDIT, "Edit"), (REJECT, "Reject")])
    note = forms.CharField(required=False, max_length=2000)
    edited_input = forms.CharField(required=False, strip=False)
    reason = forms.CharField(required=False, max_length=2000)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        action = data.get("action")
        if action == EDIT:
            try:
                value = json.loads(data.get("edited_input") or "")
            except json.JSONDecodeError as error:
                self.add_error("edited_input", f"This is not valid JSON: {error}.")
            else:
                if isinstance(value, dict):
                    data["edited_value"] = value
                else:
                    self.add_error("edited_input", "The input must be a JSON object ({…}).")
        if action == REJECT and not data.get("reason", "").strip():
            self.add_error("reason", "A rejection needs a reason; Claude is told it.")
        return data


class ApprovalsMixin:
    """Adds the approvals queue and the review page to the tool-call admin."""

    def get_urls(self):
        urls = [
            path(
                "approvals/",
                self.admin_site.admin_view(self.approvals_view),
                name="agents_toolcall_approvals",
            ),
            path(
                "<int:tool_call_id>/review/",
                self.admin_site.admin_view(self.review_view),
                name="agents_toolcall_review",
            ),
        ]
        return urls + super().get_urls()

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), "opts": self.opts, "title": title, **extra}

    def approvals_view(self, request: HttpRequest) -> HttpResponse:
        """List the calls waiting for a person, oldest first."""
        if not approvals_can_view(user=request.user):
            raise PermissionDenied
        page = Paginator(tool_call_pending_list(user=request.user), 50).get_page(
            request.GET.get("p")
        )
        now = timezone.now()
        rows = [
            {
                "call": call,
                "age": now - call.created_at,
                "agent": toolset_label(call.run.toolset),
                "input": json_pretty(call.input_proposed),
                "checks_failed": [c for c in call.checks or [] if not c.get("passed")],
                "can_decide": tool_call_can_decide(user=request.user, tool_call=call),
            }
            for call in page.object_list
        ]
        context = self._context(request, "Approvals", page=page, rows=rows)
        return TemplateResponse(request, "agents/approvals.html", context)

    def review_view(self, request: HttpRequest, tool_call_id: int) -> HttpResponse:
        """Show one call in its context; approve, edit then approve, or reject it."""
        call = get_object_or_404(
            ToolCall.objects.select_related("run", "decided_by"), pk=tool_call_id
        )
        if own_page := tool_review_url(call):
            # The domain reviews this kind of call on its own page, with its own rules.
            return HttpResponseRedirect(own_page)
        can_decide = tool_call_can_decide(user=request.user, tool_call=call)
        if not (can_decide or self.has_view_permission(request)):
            raise PermissionDenied
        form = DecisionForm()
        if request.method == "POST":
            if not can_decide:
                raise PermissionDenied
            form = DecisionForm(request.POST)
            if form.is_valid():
                try:
                    return self._decide(request, call, form.cleaned_data)
                except InvalidToolInput as error:
                    form.add_error("edited_input", str(error))
                except InvalidTransition as error:
                    call.refresh_from_db()
                    call.run.refresh_from_db()
                    if call.status != ToolCall.Status.AWAITING_APPROVAL or call.run.is_finished:
                        # Decided already (a double click, a second reviewer) or the run ended.
                        messages.error(request, f"Nothing was changed: {error}")
                        return HttpResponseRedirect(request.path)
                    # Still open: the tool's own approval rule refused this decision.
                    form.add_error(None, f"Nothing was changed: {error}")
        submitted = form.data if form.is_bound else {}
        if submitted.get("action") == EDIT:
            edit_text = submitted.get("edited_input", "")
        else:
            edit_text = json_pretty(call.input_proposed)
        is_open = call.status == ToolCall.Status.AWAITING_APPROVAL and not call.run.is_finished
        context = self._context(
            request,
            f"Review {call.tool_name} · run #{call.run_id}",
            call=call,
            agent=toolset_label(call.run.toolset),
            conversation=tool_call_conversation(tool_call=call),
            validation=tool_call_validation(tool_call=call),
            checks=tool_call_checks(tool_call=call),
            input_json=json_pretty(call.input_proposed),
            executed_json=(
                json_pretty(call.input_executed) if call.input_executed is not None else ""
            ),
            can_decide=can_decide and is_open,
            is_open=is_open,
            form=form,
            edit_text=edit_text,
        )
        return TemplateResponse(request, "agents/review.html", context)

    def _decide(self, request: HttpRequest, call: ToolCall, data: dict[str, Any]) -> HttpResponse:
        action = data["action"]
        if action == REJECT:
            tool_call_reject(tool_call_id=call.pk, user=request.user, reason=data["reason"])
            messages.success(request, f"Rejected {call.tool_name}; Claude is told why.")
        else:
            edited = data.get("edited_value") if action == EDIT else None
            call = tool_call_approve(
                tool_call_id=call.pk, user=request.user, edited_input=edited, note=data["note"]
            )
            how = "with your edit" if call.input_executed is not None else "as proposed"
            messages.success(request, f"Approved {call.tool_name} {how}; a worker runs it now.")
        return HttpResponseRedirect(reverse("admin:agents_toolcall_approvals"))
