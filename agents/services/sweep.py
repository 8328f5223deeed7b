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
from agents.models import AgentRun, ToolCall
from agents.queue import enqueue_on_commit
from agents.registry import toolset_get
from agents.services.decisions import EXECUTE_TASK, tool_call_expire
from agents.services.dispatch import turn_settle
from agents.services.lifecycle import STEP_TASK, run_end

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

    for call_id in ToolCall.objects.filter(
        status=ToolCall.Status.QUEUED, decided_at__lt=now - GRACE
    ).values_list("pk", flat=True):
        enqueue_on_commit(EXECUTE_TASK, call_id)
        report.calls_queued += 1

    for call_id in ToolCall.objects.filter(
        status=ToolCall.Status.PREPARING, created_at__lt=now - GRACE
    ).values_list("pk", flat=True):
        enqueue_on_commit(PREPARE_TASK, call_id)
        report.calls_queued += 1

    for call in ToolCall.objects.filter(
        status=ToolCall.Status.EXECUTING, claimed_at__lt=stale
    ).select_related("run"):
        _execution_interrupted(call)
        report.calls_interrupted += 1

    ttl = settings.AGENTS_APPROVAL_TTL_HOURS
    if ttl > 0:
        for call_id in ToolCall.objects.filter(
            status=ToolCall.Status.AWAITING_APPROVAL, created_at__lt=now - timedelta(hours=ttl)
        ).values_list("pk", flat=True):
            if tool_call_expire(tool_call_id=call_id, older_than_hours=ttl):
                report.calls_expired += 1
    return report


def _execution_interrupted(call: ToolCall) -> None:
    """A worker died while running the call. Run it again only if that cannot act twice."""
    tool = toolset_get(call.run.toolset).get(call.tool_name)
    if tool is not None and tool.safe_to_retry:
        if ToolCall.objects.filter(pk=call.pk, status=ToolCall.Status.EXECUTING).update(
            status=ToolCall.Status.QUEUED
        ):
            enqueue_on_commit(EXECUTE_TASK, call.pk)
        return
    reason = (
        f"The worker stopped while {call.tool_name} was running; whether it took effect is "
        "unknown, and it is not safe to run again. A person must check."
    )
    with transaction.atomic():
        updated = ToolCall.objects.filter(pk=call.pk, status=ToolCall.Status.EXECUTING).update(
            status=ToolCall.Status.FAILED, result=reason, is_error=True, finished_at=timezone.now()
        )
        if not updated:
            return
        run = AgentRun.objects.select_for_update().get(pk=call.run_id)
        audit_record(kind="tool.interrupted", run=run, tool_call=call, message=reason)
        if not run.is_finished:
            run_end(run=run, status=AgentRun.Status.ESCALATED, reason=reason)
    turn_settle(run_id=call.run_id)
