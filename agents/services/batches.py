"""Backlog mode: the first model call of many runs through the Message Batches API, at half price.

A run is held for a batch in the transaction that starts it: its first step is claimed like any
other (`_run_claim`) and the run parks as BATCHED, its claim token kept on its `BatchRequest`. No
step task and no sweep takes a BATCHED run. `batches_work` (a periodic task) submits what is
held, polls the open batches and, once one has ended, records each reply through the path a
normal reply takes (`_reply_record`, then `turn_dispatch`), so a proposal from a batch waits for
the same checks and approvals. Everything else goes back to the normal path (a step task, at
full price): an errored, expired or cancelled result, a batch that could not be submitted, a run
whose batch is still silent after AGENTS_BATCH_TIMEOUT_HOURS. Later steps of a run (after its
tool results) take the normal path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from agents import llm
from agents.audit import audit_record
from agents.models import AgentRun, BatchRequest, MessageBatch
from agents.queue import enqueue_on_commit
from agents.services.dispatch import turn_dispatch
from agents.services.lifecycle import STEP_TASK
from agents.services.runs import _reply_record, _run_claim, run_model_request

logger = logging.getLogger(__name__)

Status = AgentRun.Status
Held = BatchRequest.State
WORK_TASK = "agents.tasks.batches_work_task"
DISPATCH_TASK = "agents.tasks.batch_reply_dispatch_task"
# Batch ids are recorded within moments of submitting; a SUBMITTING batch this old was left by
# a worker that died mid-call.
SUBMIT_GRACE = timedelta(minutes=10)
MAX_LATENCY_MS = 2**31 - 1


@dataclass
class BatchReport:
    submitted: int = 0
    recorded: int = 0
    released: int = 0
    dropped: int = 0


def batches_enabled() -> bool:
    return bool(settings.AGENTS_BATCH_ENABLED)


def run_batch_hold(*, run_id: int) -> bool:
    """Hold a new run's first model call for a batch. Call it in the transaction that started it.

    Returns False (the run stays on the normal path) when backlog mode is off, the run's backend
    has no batches (replay), or the step was taken or has moved on already.
    """
    if not batches_enabled():
        return False
    with transaction.atomic():
        # The audit event below reads the run's subject: deferred, each would be a query.
        fields = ("pk", "step", "turns", "backend", "subject_type", "subject_id")
        run = AgentRun.objects.only(*fields).get(pk=run_id)
        if run.backend != "anthropic" or run.turns:
            return False
        token = _run_claim(run_id=run_id, step=run.step)
        if token is None:
            return False
        AgentRun.objects.filter(pk=run_id, claim_token=token).update(
            status=Status.BATCHED,
            status_reason="Held for a Message Batch (backlog mode).",
            updated_at=timezone.now(),
        )
        BatchRequest.objects.create(run_id=run_id, step=run.step, claim_token=token)
        audit_record(
            kind="run.batch_held",
            run=run,
            message="The first model call waits for a Message Batch (half price).",
        )
    return True


def batches_work_on_commit() -> None:
    """Have a worker submit what is held (and poll) once this transaction commits."""
    enqueue_on_commit(WORK_TASK)


def batches_work(*, now: datetime | None = None) -> BatchReport:
    """Submit held requests, poll open batches, and send overdue runs back to the normal path."""
    report = BatchReport()
    report.released += batches_release_stale(now=now)
    for batch in batches_submit():
        report.submitted += batch.requests.count()
    for batch_pk in MessageBatch.objects.filter(status=MessageBatch.Status.IN_PROGRESS).values_list(
        "pk", flat=True
    ):
        polled = batch_poll(batch_pk=batch_pk)
        report.recorded += polled.recorded
        report.released += polled.released
        report.dropped += polled.dropped
    return report


def batches_submit() -> list[MessageBatch]:
    """Submit every held request, AGENTS_BATCH_MAX_REQUESTS to a batch; returns those sent."""
    sent = []
    size = max(1, settings.AGENTS_BATCH_MAX_REQUESTS)
    while True:
        with transaction.atomic():
            ids = list(
                BatchRequest.objects.filter(state=Held.HELD, batch=None)
                .order_by("pk")
                .values_list("pk", flat=True)[:size]
            )
            if not ids:
                return sent
            batch = MessageBatch.objects.create()
            # Compare-and-set: two submitters never put one request in two batches.
            taken = BatchRequest.objects.filter(pk__in=ids, state=Held.HELD, batch=None).update(
                batch=batch
            )
            if not taken:
                batch.delete()
                continue
        if _batch_send(batch):
            sent.append(batch)


def _batch_send(batch: MessageBatch) -> bool:
    """Make the one API call that creates the batch, outside any transaction; record its id."""
    requests = list(batch.requests.select_related("run").filter(state=Held.HELD))
    try:
        state = llm.batch_create([(r.custom_id, run_model_request(r.run)) for r in requests])
    except llm.ModelError as error:
        _batch_fail(batch=batch, reason=f"The batch could not be submitted: {error}")
        return False
    now = timezone.now()
    with transaction.atomic():
        MessageBatch.objects.filter(pk=batch.pk, status=MessageBatch.Status.SUBMITTING).update(
            batch_id=state.batch_id,
            status=MessageBatch.Status.IN_PROGRESS,
            processing_status=state.processing_status,
            request_counts=state.request_counts,
            submitted_at=now,
            expires_at=state.expires_at,
        )
        BatchRequest.objects.filter(batch=batch, state=Held.HELD).update(state=Held.SUBMITTED)
        audit_record(
            kind="batch.submitted",
            subject_type="agents.messagebatch",
            subject_id=batch.pk,
            message=f"Message Batch {state.batch_id} submitted with {len(requests)} request(s).",
            data={"batch_id": state.batch_id, "runs": [r.run_id for r in requests]},
        )
    batch.batch_id = state.batch_id
    return True


def _batch_fail(*, batch: MessageBatch, reason: str) -> None:
    with transaction.atomic():
        if not MessageBatch.objects.filter(
            pk=batch.pk, status=MessageBatch.Status.SUBMITTING
        ).update(status=MessageBatch.Status.FAILED, status_reason=reason):
            return
        for request in batch.requests.filter(state=Held.HELD):
            _request_release(request=request, reason=reason)
        audit_record(
            kind="batch.failed",
            subject_type="agents.messagebatch",
            subject_id=batch.pk,
            message=reason,
        )


@dataclass
class _Polled:
    recorded: int = 0
    released: int = 0
    dropped: int = 0


def batch_poll(*, batch_pk: int) -> _Polled:
    """Ask how the batch stands; once it has ended, record each of its results once."""
    polled = _Polled()
    batch = MessageBatch.objects.get(pk=batch_pk)
    if batch.status != MessageBatch.Status.IN_PROGRESS:
        return polled
    try:
        state = llm.batch_retrieve(batch.batch_id)
        results = llm.batch_results(batch.batch_id) if state.processing_status == "ended" else []
    except llm.ModelError as error:
        logger.warning("batch %s: poll failed, trying again later: %s", batch.batch_id, error)
        MessageBatch.objects.filter(pk=batch.pk).update(
            polled_at=timezone.now(), status_reason=f"Last poll failed: {error}"
        )
        return polled
    now = timezone.now()
    MessageBatch.objects.filter(pk=batch.pk).update(
        processing_status=state.processing_status,
        request_counts=state.request_counts,
        polled_at=now,
        status_reason="",
    )
    if state.processing_status != "ended":
        return polled
    ended = state.ended_at or now
    latency = int((ended - (batch.submitted_at or ended)).total_seconds() * 1000)
    requests = {r.custom_id: r for r in batch.requests.filter(state=Held.SUBMITTED)}
    for result in results:
        request = requests.pop(result.custom_id, None)
        if request is None:
            continue  # recorded already (a second poll), or not ours
        outcome = _result_record(
            batch=batch, request=request, result=result, latency_ms=min(latency, MAX_LATENCY_MS)
        )
        setattr(polled, outcome, getattr(polled, outcome) + 1)
    for request in requests.values():
        with transaction.atomic():
            if _request_release(request=request, reason="The batch ended without its result."):
                polled.released += 1
    with transaction.atomic():
        if not MessageBatch.objects.filter(
            pk=batch.pk, status=MessageBatch.Status.IN_PROGRESS
        ).update(status=MessageBatch.Status.ENDED, ended_at=ended):
            return polled  # another poll closed it meanwhile
        audit_record(
            kind="batch.ended",
            subject_type="agents.messagebatch",
            subject_id=batch.pk,
            message=f"Message Batch {batch.batch_id} ended: {polled.recorded} reply(ies) recorded, "
            f"{polled.released} run(s) back on the normal path, {polled.dropped} result(s) unused.",
            data={"request_counts": state.request_counts},
        )
    return polled


def _result_record(
    *, batch: MessageBatch, request: BatchRequest, result: llm.BatchResult, latency_ms: int
) -> str:
    """Record one result in one transaction: `recorded`, `released` or `dropped`."""
    now = timezone.now()
    dispatch = False
    with transaction.atomic():
        if result.kind != "succeeded":
            reason = f"The batch answered {result.kind}" + (
                f" ({result.error})." if result.error else "."
            )
            return "released" if _request_release(request=request, reason=reason) else "dropped"
        # The request's compare-and-set comes first: a result seen twice is recorded once.
        if not BatchRequest.objects.filter(pk=request.pk, state=Held.SUBMITTED).update(
            state=Held.RECORDED, result_type=result.kind, finished_at=now
        ):
            return "dropped"
        resumed = AgentRun.objects.filter(
            pk=request.run_id,
            status=Status.BATCHED,
            step=request.step,
            claim_token=request.claim_token,
        ).update(status=Status.RUNNING, claimed_at=now, status_reason="", updated_at=now)
        if not resumed:
            BatchRequest.objects.filter(pk=request.pk).update(
                state=Held.DROPPED,
                detail="The run had moved on (cancelled, or back on the normal path).",
            )
            return "dropped"
        reply = llm.ModelReply(
            message=result.message, request_id=batch.batch_id, latency_ms=latency_ms, batch=True
        )
        dispatch = _reply_record(run_id=request.run_id, token=request.claim_token, reply=reply)
        if dispatch:
            # Read-only tools run in a task of each run's own, not one after another here.
            enqueue_on_commit(DISPATCH_TASK, request.run_id)
    return "recorded"


def batch_reply_dispatch(*, run_id: int) -> None:
    """Dispatch the tool calls of a reply a batch brought, as `run_advance` does after a reply."""
    turn_dispatch(run_id=run_id)


def _request_release(*, request: BatchRequest, reason: str) -> bool:
    """Put a held or submitted request's run back on the normal path (inside a transaction)."""
    now = timezone.now()
    if not BatchRequest.objects.filter(pk=request.pk, state__in=(Held.HELD, Held.SUBMITTED)).update(
        state=Held.RELEASED, detail=reason, finished_at=now
    ):
        return False
    released = AgentRun.objects.filter(
        pk=request.run_id, status=Status.BATCHED, step=request.step, claim_token=request.claim_token
    ).update(
        status=Status.QUEUED,
        claim_token=None,
        claimed_at=None,
        next_attempt_at=None,
        status_reason=f"{reason} Going on without the batch.",
        updated_at=now,
    )
    if released:
        audit_record(
            kind="run.batch_released",
            run=AgentRun.objects.get(pk=request.run_id),
            message=f"{reason} The run goes on without the batch, at full price.",
        )
        enqueue_on_commit(STEP_TASK, request.run_id, request.step)
    return bool(released)


