"""Run status changes shared by the step, dispatch and decision services.

Every function here expects to run inside a transaction with the run row locked.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import transaction
from django.utils import timezone

from agents.audit import audit_record, nul_free
from agents.models import AgentRun, ToolCall
from agents.queue import enqueue_on_commit
from agents.registry import proposal_type_of, toolset_get

Status = AgentRun.Status
STEP_TASK = "agents.tasks.run_advance_task"


# The run whose steps this task takes one after another (see runs.run_drive): its next step is
# not queued on the broker as well.
_driving: ContextVar[int | None] = ContextVar("driving", default=None)


@contextmanager
def driving(run_id: int) -> Iterator[None]:
    """While inside, this task takes the run's next steps itself."""
    token = _driving.set(run_id)
    try:
        yield
    finally:
        _driving.reset(token)


def step_queue_on_commit(run: AgentRun) -> None:
    """Queue the run's step once this transaction commits, unless this task takes it itself."""
    if _driving.get() != run.pk:
        enqueue_on_commit(STEP_TASK, run.pk, run.step)


def run_requeue(run: AgentRun) -> None:
    """Release the claim, move to the next step and queue it once this transaction commits."""
    run.status = Status.QUEUED
    run.status_reason = ""
    run.claim_token = None
    run.claimed_at = None
    run.step += 1
    run.save()
    step_queue_on_commit(run)


def run_wait_for_approval(run: AgentRun) -> None:
    """Release the claim: nothing runs until a person decides. No process waits."""
    run.status = Status.AWAITING_APPROVAL
    run.status_reason = ""
    run.claim_token = None
    run.claimed_at = None
    run.save()
    notify_on_commit(run)


def run_end(
    *, run: AgentRun, status: str, reason: str, actor: Any = None, claim: uuid.UUID | None = None
) -> bool:
    """Finish the run; its undecided tool calls are cancelled.

    With `claim`, the run need not be locked: its save is the compare-and-set on that claim of
    a running run, and nothing is written (False) when the claim was lost meanwhile.
    """
    previous = run.status
    run.status = status
    run.status_reason = reason
    run.claim_token = None
    run.claimed_at = None
    run.next_attempt_at = None
    run.finished_at = run.updated_at = timezone.now()
    if claim is None:
        run.save()
    elif not run_save_claimed(run, claim=claim):
        return False
    tool_calls_cancel_open(run=run, reason=reason, actor=actor)
    audit_record(
        kind=f"run.{status}",
        run=run,
        actor=actor,
        message=reason,
        data={"from": previous, "turns": run.turns, "cost_usd": str(run.cost_usd)},
    )
    notify_on_commit(run)
    return True


# What a step writes on the run it holds the claim of (its reply, counts, status, claim, step).
STEP_FIELDS = (
    "messages",
    "turns",
    "attempts",
    "next_attempt_at",
    "last_stop_reason",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "status",
    "status_reason",
    "claim_token",
    "claimed_at",
    "step",
)


def run_save_claimed(run: AgentRun, *, claim: uuid.UUID) -> bool:
    """Save the step's fields if the run is still running on `claim`: one UPDATE, no read."""
    fields = {name: getattr(run, name) for name in (*STEP_FIELDS, "finished_at", "updated_at")}
    claimed = AgentRun.objects.filter(pk=run.pk, status=Status.RUNNING, claim_token=claim)
    return bool(claimed.update(**fields))


def tool_calls_cancel_open(*, run: AgentRun, reason: str, actor: Any = None) -> int:
    """Cancel the run's calls that were never started; they will not run."""
    cancelled = 0
    for call in ToolCall.objects.filter(run=run, status__in=NOT_STARTED).order_by("position"):
        cancelled += tool_call_close(
            call=call,
            status=ToolCall.Status.CANCELLED,
            result=f"Not run: the run ended ({reason})",
            reason=reason,
            actor=actor,
        )
    return cancelled


NOT_STARTED = (ToolCall.Status.PREPARING, ToolCall.Status.AWAITING_APPROVAL, ToolCall.Status.QUEUED)
OPEN = (*NOT_STARTED, ToolCall.Status.EXECUTING)
# Closing statuses that are a person's (or the clock's) decision, recorded as such.
DECISIONS = {
    ToolCall.Status.REJECTED: ToolCall.Decision.REJECTED,
    ToolCall.Status.BLOCKED: ToolCall.Decision.BLOCKED,
    ToolCall.Status.EXPIRED: ToolCall.Decision.EXPIRED,
}


def tool_call_close(
    *,
    call: ToolCall,
    status: str,
    result: str,
    reason: str = "",
    actor: Any = None,
    is_error: bool = True,
    duration_ms: int | None = None,
    data: dict[str, Any] | None = None,
    sources: tuple[str, ...] = OPEN,
) -> int:
    """Close a call however it closes, and its proposal's domain row with it: one transaction.

    Every path that ends a call comes here: it ran (succeeded or failed), a person rejected it,
    its checks blocked it, it expired, it was cancelled or its run ended. The domain's
    `on_close` runs in the same transaction and the notice is updated after commit, so no
    domain row and no message can be left saying the call still waits. Returns 1, or 0 when
    the call had already moved on (nothing is written then).
    """
    now = timezone.now()
    fields: dict[str, Any] = {
        "status": status,
        "result": nul_free(result),
        "is_error": is_error,
        "finished_at": now,
        "next_attempt_at": None,
    }
    if duration_ms is not None:
        fields["duration_ms"] = duration_ms
    decision = DECISIONS.get(status)
    if decision is not None and call.decision is None:
        fields.update(decision=decision, decided_by=actor, decided_at=now, decision_reason=reason)
    with transaction.atomic():
        if not ToolCall.objects.filter(pk=call.pk, status__in=sources).update(**fields):
            return 0
        for name, value in fields.items():
            setattr(call, name, value)
        ptype = proposal_type_of(call)
        if ptype is not None:
            audit_record(
                kind=f"proposal.{status}",
                run=call.run,
                tool_call=call,
                actor=actor,
                message=reason or result,
                data={**(data or {}), "tool": call.tool_name},
            )
            if ptype.on_close is not None and ptype.model is not None:
                record = ptype.model.objects.filter(tool_call_id=call.pk).first()
                if record is not None:
                    ptype.on_close(record, status)
            notice_on_commit(call)
        elif status == ToolCall.Status.FAILED:
            # A read-only tool's refusal (another customer's data, a path outside the tree).
            audit_record(
                kind="tool.failed",
                run=call.run,
                tool_call=call,
                message=reason or result,
                data={"tool": call.tool_name},
            )
        elif status != ToolCall.Status.SUCCEEDED:
            audit_record(kind=f"tool.{status}", run=call.run, tool_call=call, message=reason)
    return 1


def notice_on_commit(call: ToolCall) -> None:
    """Bring the proposal's notices (Slack, mail) up to date once this transaction commits."""
    from agents.notices import proposal_notices_queue

    proposal_notices_queue(tool_call_id=call.pk)


def notify_on_commit(run: AgentRun) -> None:
    """Tell the run's domain, after commit, that the run's status changed."""
    hook = toolset_get(run.toolset).on_status_change
    if hook is not None:
        run_id = run.pk
        transaction.on_commit(lambda: hook(AgentRun.objects.get(pk=run_id)))
