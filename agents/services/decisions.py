"""A person's decision on a tool call that needs approval: approve, edit then approve, reject.

The permission is checked here, in the service, whatever page or command calls it. Each
decision is a compare-and-set from `awaiting_approval`, so the same decision sent twice (a
double-clicked button, two reviewers at once) takes effect once and the second one raises.
"""

from __future__ import annotations

from typing import Any

import pydantic
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from agents.audit import audit_record
from agents.models import AgentRun, ToolCall
from agents.queue import enqueue_on_commit
from agents.registry import toolset_get
from agents.services.dispatch import errors_describe, turn_settle
from agents.services.errors import InvalidToolInput, InvalidTransition

TC = ToolCall.Status
EXECUTE_TASK = "agents.tasks.tool_call_execute_task"


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


def tool_call_approve(
    *, tool_call_id: int, user: Any, edited_input: dict[str, Any] | None = None, note: str = ""
) -> ToolCall:
    """Approve a call as proposed or with edited input; a worker then runs it."""
    call = ToolCall.objects.select_related("run").get(pk=tool_call_id)
    _check_permission(user, call)
    _check_open(call)
    if edited_input is not None and edited_input == call.input_proposed:
        edited_input = None
    tool = toolset_get(call.run.toolset).get(call.tool_name)
    if tool is None:
        raise InvalidToolInput(f"The tool {call.tool_name!r} is no longer registered.")
    if edited_input is not None:
        try:
            tool.validate(edited_input)
        except pydantic.ValidationError as error:
            summary, details = errors_describe(error)
            raise InvalidToolInput(f"The edited input is not valid: {summary}", details) from None
    if tool.authorize is not None:
        tool.authorize(call, user, edited_input)
    now = timezone.now()
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().get(pk=call.run_id)
        if run.is_finished:
            raise InvalidTransition(f"Run #{run.pk} is {run.get_status_display().lower()}.")
        updated = ToolCall.objects.filter(pk=call.pk, status=TC.AWAITING_APPROVAL).update(
            status=TC.QUEUED,
            decision=ToolCall.Decision.APPROVED,
            decided_by=user,
            decided_at=now,
            decision_reason=note or None,
            input_executed=edited_input,
        )
        if not updated:
            call.refresh_from_db()
            _check_open(call)
        audit_record(
            kind="tool.approved_with_edit" if edited_input is not None else "tool.approved",
            run=run,
            tool_call=call,
            actor=user,
            message=note,
            data={"proposed": call.input_proposed, "executed": edited_input},
        )
        enqueue_on_commit(EXECUTE_TASK, call.pk)
    call.refresh_from_db()
    return call


def tool_call_reject(*, tool_call_id: int, user: Any, reason: str) -> ToolCall:
    """Reject a call; Claude gets an is_error result carrying the reason."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidTransition("A rejection needs a reason; Claude is told it.")
    call = ToolCall.objects.select_related("run").get(pk=tool_call_id)
    _check_permission(user, call)
    _check_open(call)
    return _close(
        call=call,
        status=TC.REJECTED,
        decision=ToolCall.Decision.REJECTED,
        user=user,
        reason=reason,
        result=f"A reviewer rejected this call, so it did not run. Their reason: {reason}",
    )


def tool_call_expire(*, tool_call_id: int, older_than_hours: float) -> ToolCall | None:
    """Close a call that waited too long for a person; Claude is told it did not run."""
    call = ToolCall.objects.select_related("run").get(pk=tool_call_id)
    try:
        return _close(
            call=call,
            status=TC.EXPIRED,
            decision=ToolCall.Decision.EXPIRED,
            user=None,
            reason=f"No decision within {older_than_hours:g} hours.",
            result=f"No one approved this call within {older_than_hours:g} hours, so it did "
            "not run. Do not assume it happened.",
        )
    except InvalidTransition:
        return None


def _close(
    *, call: ToolCall, status: str, decision: str, user: Any, reason: str, result: str
) -> ToolCall:
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().get(pk=call.run_id)
        if run.is_finished:
            raise InvalidTransition(f"Run #{run.pk} is {run.get_status_display().lower()}.")
        updated = ToolCall.objects.filter(pk=call.pk, status=TC.AWAITING_APPROVAL).update(
            status=status,
            decision=decision,
            decided_by=user,
            decided_at=timezone.now(),
            decision_reason=reason,
            result=result,
            is_error=True,
            finished_at=timezone.now(),
        )
        if not updated:
            call.refresh_from_db()
            _check_open(call)
        audit_record(kind=f"tool.{decision}", run=run, tool_call=call, actor=user, message=reason)
        turn_settle(run_id=run.pk)
    call.refresh_from_db()
    return call
