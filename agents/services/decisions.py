"""A person's decision on a proposal: approve (as proposed or edited), reject; and expiry.

The permission is checked here, in the service, whatever page, command or Slack button calls
it. Every approval runs the proposal's checks again on live data, in the transaction that
records it and under the proposal type's lock, so two approvals cannot pass a cap together.
A check that now fails blocks the call: it closes, the reviewer is told why (ProposalBlocked)
and so is Claude. Above a type's threshold it takes several different people; the database
refuses a second approval by the same person. Each decision is a compare-and-set from
`awaiting_approval`, so the same decision sent twice takes effect once and the second raises.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pydantic
from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from agents.audit import audit_record
from agents.models import AgentRun, Approval, ToolCall
from agents.queue import enqueue_on_commit
from agents.registry import TRANSIENT, tool_of
from agents.services.dispatch import errors_describe, turn_settle
from agents.services.errors import InvalidToolInput, InvalidTransition
from agents.services.lifecycle import notice_on_commit, tool_call_close
from agents.services.proposals import (
    APPROVAL,
    ChecksUnavailable,
    checks_failed_text,
    context_for,
    error_text,
    judge,
    proposal_checks_record,
    record_of,
)

TC = ToolCall.Status
EXECUTE_TASK = "agents.tasks.tool_call_execute_task"


class ProposalBlocked(InvalidTransition):
    """The checks failed at approval: the call is closed as blocked and Claude is told."""


def tool_call_can_decide(*, user: Any, tool_call: ToolCall) -> bool:
    return bool(
        user.is_active
        and tool_call.requires_approval
        and tool_call.approval_permission
        and user.has_perm(tool_call.approval_permission)
    )


def _check_permission(user: Any, call: ToolCall) -> None:
    if not tool_call_can_decide(user=user, tool_call=call):
        raise PermissionDenied(
            f"Deciding on {call.tool_name} needs the permission {call.approval_permission!r}."
        )


def _check_open(call: ToolCall) -> None:
    if call.status != TC.AWAITING_APPROVAL:
        raise InvalidTransition(
            f"Tool call {call.tool_use_id} is {call.get_status_display().lower()}, "
            "not awaiting approval."
        )
    if call.run.is_finished:
        raise InvalidTransition(f"Run #{call.run_id} is {call.run.get_status_display().lower()}.")


def _load(tool_call_id: int) -> ToolCall:
    return ToolCall.objects.select_related("run", "proposal").get(pk=tool_call_id)


def proposal_approve(
    *,
    tool_call_id: int,
    user: Any,
    edited_input: dict[str, Any] | None = None,
    note: str = "",
    channel: str = Approval.Channel.CONSOLE,
) -> ToolCall:
    """Approve a proposal, as proposed or edited; the last approval needed queues it to run.

    Raises PermissionDenied, InvalidTransition (not open, or the same person again),
    InvalidToolInput (an edit that is not valid, or fails the checks: nothing is written),
    ChecksUnavailable (the checks could not run now: nothing is written) or ProposalBlocked
    (the checks failed: the call is closed and Claude is told).
    """
    call = _load(tool_call_id)
    _check_permission(user, call)
    _check_open(call)
    tool = tool_of(call)
    if tool is None or tool.proposal is None:
        raise InvalidToolInput(f"The tool {call.tool_name!r} is no longer registered.")
    ptype = tool.proposal
    proposal = call.proposal
    given = list(proposal.approvals.values_list("user_id", flat=True))
    if user.pk in given:
        raise PermissionDenied(
            "You approved this already; the next approval must come from a different person."
        )
    if edited_input is not None and edited_input == call.input_proposed:
        edited_input = None
    if edited_input is not None:
        if given:
            raise InvalidTransition(
                "The next approver approves what the first one did; reject it to change it."
            )
        if not ptype.editable:
            raise InvalidTransition(f"A {call.tool_name} call is approved as proposed or rejected.")
    judged = edited_input if edited_input is not None else call.effective_input
    try:
        value = tool.validate(judged)
    except pydantic.ValidationError as error:
        summary, details = errors_describe(error)
        raise InvalidToolInput(f"The edited input is not valid: {summary}", details) from None
    ctx = context_for(
        call,
        phase=APPROVAL,
        value=value,
        record=record_of(ptype, call),
        user=user,
        edited=edited_input is not None or call.input_executed is not None,
    )
    if ptype.authorize is not None:
        ptype.authorize(ctx, user)
    try:
        ctx = dataclasses.replace(ctx, evidence=ptype.gather(ctx) if ptype.gather else None)
    except TRANSIENT as error:
        raise ChecksUnavailable(
            f"The checks could not run just now ({error_text(error)}); nothing changed. "
            "Try again in a moment."
        ) from error
    blocked = ""
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().get(pk=call.run_id)
        call = _load(tool_call_id)
        _check_open(call)
        proposal = call.proposal
        if list(proposal.approvals.values_list("user_id", flat=True)) != given:
            raise InvalidTransition("Someone else approved it meanwhile; look again.")
        ctx = dataclasses.replace(ctx, tool_call=call, run=run)
        try:
            preparation = judge(ptype, ctx)
        except Exception as error:
            preparation = None
            blocked = f"The checks failed at approval: {error_text(error)}."
        if preparation is not None and preparation.blocked:
            failed = checks_failed_text(preparation)
            if edited_input is not None:
                raise InvalidToolInput(f"Your edit fails the checks, so nothing changed: {failed}")
            proposal_checks_record(
                proposal=proposal, preparation=preparation, phase=APPROVAL, actor=user
            )
            blocked = f"Checks failed when {user.get_username()} approved: {failed}"
        if blocked:
            tool_call_close(
                call=call,
                status=TC.BLOCKED,
                actor=user,
                reason=blocked,
                result=f"{blocked}. So it was not approved and did not run.",
                sources=(TC.AWAITING_APPROVAL,),
            )
            turn_settle(run_id=run.pk)
        else:
            _approval_record(
                call=call, proposal=proposal, ctx=ctx, preparation=preparation, user=user,
                edited_input=edited_input, note=note, channel=channel, given=len(given),
            )  # fmt: skip
    if blocked:
        raise ProposalBlocked(blocked + ". The call is closed and Claude is told.")
    call.refresh_from_db()
    return call


def _approval_record(
    *, call, proposal, ctx, preparation, user, edited_input, note, channel, given
) -> None:
    ptype = tool_of(call).proposal
    now = timezone.now()
    proposal_checks_record(proposal=proposal, preparation=preparation, phase=APPROVAL, actor=user)
    Approval.objects.create(
        proposal=proposal, user=user, channel=channel, note=note, edited_input=edited_input
    )
    if edited_input is not None:
        ToolCall.objects.filter(pk=call.pk).update(input_executed=edited_input)
        call.input_executed = edited_input
    # Judged on the input that will run: an edit at the first approval may change the count;
    # once someone approved, it never goes down.
    required = max(1, ptype.approvals(ctx)) if ptype.approvals else proposal.approvals_required
    if given:
        required = max(required, proposal.approvals_required)
    proposal.approvals_required = required
    if ptype.summary:
        proposal.summary = ptype.summary(ctx)[:500]
    proposal.waiting_since = now
    proposal.save(update_fields=["approvals_required", "summary", "waiting_since", "updated_at"])
    final = given + 1 >= required
    kind = "tool.approved_with_edit" if edited_input is not None else "tool.approved"
    if final:
        updated = ToolCall.objects.filter(pk=call.pk, status=TC.AWAITING_APPROVAL).update(
            status=TC.QUEUED,
            decision=ToolCall.Decision.APPROVED,
            decided_by=user,
            decided_at=now,
            decision_reason=note or None,
        )
        if not updated:
            raise InvalidTransition(f"Tool call {call.tool_use_id} changed meanwhile.")
        enqueue_on_commit(EXECUTE_TASK, call.pk)
    else:
        kind = "proposal.approval_recorded"
    audit_record(
        kind=kind,
        run=call.run,
        tool_call=call,
        actor=user,
        message=note,
        data={
            "proposed": call.input_proposed,
            "executed": call.input_executed,
            "approval": given + 1,
            "of": required,
            "channel": channel,
        },
    )
    _log_entry(
        user=user,
        call=call,
        text=f"{'Approved' if final else 'Recorded an approval of'} "
        f"{call.tool_name}" + (" with an edit" if edited_input is not None else ""),
    )
    notice_on_commit(call)


def _log_entry(*, user: Any, call: ToolCall, text: str) -> None:
    """Show the decision in the admin's "Recent actions", beside the audit row that records it."""
    LogEntry.objects.log_actions(
        user_id=user.pk, queryset=[call], action_flag=CHANGE, change_message=text[:1000],
        single_object=True,
    )  # fmt: skip


