"""Turning a reply's tool_use blocks into tool calls, running them, and answering Claude.

Every tool_use block becomes a `ToolCall` row in the transaction that saves the reply. Invalid
input is answered at once with an is_error result; read-only tools run at once in the worker;
tools that need approval wait for a person. Once every call of the turn is answered, their
tool_result blocks go back together, in the order Claude asked for them.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pydantic
from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents import redaction
from agents.audit import audit_event, nul_free
from agents.models import AgentRun, AuditEvent, ToolCall
from agents.registry import TRANSIENT, Escalate, ToolContext, ToolError, toolset_get
from agents.services.lifecycle import OPEN as OPEN_STATUSES
from agents.services.lifecycle import run_end, run_requeue, run_wait_for_approval, tool_call_close
from agents.services.proposals import (
    error_text,
    execution_retry,
    proposal_check,
    proposal_check_before_execution,
    proposal_create,
)

logger = logging.getLogger(__name__)

TC = ToolCall.Status


def errors_describe(error: pydantic.ValidationError) -> tuple[str, list[dict[str, Any]]]:
    """A readable summary of a validation error, and its JSON-safe detail."""
    details = error.errors(include_url=False, include_context=False, include_input=False)
    lines = []
    for item in details:
        where = ".".join(str(part) for part in item["loc"]) or "input"
        lines.append(f"{where}: {item['msg']}")
    return "; ".join(lines), [
        {"loc": list(item["loc"]), "msg": item["msg"], "type": item["type"]} for item in details
    ]


def call_fields(toolset: Any, name: str, data: Any, *, now: Any) -> tuple[Any, dict[str, Any]]:
    """The tool a tool_use block names (or None) and its new call's status fields.

    Invalid input and unknown tools are answered at once with an is_error result; a tool that
    needs approval is checked first (preparing); any other is queued to run.
    """
    tool = toolset.get(name)
    fields: dict[str, Any] = {"requires_approval": False}
    if tool is None:
        known = ", ".join(sorted(toolset.tools)) or "none"
        message = f"There is no tool named {name!r}. Tools you can use: {known}."
        fields.update(
            status=TC.INVALID,
            validation_errors=[{"loc": [], "msg": message, "type": "unknown_tool"}],
            result=message,
            is_error=True,
            finished_at=now,
        )
        return None, fields
    fields["requires_approval"] = tool.requires_approval
    fields["approval_permission"] = tool.approval_permission or ""
    try:
        tool.validate(data)
    except pydantic.ValidationError as error:
        summary, details = errors_describe(error)
        fields.update(
            status=TC.INVALID,
            validation_errors=details,
            result=f"Invalid input for {tool.name}: {summary}. Nothing ran; "
            "correct the input and call the tool again.",
            is_error=True,
            finished_at=now,
        )
    else:
        if tool.requires_approval:
            fields["status"] = TC.PREPARING  # checked before anyone may approve
        else:
            fields.update(status=TC.QUEUED, decision=ToolCall.Decision.AUTO)
    return tool, fields


def refusal_event(call: ToolCall, *, run: AgentRun) -> AuditEvent:
    """The audit event of a call answered at once as invalid (or naming no tool we have)."""
    unknown = any(e.get("type") == "unknown_tool" for e in call.validation_errors or [])
    return audit_event(
        kind="tool.refused",
        run=run,
        tool_call=call,
        message=call.result,
        data={"tool": call.tool_name, "reason": "unknown tool" if unknown else "invalid"},
    )


def tool_calls_create(*, run: AgentRun) -> list[ToolCall]:
    """Record a ToolCall for each tool_use block of the run's last reply (once per block)."""
    toolset = toolset_get(run.toolset)
    blocks = [b for b in run.messages[-1]["content"] if b.get("type") == "tool_use"]
    calls = []
    now = timezone.now()
    for position, block in enumerate(blocks):
        existing = ToolCall.objects.filter(tool_use_id=block["id"]).first()
        if existing is not None:
            calls.append(existing)
            continue
        tool, fields = call_fields(toolset, block["name"], block["input"], now=now)
        call = ToolCall.objects.create(
            run=run,
            tool_use_id=block["id"],
            turn=run.turns,
            position=position,
            tool_name=block["name"],
            input_proposed=block["input"],
            **fields,
        )
        if tool is not None and call.status == TC.PREPARING:
            proposal_create(call=call, tool=tool)
        if call.status == TC.INVALID:
            refusal_event(call, run=run).save()
        calls.append(call)
    return calls


