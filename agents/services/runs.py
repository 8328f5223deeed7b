"""Starting, advancing and ending agent runs.

A run advances one model call per step. The task claims the run by compare-and-set, commits,
calls the model outside any transaction, and saves the reply (and the tool calls it asks for)
before anything acts on it. A step task delivered twice finds the claim or a newer step and
does nothing, so one step never makes two model calls. A task that goes on with the run takes
its next steps itself (`run_drive`): a turn of look-ups claims the next step as it is saved,
and that step's model call is asked while the save runs; its reply is used only once the save
has committed, under the claim the save took.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.db.models import F, Q
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from agents import llm, redaction
from agents.audit import audit_event, audit_record, nul_free
from agents.models import AgentRun, AuditEvent, ModelCall, ToolCall
from agents.pricing import cost_estimate
from agents.prompts import prompt_get
from agents.queue import enqueue_on_commit
from agents.registry import toolset_get
from agents.services import lifecycle
from agents.services.dispatch import (
    refusal_event,
    results_sent_event,
    tool_calls_create,
    turn_dispatch,
    turn_results,
    turn_run_at_once,
)
from agents.services.errors import InvalidTransition
from agents.services.lifecycle import run_end, run_requeue

logger = logging.getLogger(__name__)

Status = AgentRun.Status
STEP_TASK = "agents.tasks.run_advance_task"

# Stop reasons that end or continue a run, handled one by one in `_reply_record`.
CONTINUE_STOPS = {"tool_use", "pause_turn", "max_tokens"}
END_STOPS = {"end_turn", "stop_sequence"}


def run_start(
    *,
    toolset: str,
    user_message: str | list[dict[str, Any]],
    subject_type: str = "",
    subject_id: str | int = "",
    prompt_context: dict[str, Any] | None = None,
    started_by: Any = None,
) -> AgentRun:
    """Create a queued run with its first user message and queue its first step."""
    ts = toolset_get(toolset)
    prompt = prompt_get(name=ts.prompt)
    content = redaction.content_mask(
        [{"type": "text", "text": user_message}] if isinstance(user_message, str) else user_message
    )
    with transaction.atomic():
        run = AgentRun.objects.create(
            toolset=ts.name,
            prompt_name=prompt.name,
            prompt_version=prompt.version,
            system=redaction.mask(prompt.render(prompt_context)),
            model=llm.configured_model(),
            backend=llm.configured_backend(),
            max_tokens=settings.AGENTS_MAX_TOKENS,
            messages=[{"role": "user", "content": content}],
            subject_type=subject_type,
            subject_id=str(subject_id),
            started_by=started_by if getattr(started_by, "is_authenticated", False) else None,
        )
        audit_record(
            kind="run.started",
            run=run,
            actor=started_by,
            message=f"{ts.label} run started with prompt {prompt.name} v{prompt.version}.",
            data={"model": run.model, "backend": run.backend},
        )
        enqueue_on_commit(STEP_TASK, run.pk, run.step)
    return run


def run_advance(*, run_id: int, step: int) -> AgentRun | None:
    """Do the work of one step: dispatch a saved reply's tool calls, or make one model call.

    The claim reads the run in the same statement. Returns the run as the step left it when the
    step saved everything in one transaction (a turn of look-ups, the run's end), else None.
    """
    return _advance(run_id=run_id, step=step).run


@dataclass(frozen=True)
class Advanced:
    """What a step leaves for the task that goes on: the run as saved, its next model call."""

    run: AgentRun | None
    ahead: Future | None = None


def _advance(
    *,
    run_id: int,
    step: int,
    run: AgentRun | None = None,
    go_on: bool = False,
    ahead: Future | None = None,
) -> Advanced:
    """`run_advance`, for a task that goes on with the run (see `run_drive`).

    `run` is the run as the step before this one saved it, running on a claim of this step
    handed on to this task: it cannot have changed since, so it is neither claimed nor read
    again. With `go_on`, a turn of look-ups hands its claim on that way and asks the next
    step's model call while the turn is being saved (`ahead`); the next step takes its reply
    from it.
    """
    if run is not None and run.pk == run_id and run.step == step and run.claim_token:
        token = run.claim_token
    else:
        run = _run_claim_read(run_id=run_id, step=step)
        token = run.claim_token if run is not None else None
    nothing = Advanced(None)
    if token is None:
        logger.info("run %s step %s: already claimed or moved on; nothing to do", run_id, step)
        return nothing
    if _last_reply_unanswered(run):
        # A worker saved the reply and died before its tool calls were answered.
        tool_calls_create(run=run)
        turn_dispatch(run_id=run.pk)
        return nothing
    if reason := _cap_reached(run):
        _ahead_drop(ahead, run=run)  # (asked only when the cap allowed this step)
        _run_end_claimed(run=run, token=token, status=Status.FAILED, reason=reason)
        return nothing
    try:
        if ahead is None:
            reply = llm.backend_get(run.backend).create(run_model_request(run))
        else:
            reply = ahead.result()
    except llm.ModelUnavailable as error:
        _model_unavailable(run=run, token=token, error=error)
        return nothing
    except llm.ModelError as error:
        _model_call_error_record(run=run, error=error)
        _run_end_claimed(
            run=run, token=token, status=Status.FAILED, reason=f"The model call failed: {error}"
        )
        return nothing
    answered = _turn_at_once(run=run, token=token, reply=reply, go_on=go_on)
    if answered is not None:
        return answered
    if reply.message.stop_reason in END_STOPS:
        return Advanced(_end_at_once(run=run, token=token, reply=reply))
    if _reply_record(run_id=run.pk, token=token, reply=reply, step=run.step):
        turn_dispatch(run_id=run.pk)
    return nothing


def _ask_ahead(run: AgentRun) -> Future:
    """Start the run's next model call on a thread of its own; its reply, or error, comes back.

    A daemon thread: a worker that exits (a task killed at its timeout) does not wait for it.
    The call touches no database.
    """
    request, backend = run_model_request(run), llm.backend_get(run.backend)
    ahead: Future = Future()

    def call() -> None:
        if not ahead.set_running_or_notify_cancel():
            return
        try:
            ahead.set_result(backend.create(request))
        except BaseException as error:  # handed to the step that reads it, as if it called
            ahead.set_exception(error)

    threading.Thread(target=call, name=f"model-call-ahead-{run.pk}", daemon=True).start()
    return ahead


def _ahead_drop(ahead: Future | None, *, run: AgentRun) -> None:
    """A model call asked ahead for a step that is not taken: wait for it, record it unused."""
    if ahead is None or ahead.cancel():
        return
    try:
        reply = ahead.result()
    except llm.ModelError as error:
        _model_call_error_record(run=run, error=error)
    else:
        _reply_dropped(run=run, reply=reply)


def _reply_dropped(*, run: AgentRun, reply: llm.ModelReply, step: int | None = None) -> None:
    """A reply that came back after its step lost its claim: recorded as a call, never used."""
    step = run.step if step is None else step
    logger.warning("run %s step %s: the claim was lost; the reply is not used", run.pk, step)
    usage = _usage(reply.message)
    call = _model_call(run=run, reply=reply, usage=usage, cost=_reply_cost(run, reply, usage))
    call.step, call.error = step, DROPPED
    call.save(force_insert=True)


DROPPED = "Not used: the run changed (it was cancelled or taken over) while this call was out."


def run_model_request(run: AgentRun) -> llm.ModelRequest:
    """The request for the run's next model call (a step's, or a batch's)."""
    return llm.ModelRequest(
        toolset=run.toolset,
        model=run.model,
        system=run.system,
        tools=toolset_get(run.toolset).specs(),
        messages=run.messages,
        max_tokens=run.max_tokens,
        run_id=run.pk,
    )


def run_drive(*, run_id: int, step: int) -> None:
    """Advance the run at `step`, then go on in this task with each next step due at once.

    What continues here never waits for the broker between a tool result and the next model
    call, and the next step is not queued while this task will take it (queued, it would only
    find its step claimed). A turn of look-ups hands its claim on to the next step as it is
    saved; if this process dies before that step's model call, the sweep takes the step back
    once the claim is stale, as for a death during a model call. When the loop stops with a
    step due (the deadline, the bound), that step is queued; if this process dies in between,
    the sweep queues it (a queued run left alone). Bounded by the turn cap and by a quarter of
    the task timeout (django-q2 kills a task that outlives it, so a step begun late still has
    most of it); a step with a delay (a retry) is left to the sweep.
    """
    deadline = time.monotonic() + settings.Q_CLUSTER.get("timeout", 300) / 4
    bound = 2 * settings.AGENTS_MAX_TURNS + 2
    run: AgentRun | None = None
    ahead: Future | None = None
    with lifecycle.driving(run_id):
        for index in range(bound):
            go_on = index + 1 < bound and time.monotonic() < deadline
            advanced = _advance(run_id=run_id, step=step, run=run, go_on=go_on, ahead=ahead)
            run, ahead = advanced.run, advanced.ahead
            if run is not None and run.status == Status.RUNNING:
                step = run.step  # its claim is this task's: take the step now
                continue
            if time.monotonic() > deadline:
                break
            if run is not None:
                if run.status != Status.QUEUED or run.next_attempt_at is not None:
                    return
                step = run.step
                continue
            due = _step_due(AgentRun.objects.filter(pk=run_id))
            if due is None:
                return
            if due[1] == step:
                break
            step = due[1]
    if due := _step_due(AgentRun.objects.filter(pk=run_id)):
        enqueue_on_commit(STEP_TASK, *due)


def run_continue(*, tool_call_id: int) -> None:
    """After a call ran (its approval's task), go on with its run here if that is due now."""
    if due := _step_due(AgentRun.objects.filter(tool_calls=tool_call_id)):
        run_drive(run_id=due[0], step=due[1])


def _step_due(runs) -> tuple[int, int] | None:
    """(run id, step) when the run is queued with no delay: a step this task may take now."""
    row = runs.values_list("pk", "step").filter(status=Status.QUEUED, next_attempt_at=None).first()
    return tuple(row) if row else None


def run_cancel(*, run_id: int, user: Any, reason: str) -> AgentRun:
    """Cancel an unfinished run; its undecided tool calls are cancelled with it."""
    if not user.has_perm("agents.cancel_agentrun"):
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied("You may not cancel agent runs.")
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().get(pk=run_id)
        if run.is_finished:
            raise InvalidTransition(f"Run #{run.pk} is already {run.get_status_display().lower()}.")
        run_end(run=run, status=Status.CANCELLED, reason=reason or "Cancelled.", actor=user)
    return run


def _claimable(*, run_id: int, step: int):
    """The run at `step` if it may be claimed now, and what claiming it writes."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.AGENTS_STALE_CLAIM_SECONDS)
    claimable = Q(status=Status.QUEUED) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    claimable |= Q(status=Status.RUNNING, claimed_at__lt=stale)
    return AgentRun.objects.filter(claimable, pk=run_id, step=step), _claim_values(now)


def _claim_values(now=None) -> dict[str, Any]:
    """What a claim writes: running, a new token, since now."""
    return {
        "status": Status.RUNNING,
        "claim_token": uuid.uuid4(),
        "claimed_at": now or timezone.now(),
    }


def _run_claim(*, run_id: int, step: int) -> uuid.UUID | None:
    runs, claim = _claimable(run_id=run_id, step=step)
    return claim["claim_token"] if runs.update(**claim) else None


def _run_claim_read(*, run_id: int, step: int) -> AgentRun | None:
    """Claim the step and read the run as claimed, in one statement (UPDATE ... RETURNING)."""
    runs, claim = _claimable(run_id=run_id, step=step)
    query = runs.query.chain(UpdateQuery)
    query.add_update_values(claim)
    sql, params = query.get_compiler(runs.db).as_sql()
    ops = connections[runs.db].ops
    columns = ", ".join(ops.quote_name(f.column) for f in AgentRun._meta.concrete_fields)
    claimed = list(AgentRun.objects.raw(f"{sql} RETURNING {columns}", params))
    return claimed[0] if claimed else None


def _last_reply_unanswered(run: AgentRun) -> bool:
    last = run.messages[-1] if run.messages else None
    return bool(
        last
        and last["role"] == "assistant"
        and any(block.get("type") == "tool_use" for block in last["content"])
        and run.last_stop_reason == "tool_use"
    )


def _cap_reached(run: AgentRun) -> str:
    if run.turns >= settings.AGENTS_MAX_TURNS:
        return f"Turn cap reached: {run.turns} model calls (AGENTS_MAX_TURNS={settings.AGENTS_MAX_TURNS})."
    cap = Decimal(str(settings.AGENTS_MAX_COST_USD))
    if run.cost_usd >= cap:
        return f"Cost cap reached: ${run.cost_usd:.4f} of ${cap:.2f} (AGENTS_MAX_COST_USD)."
    return ""


def _usage(message: Any) -> dict[str, int]:
    usage = message.usage
    return {
        "input_tokens": usage.input_tokens or 0,
        "output_tokens": usage.output_tokens or 0,
        "cache_read_tokens": usage.cache_read_input_tokens or 0,
        "cache_write_tokens": usage.cache_creation_input_tokens or 0,
    }


def _model_call(*, run: AgentRun, reply: llm.ModelReply, usage: dict[str, int], cost: Decimal):
    message = reply.message
    return ModelCall(
        run=run,
        step=run.step,
        backend=run.backend,
        model=message.model or run.model,
        request_id=reply.request_id,
        message_id=message.id,
        stop_reason=message.stop_reason or "",
        latency_ms=reply.latency_ms,
        cost_usd=cost,
        response=nul_free(message.to_dict(mode="json")),
        **usage,
    )


def _reply_cost(run: AgentRun, reply: llm.ModelReply, usage: dict[str, int]) -> Decimal:
    """What the reply cost: at batch prices when a Message Batch brought it."""
    return cost_estimate(
        model=run.model,
        input_tokens=usage["input_tokens"],
        output_tokens=usage["output_tokens"],
        cache_read=usage["cache_read_tokens"],
        cache_write=usage["cache_write_tokens"],
        backend=run.backend,
        batch=reply.batch,
    )


def _reply_count(run: AgentRun, reply: llm.ModelReply, usage: dict[str, int], cost: Decimal):
    """Count the reply on the run: one more turn, its tokens and cost; no retry pending."""
    run.turns += 1
    run.attempts = 0
    run.next_attempt_at = None
    run.last_stop_reason = reply.message.stop_reason or ""
    run.cost_usd += cost
    run.input_tokens += usage["input_tokens"]
    run.output_tokens += usage["output_tokens"]
    run.cache_read_tokens += usage["cache_read_tokens"]
    run.cache_write_tokens += usage["cache_write_tokens"]


def _counted(run: AgentRun, reply: llm.ModelReply) -> tuple[AgentRun, dict[str, int], Decimal]:
    """A copy of the run with the reply counted on it (the run itself is left as claimed)."""
    usage = _usage(reply.message)
    cost = _reply_cost(run, reply, usage)
    after = copy.copy(run)
    _reply_count(after, reply, usage, cost)
    return after, usage, cost


def _assistant(reply: llm.ModelReply) -> dict[str, Any]:
    content = [block.to_dict(mode="json") for block in reply.message.content]
    return {"role": "assistant", "content": nul_free(content)}


def _turn_at_once(
    *, run: AgentRun, token: uuid.UUID, reply: llm.ModelReply, go_on: bool = False
) -> Advanced | None:
    """A turn of look-ups: run them, then save reply, calls, results and the next step at once.

    One transaction, whose UPDATE is the compare-and-set on the claim: a step that lost its
    claim writes nothing. Returns the run as saved: queued for its next step, or with `go_on`
    running on a new claim of it, for this task, with that step's model call already asked
    (the model thinks while the turn is saved; its reply is used only once the save has
    committed, and dropped otherwise). The run is None when the claim was lost or a person
    took over (the run ended escalated). None when the turn must go the general way (see
    `turn_run_at_once`) or the cap is reached.
    """
    if reply.message.stop_reason != "tool_use":
        return None
    assistant = _assistant(reply)
    blocks = [b for b in assistant["content"] if b.get("type") == "tool_use"]
    if not blocks:
        return None
    after, usage, cost = _counted(run, reply)
    if _cap_reached(after):
        return None
    answered = turn_run_at_once(run=after, blocks=blocks)
    if answered is None:
        return None
    calls, escalation = answered
    if escalation is None:
        after.messages = [*run.messages, assistant, turn_results(calls)]
        after.status_reason = ""
        after.step = run.step + 1
        if go_on:  # the next step's claim, handed on to this task
            claim = _claim_values()
        else:
            claim = {"status": Status.QUEUED, "claim_token": None, "claimed_at": None}
        for name, value in claim.items():
            setattr(after, name, value)
    else:  # a person takes over: nothing goes back to Claude, the run ends below
        after.messages = [*run.messages, assistant]
    after.updated_at = timezone.now()
    ahead = _ask_ahead(after) if go_on and escalation is None else None
    try:
        saved = _turn_save(
            run=run,
            after=after,
            token=token,
            reply=reply,
            usage=usage,
            cost=cost,
            calls=calls,
            escalation=escalation,
        )
    except BaseException:
        if ahead is not None:
            ahead.cancel()  # if it has begun, it ends with this process or is never read
        raise
    if not saved:
        _ahead_drop(ahead, run=after)
        return Advanced(None)
    return Advanced(after, ahead)


def _turn_save(
    *,
    run: AgentRun,
    after: AgentRun,
    token: uuid.UUID,
    reply: llm.ModelReply,
    usage: dict[str, int],
    cost: Decimal,
    calls: list[ToolCall],
    escalation: Any,
) -> bool:
    """`_turn_at_once`'s transaction. False when the claim was lost or a person took over."""
    with transaction.atomic():
        if not lifecycle.run_save_claimed(after, claim=token):
            _reply_dropped(run=run, reply=reply)
            return False
        _model_call(run=run, reply=reply, usage=usage, cost=cost).save(force_insert=True)
        ToolCall.objects.bulk_create(calls)
        events = [
            refusal_event(call, run=after)
            for call in calls
            if call.status == ToolCall.Status.INVALID
        ]
        events += [
            audit_event(
                kind="tool.failed",
                run=after,
                tool_call=call,
                message=call.result,
                data={"tool": call.tool_name},
            )
            for call in calls
            if call.status == ToolCall.Status.FAILED
        ]
        if escalation is not None:
            AuditEvent.objects.bulk_create(events)
            run_end(run=after, status=Status.ESCALATED, reason=escalation.reason)
            return False
        events.append(results_sent_event(run=after, calls=calls))
        AuditEvent.objects.bulk_create(events)
        if after.status == Status.QUEUED:
            lifecycle.step_queue_on_commit(after)
    return True


def _end_at_once(*, run: AgentRun, token: uuid.UUID, reply: llm.ModelReply) -> AgentRun | None:
    """Claude finished its turn: save the reply and end the run, without reading it again.

    `run` is the run as claimed. The run's save is the compare-and-set on the claim (see
    `run_end`): a step that lost its claim (the run was cancelled meanwhile) writes nothing.
    Returns the run as ended, or None when the claim was lost.
    """
    after, usage, cost = _counted(run, reply)
    after.messages = [*run.messages, _assistant(reply)]
    with transaction.atomic():
        if not run_end(run=after, status=Status.COMPLETED, reason=FINISHED, claim=token):
            _reply_dropped(run=run, reply=reply)
            return None
        _model_call(run=run, reply=reply, usage=usage, cost=cost).save(force_insert=True)
    return after


FINISHED = "Claude finished its turn."


def _reply_record(
    *, run_id: int, token: uuid.UUID, reply: llm.ModelReply, step: int | None = None
) -> bool:
    """Save the reply and decide what it means. Returns True when tool calls await dispatch.

    `step` is the step the reply answers (the run may have moved on if the claim was lost).
    """
    message = reply.message
    usage = _usage(message)
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().get(pk=run_id)
        if run.status != Status.RUNNING or run.claim_token != token:
            _reply_dropped(run=run, reply=reply, step=step)
            return False
        cost = _reply_cost(run, reply, usage)
        _model_call(run=run, reply=reply, usage=usage, cost=cost).save(force_insert=True)
        _reply_count(run, reply, usage, cost)
        assistant = _assistant(reply)
        stop = message.stop_reason
        if stop in CONTINUE_STOPS and (reason := _cap_reached(run)):
            run.messages = [*run.messages, assistant]
            run_end(run=run, status=Status.FAILED, reason=reason)
            return False
        if stop == "tool_use":
            run.messages = [*run.messages, assistant]
            run.save()
            tool_calls_create(run=run)
            return True
        if stop in END_STOPS:
            run.messages = [*run.messages, assistant]
            run_end(run=run, status=Status.COMPLETED, reason=FINISHED)
        elif stop == "pause_turn":
            # The API paused a long turn: send the conversation back as it is to let it go on.
            run.messages = [*run.messages, assistant]
            run_requeue(run)
        elif stop == "max_tokens":
            # The reply was cut off (perhaps inside a tool_use block): drop it and ask again
            # with more room, up to the ceiling.
            if run.max_tokens >= settings.AGENTS_MAX_TOKENS_CEILING:
                run_end(
                    run=run,
                    status=Status.FAILED,
                    reason=f"The reply was cut off at max_tokens={run.max_tokens}, the ceiling "
                    "(AGENTS_MAX_TOKENS_CEILING).",
                )
                return False
            old = run.max_tokens
            run.max_tokens = min(old * 2, settings.AGENTS_MAX_TOKENS_CEILING)
            audit_record(
                kind="run.max_tokens_raised",
                run=run,
                message=f"The reply was cut off at {old} tokens; asking again with {run.max_tokens}.",
            )
            run_requeue(run)
        elif stop == "refusal":
            run.messages = [*run.messages, assistant]
            run_end(
                run=run,
                status=Status.ESCALATED,
                reason="Claude declined to continue (stop_reason=refusal); a person must take over.",
            )
        elif stop == "model_context_window_exceeded":
            run_end(
                run=run,
                status=Status.FAILED,
                reason="The conversation no longer fits the model's context window.",
            )
        else:
            run_end(run=run, status=Status.FAILED, reason=f"Unexpected stop_reason {stop!r}.")
    return False


def _model_unavailable(*, run: AgentRun, token: uuid.UUID, error: llm.ModelUnavailable) -> None:
    """Record the failed call and put the run back in the queue with a growing delay."""
    with transaction.atomic():
        locked = AgentRun.objects.select_for_update().get(pk=run.pk)
        if locked.claim_token != token:
            return
        delay = min(
            settings.AGENTS_RETRY_BASE_SECONDS * (2**locked.attempts),
            settings.AGENTS_RETRY_MAX_SECONDS,
        )
        delay = max(delay, error.retry_after or 0)
        _model_call_error_record(run=locked, error=error)
        AgentRun.objects.filter(pk=run.pk).update(
            status=Status.QUEUED,
            claim_token=None,
            claimed_at=None,
            attempts=F("attempts") + 1,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            status_reason=f"Model unavailable ({error}); retrying in {int(delay)} s.",
        )
    # The sweeper queues the step again once next_attempt_at has passed.


def _model_call_error_record(*, run: AgentRun, error: llm.ModelError) -> None:
    ModelCall.objects.create(
        run=run,
        step=run.step,
        backend=run.backend,
        model=run.model,
        request_id=getattr(error, "request_id", ""),
        error=str(error),
    )


def _run_end_claimed(*, run: AgentRun, token: uuid.UUID, status: str, reason: str) -> None:
    with transaction.atomic():
        locked = AgentRun.objects.select_for_update().get(pk=run.pk)
        if locked.claim_token != token or locked.is_finished:
            return
        run_end(run=locked, status=status, reason=reason)


__all__ = ["run_start", "run_advance", "run_cancel"]
