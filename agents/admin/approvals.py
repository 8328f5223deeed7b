"""The inbox of everything that waits on a person, and the one review page where they decide.

Every consequential tool's proposals are reviewed here: the page shows the domain's evidence
(the template its proposal type declares), the latest checks and when they ran, the exact call
and Claude's reasoning, and offers approve, edit then approve, or reject. The services decide;
this page turns their refusals into messages.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import select_template
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from agents.admin.forms import EDIT, REJECT, DecisionForm, JsonEditForm
from agents.models import Proposal, ToolCall
from agents.registry import tool_of, toolset_list
from agents.selectors import (
    AGES,
    approvals_can_view,
    json_pretty,
    proposal_inbox,
    proposal_kinds,
    tool_call_checks,
    tool_call_conversation,
    tool_call_validation,
    toolset_label,
)
from agents.services import (
    ChecksUnavailable,
    InvalidToolInput,
    InvalidTransition,
    ProposalBlocked,
    proposal_approve,
    proposal_reject,
    tool_call_can_decide,
)
from agents.services.decisions import proposal_ttl_hours
from agents.services.proposals import record_of

PAGE_SIZE = 50
# How far into the inbox the review page looks for the next and previous proposal.
INBOX_WINDOW = 500


class ApprovalsMixin:
    """Adds the inbox and the review page to the tool-call admin."""

    def get_urls(self):
        urls = [
            path(
                "approvals/",
                self.admin_site.admin_view(self.approvals_view),
                name="agents_toolcall_approvals",
            ),
            path(
                "approvals/live/",
                self.admin_site.admin_view(self.approvals_live_view),
                name="agents_toolcall_approvals_live",
            ),
            path(
                "<str:tool_call_id>/review/",
                self.admin_site.admin_view(self.review_view),
                name="agents_toolcall_review",
            ),
            path(
                "<str:tool_call_id>/review/live/",
                self.admin_site.admin_view(self.review_live_view),
                name="agents_toolcall_review_live",
            ),
        ]
        return urls + super().get_urls()

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), "opts": self.opts, "title": title, **extra}

    # --- the inbox ------------------------------------------------------------------------

    def approvals_view(self, request: HttpRequest) -> HttpResponse:
        """Everything that waits on a person, oldest first, with filters."""
        return TemplateResponse(request, "agents/approvals.html", self._inbox_context(request))

    def approvals_live_view(self, request: HttpRequest) -> HttpResponse:
        """The inbox's list alone, for the page to poll: the same filters, the same rows."""
        return TemplateResponse(request, "agents/_inbox_list.html", self._inbox_context(request))

    def _inbox_context(self, request: HttpRequest) -> dict[str, Any]:
        if not approvals_can_view(user=request.user):
            raise PermissionDenied
        filters = {
            "kind": request.GET.get("kind", ""),
            "agent": request.GET.get("agent", ""),
            "older_than": request.GET.get("age", ""),
            "mine": request.GET.get("mine") == "1",
            "second": request.GET.get("second") == "1",
        }
        proposals = proposal_inbox(user=request.user, **filters)
        page = Paginator(proposals, PAGE_SIZE).get_page(request.GET.get("p"))
        now = timezone.now()
        perms = {
            p: request.user.has_perm(p) for p in {x.tool_call.approval_permission for x in page}
        }
        rows = []
        for proposal in page.object_list:
            call = proposal.tool_call
            approvals = list(proposal.approvals.all())
            rows.append(
                {
                    "proposal": proposal,
                    "call": call,
                    "age": now - (proposal.waiting_since or call.created_at),
                    "kind": call.tool_name.replace("_", " ").capitalize(),
                    "agent": toolset_label(proposal.toolset),
                    "warnings": [c for c in proposal.checks if not c.get("passed")],
                    "approvals": approvals,
                    "second": bool(approvals),
                    "can_decide": perms.get(call.approval_permission, False)
                    and request.user.is_active
                    and all(a.user_id != request.user.pk for a in approvals),
                }
            )
        query = request.GET.copy()
        query.pop("p", None)
        context = self._context(
            request,
            "Inbox",
            page=page,
            rows=rows,
            filters=filters,
            kinds=proposal_kinds(),
            agents=[(ts.name, ts.label) for ts in toolset_list() if _has_proposals(ts)],
            ages=[("", "any age"), *[(k, f"waiting over {k}") for k in AGES]],
            query=query.urlencode(),
            live_url=reverse("admin:agents_toolcall_approvals_live")
            + (f"?{request.GET.urlencode()}" if request.GET else ""),
        )
        return context

    # --- one proposal ---------------------------------------------------------------------

    def _review_load(self, request: HttpRequest, tool_call_id: str) -> Any:
        """(call, proposal, proposal type, can_decide), or the response that answers instead."""
        call = (
            ToolCall.objects.select_related("run", "decided_by")
            .filter(pk=_int(tool_call_id))
            .first()
        )
        if call is None:
            messages.error(request, f"There is no tool call {tool_call_id!r}.")
            return HttpResponseRedirect(reverse("admin:agents_toolcall_approvals"))
        proposal = Proposal.objects.prefetch_related("approvals__user").filter(pk=call.pk).first()
        if proposal is None:
            # A read-only call: nothing to decide; its audit row says what happened.
            return HttpResponseRedirect(reverse("admin:agents_toolcall_change", args=[call.pk]))
        can_decide = tool_call_can_decide(user=request.user, tool_call=call)
        tool = tool_of(call)
        ptype = tool.proposal if tool is not None else None
        if not (can_decide or self.has_view_permission(request) or _views_record(request, ptype)):
            raise PermissionDenied
        return call, proposal, ptype, can_decide

    def _status_context(
        self,
        request: HttpRequest,
        call: ToolCall,
        proposal: Proposal,
        ptype: Any,
        record: Any,
        *,
        seen: str = "",
    ) -> dict[str, Any]:
        """What the live region shows: where it stands, who decided, what came of it, checks.

        `seen` is the call's status when the page was drawn: when it has moved on since, the
        region says so beside the forms (which it never replaces).
        """
        approvals = list(proposal.approvals.all())
        is_open = call.status == ToolCall.Status.AWAITING_APPROVAL and not call.run.is_finished
        outcome = ""
        if call.finished_at and ptype is not None and ptype.outcome and record is not None:
            outcome = ptype.outcome(record, call)
        seen = seen or call.status
        waiting = ToolCall.Status.AWAITING_APPROVAL
        notice = ""
        if seen == waiting and not is_open:
            notice = (
                f"Decided meanwhile: {proposal.get_state_display().lower()}. "
                "The forms below would change nothing."
            )
        elif seen != waiting and is_open:
            notice = "It is ready for a decision now."
        review_url = reverse("admin:agents_toolcall_review", args=[call.pk])
        return {
            "kind_label": call.tool_name.replace("_", " ").capitalize(),
            "agent": toolset_label(call.run.toolset),
            "noun": record._meta.verbose_name if record is not None else "proposal",
            "notice": notice,
            "review_url": review_url,
            "call": call,
            "proposal": proposal,
            "approvals": approvals,
            "is_open": is_open,
            # Nothing more will change once the call has closed (or its run ended unanswered).
            "is_final": call.finished_at is not None or (call.run.is_finished and is_open),
            "checks": tool_call_checks(tool_call=call),
            "outcome": outcome,
            "result_text": _result_text(call.result),
            "expires_at": _expires_at(call),
            "live_url": reverse("admin:agents_toolcall_review_live", args=[call.pk])
            + f"?seen={seen}",
        }

    def review_live_view(self, request: HttpRequest, tool_call_id: str) -> HttpResponse:
        """The review page's status and checks alone, for the page to poll."""
        loaded = self._review_load(request, tool_call_id)
        if isinstance(loaded, HttpResponse):
            return loaded
        call, proposal, ptype, can_decide = loaded
        record = record_of(ptype, call) if ptype is not None else None
        seen = request.GET.get("seen", "")
        if seen not in ToolCall.Status.values:
            seen = ""
        context = self._status_context(request, call, proposal, ptype, record, seen=seen)
        return TemplateResponse(request, "agents/_review_status.html", context)

    def review_view(self, request: HttpRequest, tool_call_id: str) -> HttpResponse:
        """Show one proposal with its evidence; approve, edit then approve, or reject it."""
        loaded = self._review_load(request, tool_call_id)
        if isinstance(loaded, HttpResponse):
            return loaded
        call, proposal, ptype, can_decide = loaded
        record = record_of(ptype, call) if ptype is not None else None
        edit_class = None
        if ptype is not None and ptype.editable:
            edit_class = ptype.edit_form or JsonEditForm
        form = DecisionForm()
        edit_form = edit_class(call=call, record=record) if edit_class else None
        if request.method == "POST":
            if not can_decide:
                raise PermissionDenied
            form = DecisionForm(request.POST)
            editing = form.is_valid() and form.cleaned_data["action"] == EDIT
            if editing and edit_class is None:
                form.add_error(
                    None, f"A {call.tool_name} call is approved as proposed or rejected."
                )
            elif editing:
                edit_form = edit_class(request.POST, call=call, record=record)
            if form.is_valid() and (not editing or edit_form.is_valid()):
                try:
                    return self._decide(request, call, form.cleaned_data, edit_form)
                except InvalidToolInput as error:
                    target = edit_form if form.cleaned_data["action"] == EDIT else form
                    target.add_error(None, f"Nothing was changed: {error}")
                except (PermissionDenied, ChecksUnavailable) as error:
                    form.add_error(None, f"Nothing was changed: {error}")
                except ProposalBlocked as error:
                    messages.warning(request, str(error))
                    return HttpResponseRedirect(request.path)
                except InvalidTransition as error:
                    call.refresh_from_db()
                    call.run.refresh_from_db()
                    if call.status != ToolCall.Status.AWAITING_APPROVAL or call.run.is_finished:
                        # Decided already (a double click, a second reviewer), or the run ended.
                        messages.error(request, f"Nothing was changed: {error}")
                        return HttpResponseRedirect(request.path)
                    # Still open: the tool's own rule refused this decision.
                    target = edit_form if form.cleaned_data["action"] == EDIT else form
                    target.add_error(None, f"Nothing was changed: {error}")
        status = self._status_context(request, call, proposal, ptype, record)
        approvals, is_open = status["approvals"], status["is_open"]
        mine = any(a.user_id == request.user.pk for a in approvals)
        extra = ptype.context(record, call) if ptype and ptype.context and record else {}
        context = self._context(
            request,
            f"Review {call.tool_name.replace('_', ' ')} · {proposal.summary or call.tool_use_id}",
            record=record,
            evidence_template=ptype.template if ptype else "agents/proposals/_input.html",
            approve_template=select_template(
                [
                    f"agents/proposals/{call.tool_name}/_approve.html",
                    "agents/proposals/_approve.html",
                ]
            ).template.name,
            conversation=tool_call_conversation(tool_call=call),
            validation=tool_call_validation(tool_call=call),
            input_json=json_pretty(call.input_proposed),
            executed_json=(
                json_pretty(call.input_executed) if call.input_executed is not None else ""
            ),
            can_decide=can_decide and is_open,
            can_approve=can_decide and is_open and not mine,
            can_edit=can_decide and is_open and not approvals and edit_form is not None,
            mine=mine,
            form=form,
            edit_form=edit_form,
            neighbours=_neighbours(request, call),
            **status,
            **extra,
        )
        return TemplateResponse(request, "agents/review.html", context)

    def _decide(
        self, request: HttpRequest, call: ToolCall, data: dict[str, Any], edit_form: Any
    ) -> HttpResponse:
        action = data["action"]
        label = call.tool_name
        inbox = HttpResponseRedirect(reverse("admin:agents_toolcall_approvals"))
        if action == REJECT:
            proposal_reject(tool_call_id=call.pk, user=request.user, reason=data["reason"])
            messages.success(request, f"Rejected {label}; nothing ran and Claude is told why.")
            return inbox
        edited = edit_form.edited_value() if action == EDIT else None
        call = proposal_approve(
            tool_call_id=call.pk, user=request.user, edited_input=edited, note=data["note"]
        )
        proposal = Proposal.objects.get(pk=call.pk)
        if call.status == ToolCall.Status.AWAITING_APPROVAL:
            messages.success(
                request,
                f"Your approval is recorded ({proposal.approvals_given} of "
                f"{proposal.approvals_required}). A different person must approve too before it "
                "runs.",
            )
        else:
            how = "with your edit" if call.input_executed is not None else "as proposed"
            messages.success(
                request, f"Approved {label} {how}; the checks passed and a worker runs it now."
            )
        return inbox