def turn_run_at_once(
    *, run: AgentRun, blocks: list[dict[str, Any]]
) -> tuple[list[ToolCall], Escalate | None] | None:
    """Answer a turn whose every call is a look-up, before anything is saved; or None.

    For a reply that asks only for tools that run without approval and may run twice (reads,
    look-ups) or for tools that do not exist or with invalid input, running them before the
    reply is saved changes nothing a crash could leave half done: the step is taken again. The
    calls come back unsaved, answered, for the step to record with the reply in one
    transaction, with the escalation if one asked for a person (the calls after it are left
    queued, and the run's end cancels them). Anything else (a proposal, a tool that must not
    run twice, an outage) gives None, and the turn goes the general way: saved first, then
    dispatched.
    """
    toolset = toolset_get(run.toolset)
    now = timezone.now()
    planned = []
    for position, block in enumerate(blocks):
        tool, fields = call_fields(toolset, block["name"], block["input"], now=now)
        if fields["status"] not in (TC.INVALID, TC.QUEUED) or (
            fields["status"] == TC.QUEUED and not tool.safe_to_retry
        ):
            return None
        call = ToolCall(
            run=run,
            tool_use_id=block["id"],
            turn=run.turns,
            position=position,
            tool_name=block["name"],
            input_proposed=block["input"],
            **fields,
        )
        planned.append((tool, call))
    escalation = None
    for tool, call in planned:
        if call.status == TC.INVALID:
            continue
        if escalation is not None:
            break
        call.status, call.attempts, call.started_at = TC.EXECUTING, 1, timezone.now()
        started = time.monotonic()
        try:
            content, is_error, escalation = handler_outcome(tool, call)
        except ToolError as error:
            content, is_error = str(error), True
        except pydantic.ValidationError as error:
            content = f"Invalid input for {call.tool_name}: {errors_describe(error)[0]}"
            is_error = True
        except TRANSIENT:
            return None
        call.status = TC.FAILED if is_error else TC.SUCCEEDED
        call.result, call.is_error = nul_free(content), is_error
        call.finished_at = timezone.now()
        call.duration_ms = int((time.monotonic() - started) * 1000)
    return [call for _, call in planned], escalation


def turn_results(calls: list[ToolCall]) -> dict[str, Any]:
    """The user message that answers a turn: each call's tool_result, masked, in order."""
    return {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": call.tool_use_id,
                "content": redaction.mask(call.result),
                "is_error": bool(call.is_error),
            }
            for call in calls
        ],
    }


def results_sent_event(*, run: AgentRun, calls: list[ToolCall]) -> AuditEvent:
    return audit_event(
        kind="run.results_sent",
        run=run,
        message=f"{len(calls)} tool result(s) sent back to Claude.",
        data={"tool_use_ids": [c.tool_use_id for c in calls]},
    )


def _results_mask_ahead(*, run_id: int) -> None:
    """Mask the turn's answered results before the run is locked.

    Masking a large result takes a while (about 1.4 MB/s), and the run stays locked (a cancel
    or a decision waits) while `turn_results` builds the answer. Masked here first, the same
    text is a hash lookup there (the masker remembers recent texts).
    """
    answered = ToolCall.objects.filter(run_id=run_id, turn=F("run__turns")).exclude(
        status__in=OPEN_STATUSES
    )
    for result in answered.values_list("result", flat=True):
        redaction.mask(result)


def turn_dispatch(*, run_id: int) -> None:
    """Check proposed calls, run queued ones in order, and answer Claude once all are."""
    run = AgentRun.objects.get(pk=run_id)
    preparing = run.tool_calls.filter(turn=run.turns, status=TC.PREPARING).order_by("position")
    for call_id in preparing.values_list("pk", flat=True):
        proposal_check(tool_call_id=call_id)
    queued = run.tool_calls.filter(turn=run.turns, status=TC.QUEUED).order_by("position")
    for call_id in queued.values_list("pk", flat=True):
        tool_call_execute(tool_call_id=call_id, settle=False)
    turn_settle(run_id=run_id)


def tool_call_prepare(*, tool_call_id: int) -> None:
    """Check a proposed call (a task, or the sweep's retry); settle its turn if it moved on."""
    if proposal_check(tool_call_id=tool_call_id):
        turn_settle(run_id=ToolCall.objects.values_list("run_id", flat=True).get(pk=tool_call_id))