def proposal_reject(
    *, tool_call_id: int, user: Any, reason: str, channel: str = Approval.Channel.CONSOLE
) -> ToolCall:
    """Reject a proposal; Claude gets an is_error result carrying the reason."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidTransition("A rejection needs a reason; Claude is told it.")
    call = _load(tool_call_id)
    _check_permission(user, call)
    _check_open(call)
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().get(pk=call.run_id)
        call = _load(tool_call_id)
        _check_open(call)
        tool_call_close(
            call=call,
            status=TC.REJECTED,
            actor=user,
            reason=reason,
            result=f"A reviewer rejected this call, so it did not run. Their reason: {reason}",
            data={"channel": channel},
            sources=(TC.AWAITING_APPROVAL,),
        )
        _log_entry(user=user, call=call, text=f"Rejected {call.tool_name}: {reason}")
        turn_settle(run_id=run.pk)
    call.refresh_from_db()
    return call


def proposal_ttl_hours(call: ToolCall) -> float:
    """How long the call may wait for people: its type's, or AGENTS_APPROVAL_TTL_HOURS."""
    tool = tool_of(call)
    if tool is not None and tool.proposal is not None and tool.proposal.ttl_hours is not None:
        return float(tool.proposal.ttl_hours())
    return float(settings.AGENTS_APPROVAL_TTL_HOURS)


def proposal_expire(*, tool_call_id: int, now=None) -> ToolCall | None:
    """Close a proposal that waited too long for a person; Claude is told it did not run."""
    now = now or timezone.now()
    with transaction.atomic():
        call = _load(tool_call_id)
        run = AgentRun.objects.select_for_update().get(pk=call.run_id)
        hours = proposal_ttl_hours(call)
        if hours <= 0 or call.created_at > now - timedelta(hours=hours):
            return None
        if not tool_call_close(
            call=call,
            status=TC.EXPIRED,
            reason=f"No decision within {hours:g} hours.",
            result=f"No one approved this call within {hours:g} hours, so it did not run. Do "
            "not assume it happened.",
            sources=(TC.AWAITING_APPROVAL,),
        ):
            return None
        if not run.is_finished:
            turn_settle(run_id=run.pk)
    return call