def _views_record(request: HttpRequest, ptype: Any) -> bool:
    """Whoever may view the domain's rows (refunds, patches) may look at their proposals."""
    if ptype is None or ptype.model is None:
        return False
    opts = ptype.model._meta
    return request.user.has_perm(f"{opts.app_label}.view_{opts.model_name}")


def _has_proposals(toolset: Any) -> bool:
    return any(tool.proposal for tool in toolset.tools.values())


def _int(value: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 0
    return number if 0 < number < 2**63 else 0


def _neighbours(request: HttpRequest, call: ToolCall) -> dict[str, int | None]:
    """The proposals before and after this one in the inbox's order (for j and k)."""
    ids = list(
        proposal_inbox(user=request.user)
        .prefetch_related(None)
        .values_list("tool_call_id", flat=True)[:INBOX_WINDOW]
    )
    if call.pk not in ids:
        return {"previous": None, "next": ids[0] if ids else None}
    at = ids.index(call.pk)
    return {
        "previous": ids[at - 1] if at > 0 else None,
        "next": ids[at + 1] if at + 1 < len(ids) else None,
    }


def _result_text(result: Any) -> str:
    if result is None or result == "":
        return ""
    return result if isinstance(result, str) else json_pretty(result)


def _expires_at(call: ToolCall) -> datetime | None:
    hours = proposal_ttl_hours(call)
    return call.created_at + timedelta(hours=hours) if hours > 0 else None