def tool_call_execute(*, tool_call_id: int, settle: bool = True) -> None:
    """Run one queued call's handler outside any transaction and record what came of it."""
    now = timezone.now()
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    claimed = ToolCall.objects.filter(due, pk=tool_call_id, status=TC.QUEUED).update(
        status=TC.EXECUTING,
        attempts=F("attempts") + 1,
        claimed_at=now,
        next_attempt_at=None,
        started_at=Coalesce(F("started_at"), Value(now)),
    )
    if not claimed:
        logger.info("tool call %s: not due (run, decided, or waiting to retry)", tool_call_id)
        return
    call = ToolCall.objects.select_related("run", "decided_by").get(pk=tool_call_id)
    tool = toolset_get(call.run.toolset).get(call.tool_name)
    started = time.monotonic()
    escalation: Escalate | None = None
    try:
        if tool is None:
            raise ToolError(f"The tool {call.tool_name!r} is no longer registered.")
        value = tool.validate(call.effective_input)
        record = None
        if tool.proposal is not None:
            may_run, record = proposal_check_before_execution(call=call, tool=tool, value=value)
            if not may_run:
                if settle:
                    turn_settle(run_id=call.run_id)
                return
        content, is_error, escalation = handler_outcome(tool, call, value=value, record=record)
    except ToolError as error:
        content, is_error = str(error), True
    except TRANSIENT as error:
        if tool is not None and tool.safe_to_retry:
            execution_retry(call=call, error=error, what=call.tool_name)
            if settle:
                turn_settle(run_id=call.run_id)
            return
        content, is_error = (
            f"The outcome is unknown and it is not safe to retry: {error_text(error)}",
            True,
        )
    except pydantic.ValidationError as error:
        content, is_error = f"Invalid input for {call.tool_name}: {errors_describe(error)[0]}", True
    if call.input_executed is not None:
        content = (
            "A reviewer edited your input before approving it. What ran: "
            f"{json.dumps(call.input_executed, ensure_ascii=False)} (you proposed "
            f"{json.dumps(call.input_proposed, ensure_ascii=False)}).\n{content}"
        )
    duration = int((time.monotonic() - started) * 1000)
    with transaction.atomic():
        updated = tool_call_close(
            call=call,
            status=TC.FAILED if is_error else TC.SUCCEEDED,
            result=content,
            reason=content if is_error else "",
            is_error=is_error,
            duration_ms=duration,
            sources=(TC.EXECUTING,),
        )
        if updated and escalation is not None:
            run = AgentRun.objects.select_for_update().get(pk=call.run_id)
            if not run.is_finished:
                run_end(run=run, status=AgentRun.Status.ESCALATED, reason=escalation.reason)
    if settle:
        turn_settle(run_id=call.run_id)


def handler_outcome(
    tool: Any, call: ToolCall, *, value: Any = None, record: Any = None
) -> tuple[str, bool, Escalate | None]:
    """Run the tool's handler for the call: (content, is_error, escalation).

    A ToolError is the tool's refusal, told to Claude; a handler's bug is told too and logged,
    and never loses the run. Transient failures (and invalid input) are the caller's to handle.
    """
    if value is None:
        value = tool.validate(call.effective_input)
    context = ToolContext(
        run=call.run,
        tool_call=call,
        idempotency_key=call.idempotency_key,
        approved_by=call.decided_by,
        edited=call.input_executed is not None,
        phase="execution",
        value=value,
        record=record,
        attempt=call.attempts,
    )
    try:
        outcome = tool.handler(context, value)
    except (ToolError, pydantic.ValidationError, *TRANSIENT):
        raise
    except Exception as error:  # a handler's bug must not lose the run
        logger.exception("tool call %s (%s) raised", call.pk, call.tool_name)
        return f"The tool failed unexpectedly: {error_text(error)}", True, None
    escalation = None
    if isinstance(outcome, Escalate):
        escalation = outcome
        outcome = outcome.content or f"Escalated to a person: {outcome.reason}"
    return _content(outcome), False, escalation


def _content(outcome: Any) -> str:
    if outcome is None:
        return "Done."
    if isinstance(outcome, str):
        return outcome
    if isinstance(outcome, pydantic.BaseModel):
        return outcome.model_dump_json()
    return json.dumps(outcome, ensure_ascii=False, default=str)


def turn_settle(*, run_id: int) -> None:
    """Answer Claude once every call of the turn is answered; otherwise wait for people."""
    _results_mask_ahead(run_id=run_id)
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().get(pk=run_id)
        if run.status not in (AgentRun.Status.RUNNING, AgentRun.Status.AWAITING_APPROVAL):
            return
        last = run.messages[-1]
        if last["role"] != "assistant" or run.last_stop_reason != "tool_use":
            return
        calls = list(run.tool_calls.filter(turn=run.turns).order_by("position"))
        if all(call.is_answered for call in calls):
            run.messages = [*run.messages, turn_results(calls)]
            results_sent_event(run=run, calls=calls).save()
            run_requeue(run)
        elif run.status == AgentRun.Status.RUNNING and any(
            call.status in ToolCall.WAITING for call in calls
        ):
            run_wait_for_approval(run)