def batches_release_stale(*, now: datetime | None = None) -> int:
    """Send back to the normal path what a batch will not answer in time; returns runs released.

    A run held longer than AGENTS_BATCH_TIMEOUT_HOURS, and the requests of a batch whose
    submitting worker died before it recorded the batch's id. The sweep calls this too, so a
    run never waits for a batch forever even when nothing polls.
    """
    now = now or timezone.now()
    released = 0
    overdue = now - timedelta(hours=settings.AGENTS_BATCH_TIMEOUT_HOURS)
    lost = Q(batch__status=MessageBatch.Status.SUBMITTING, batch__created_at__lt=now - SUBMIT_GRACE)
    stale = BatchRequest.objects.filter(
        Q(created_at__lt=overdue) | lost, state__in=(Held.HELD, Held.SUBMITTED)
    )
    batches = set()
    for request in stale.select_related("batch"):
        reason = (
            f"No answer from the batch in {settings.AGENTS_BATCH_TIMEOUT_HOURS:g} hours."
            if request.created_at < overdue
            else "The batch's submission was interrupted."
        )
        with transaction.atomic():
            released += _request_release(request=request, reason=reason)
        if request.batch is not None:
            batches.add(request.batch)
    for batch in batches:
        _batch_close_if_empty(batch=batch)
    return released


def _batch_close_if_empty(*, batch: MessageBatch) -> None:
    """A batch none of whose requests waits any more is cancelled (what it still does is unpaid
    work nobody reads) and closed."""
    if batch.requests.filter(state__in=(Held.HELD, Held.SUBMITTED)).exists():
        return
    if batch.status == MessageBatch.Status.IN_PROGRESS and batch.batch_id:
        try:
            llm.batch_cancel(batch.batch_id)
        except llm.ModelError as error:
            logger.warning("batch %s: cancel failed: %s", batch.batch_id, error)
    MessageBatch.objects.filter(pk=batch.pk, status__in=MessageBatch.OPEN).update(
        status=MessageBatch.Status.ENDED
        if batch.status == MessageBatch.Status.IN_PROGRESS
        else MessageBatch.Status.FAILED,
        status_reason="Every run it carried went back to the normal path.",
        ended_at=timezone.now(),
    )
