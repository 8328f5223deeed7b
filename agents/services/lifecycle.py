"""Run status changes shared by the step, dispatch and decision services.

Every function here expects to run inside a transaction with the run row locked.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from agents.audit import audit_record
from agents.models import AgentRun, ToolCall
from agents.queue import enqueue_on_commit
from agents.registry import toolset_get

Status = AgentRun.Status
STEP_TASK = "agents.tasks.run_advance_task"


def run_requeue(run: AgentRun) -> None:
    """Release the claim, move to the next step and queue it once this transaction commits."""
    run.status = Status.QUEUED
    run.status_reason = ""
    run.claim_token = None
    run.claimed_at = None
    run.step += 1
    run.save()
    enqueue_on_commit(STEP_TASK, run.pk, run.step)


def run_wait_for_approval(run: AgentRun) -> None:
    """Release the claim: nothing runs until a person decides. No process waits."""
    run.status = Status.AWAITING_APPROVAL
    run.status_reason = ""
    run.claim_token = None
    run.claimed_at = None
    run.save()
    notify_on_commit(run)


def run_end(*, run: AgentRun, status: str, reason: str, actor: Any = None) -> None:
    """Finish the run; its undecided tool calls are cancelled."""
    previous = run.status
    run.status = status
    run.status_reason = reason
    run.claim_token = None
    run.claimed_at = None
    run.next_attempt_at = None
    run.finished_at = timezone.now()
    run.save()
    tool_calls_cancel_open(run=run, reason=reason)
    audit_record(
        kind=f"run.{status}",
        run=run,
        actor=actor,
        message=reason,
        data={"from": previous, "turns": run.turns, "cost_usd": str(run.cost_usd)},
    )
    notify_on_commit(run)


def tool_calls_cancel_open(*, run: AgentRun, reason: str) -> int:
    """Cancel the run's calls that were never started; they will not run."""
    now = timezone.now()
    return ToolCall.objects.filter(
        run=run,
        status__in=[
            ToolCall.Status.PREPARING,
            ToolCall.Status.AWAITING_APPROVAL,
            ToolCall.Status.QUEUED,
        ],
    ).update(
        status=ToolCall.Status.CANCELLED,
        result=f"Not run: the run ended ({reason})",
        is_error=True,
        finished_at=now,
    )


def notify_on_commit(run: AgentRun) -> None:
    """Tell the run's domain, after commit, that the run's status changed."""
    hook = toolset_get(run.toolset).on_status_change
    if hook is not None:
        run_id = run.pk
        transaction.on_commit(lambda: hook(AgentRun.objects.get(pk=run_id)))
