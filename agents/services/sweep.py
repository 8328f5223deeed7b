"""The periodic sweep: the safety net that makes every run resume after any crash.

Tasks are queued on commit and delivered at least once, but a broker can lose a message and a
worker can die mid-task. Every minute the sweep finds work that should be moving and is not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from agents.audit import audit_record
from agents.models import AgentRun, Proposal, ToolCall
from agents.notices import TASK as NOTICES_TASK
from agents.notices import notices_due
from agents.queue import enqueue_on_commit
from agents.registry import toolset_get
from agents.services.batches import batches_release_stale
from agents.services.decisions import EXECUTE_TASK, proposal_expire, proposal_ttl_hours
from agents.services.dispatch import turn_settle
from agents.services.lifecycle import STEP_TASK, run_end, tool_call_close
from agents.services.proposals import checks_fail

PREPARE_TASK = "agents.tasks.tool_call_prepare_task"

logger = logging.getLogger(__name__)

# A task queued less than this long ago is probably still in the broker: leave it be.
GRACE = timedelta(minutes=2)


@dataclass
class SweepReport:
    runs_queued: int = 0
    calls_queued: int = 0
    calls_interrupted: int = 0
    calls_expired: int = 0
    notices_queued: int = 0


def agents_sweep(*, now: datetime | None = None) -> SweepReport:
    """Queue again what is due or stalled, settle interrupted calls, expire stale approvals."""
    now = now or timezone.now()
    report = SweepReport()
    stale = now - timedelta(seconds=settings.AGENTS_STALE_CLAIM_SECONDS)
    due_runs = AgentRun.objects.filter(
        Q(status=AgentRun.Status.QUEUED, next_attempt_at__lte=now)
        | Q(status=AgentRun.Status.QUEUED, next_attempt_at__isnull=True, updated_at__lt=now - GRACE)
        | Q(status=AgentRun.Status.RUNNING, claimed_at__lt=stale)
    ).values_list("pk", "step")
    for run_id, step in due_runs:
        enqueue_on_commit(STEP_TASK, run_id, step)
        report.runs_queued += 1
    # A run waiting for its Message Batch (BATCHED) is none of the above until its time is up.
    report.runs_queued += batches_release_stale(now=now)

    # A call waiting out a transient failure is due by the sweep's clock: the sweep clears its
    # delay as it queues it, so the task finds it due.
    for call_id in ToolCall.objects.filter(
        Q(next_attempt_at__lte=now)
        | Q(next_attempt_at__isnull=True, decided_at__lt=now - GRACE)
        | Q(next_attempt_at__isnull=True, decided_at__isnull=True, created_at__lt=now - GRACE),
        status=ToolCall.Status.QUEUED,
    ).values_list("pk", flat=True):
        ToolCall.objects.filter(pk=call_id, status=ToolCall.Status.QUEUED).update(
            next_attempt_at=None
        )
        enqueue_on_commit(EXECUTE_TASK, call_id)
        report.calls_queued += 1

    # Checks that never finish (a read that hangs until the worker is killed) have a deadline.
    # (Every try may take a stale claim's time and wait the longest delay before the next.)
    overdue = now - timedelta(
        seconds=(settings.AGENTS_STALE_CLAIM_SECONDS + settings.AGENTS_RETRY_MAX_SECONDS)
        * settings.AGENTS_CHECK_MAX_ATTEMPTS
    )
    for call in ToolCall.objects.filter(
        status=ToolCall.Status.PREPARING, created_at__lt=overdue
    ).select_related("run", "proposal"):
        minutes = int((now - call.created_at).total_seconds() // 60)
        if checks_fail(call, f"The checks did not finish in {minutes} minutes."):
            report.calls_interrupted += 1
            turn_settle(run_id=call.run_id)

    for call_id in ToolCall.objects.filter(
        Q(proposal__next_check_at__isnull=True) | Q(proposal__next_check_at__lte=now),
        status=ToolCall.Status.PREPARING,
        created_at__lt=now - GRACE,
    ).values_list("pk", flat=True):
        Proposal.objects.filter(pk=call_id).update(next_check_at=None)
        enqueue_on_commit(PREPARE_TASK, call_id)
        report.calls_queued += 1

    for call in ToolCall.objects.filter(
        status=ToolCall.Status.EXECUTING, claimed_at__lt=stale
    ).select_related("run"):
        _execution_interrupted(call)
        report.calls_interrupted += 1

    # Each proposal type has its own time to live: expire the calls past theirs.
    waiting = ToolCall.objects.filter(status=ToolCall.Status.AWAITING_APPROVAL)
    for call in waiting.select_related("run").only("created_at", "tool_name", "run__toolset"):
        hours = proposal_ttl_hours(call)
        due = hours > 0 and call.created_at < now - timedelta(hours=hours)
        if due and proposal_expire(tool_call_id=call.pk, now=now):
            report.calls_expired += 1

    # Notices a killed task or an outage left behind (posting, or showing an older state).
    for tool_call_id in notices_due(now=now, grace=GRACE):
        enqueue_on_commit(NOTICES_TASK, tool_call_id)
        report.notices_queued += 1
    return report


def _execution_interrupted(call: ToolCall) -> None:
    """A worker died while running the call. Run it again only if that cannot act twice."""
    tool = toolset_get(call.run.toolset).get(call.tool_name)
    cap = settings.AGENTS_EXECUTE_MAX_ATTEMPTS
    if tool is not None and tool.safe_to_retry and call.attempts < cap:
        if ToolCall.objects.filter(pk=call.pk, status=ToolCall.Status.EXECUTING).update(
            status=ToolCall.Status.QUEUED, claimed_at=None, next_attempt_at=None
        ):
            enqueue_on_commit(EXECUTE_TASK, call.pk)
        return
    if tool is not None and tool.safe_to_retry:
        reason = (
            f"The worker stopped while {call.tool_name} was running, {call.attempts} times; it "
            "is not tried again. Whether it took effect is unknown: a person must check."
        )
    else:
        reason = (
            f"The worker stopped while {call.tool_name} was running; whether it took effect is "
            "unknown, and it is not safe to run again. A person must check."
        )
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().get(pk=call.run_id)
        if not tool_call_close(
            call=call,
            status=ToolCall.Status.FAILED,
            result=reason,
            reason=reason,
            sources=(ToolCall.Status.EXECUTING,),
        ):
            return
        audit_record(kind="tool.interrupted", run=run, tool_call=call, message=reason)
        if not run.is_finished:
            run_end(run=run, status=AgentRun.Status.ESCALATED, reason=reason)
    turn_settle(run_id=call.run_id)
