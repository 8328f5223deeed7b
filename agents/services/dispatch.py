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
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents.audit import audit_record
from agents.models import AgentRun, ToolCall
from agents.registry import (
    Check,
    Escalate,
    Preparation,
    RetryLater,
    ToolContext,
    ToolError,
    toolset_get,
)
from agents.services.lifecycle import run_end, run_requeue, run_wait_for_approval

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
        tool = toolset.get(block["name"])
        fields: dict[str, Any] = {"requires_approval": False}
        if tool is None:
            known = ", ".join(sorted(toolset.tools)) or "none"
            message = f"There is no tool named {block['name']!r}. Tools you can use: {known}."
            fields.update(
                status=TC.INVALID,
                validation_errors=[{"loc": [], "msg": message, "type": "unknown_tool"}],
                result=message,
                is_error=True,
                finished_at=now,
            )
        else:
            fields["requires_approval"] = tool.requires_approval
            fields["approval_permission"] = tool.approval_permission or ""
            try:
                tool.validate(block["input"])
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
                    fields["status"] = TC.PREPARING if tool.prepare else TC.AWAITING_APPROVAL
                    if not tool.prepare:
                        fields["checks"] = []
                else:
                    fields.update(status=TC.QUEUED, decision=ToolCall.Decision.AUTO)
        calls.append(
            ToolCall.objects.create(
                run=run,
                tool_use_id=block["id"],
                turn=run.turns,
                position=position,
                tool_name=block["name"],
                input_proposed=block["input"],
                **fields,
            )
        )
    return calls


def turn_dispatch(*, run_id: int) -> None:
    """Prepare calls for review, run queued ones in order, and answer Claude once all are."""
    run = AgentRun.objects.get(pk=run_id)
    preparing = run.tool_calls.filter(turn=run.turns, status=TC.PREPARING).order_by("position")
    for call_id in preparing.values_list("pk", flat=True):
        tool_call_prepare(tool_call_id=call_id, settle=False)
    queued = run.tool_calls.filter(turn=run.turns, status=TC.QUEUED).order_by("position")
    for call_id in queued.values_list("pk", flat=True):
        tool_call_execute(tool_call_id=call_id, settle=False)
    turn_settle(run_id=run_id)


def tool_call_prepare(*, tool_call_id: int, settle: bool = True) -> None:
    """Run a call's policy checks outside any transaction; then it waits for a person."""
    call = ToolCall.objects.select_related("run").get(pk=tool_call_id)
    if call.status != TC.PREPARING:
        return
    tool = toolset_get(call.run.toolset).get(call.tool_name)
    context = ToolContext(run=call.run, tool_call=call, idempotency_key=call.idempotency_key)
    try:
        if tool is None or tool.prepare is None:
            raise ToolError(f"The tool {call.tool_name!r} cannot be checked any more.")
        preparation = tool.prepare(context, tool.validate(call.input_proposed))
    except ToolError as error:
        preparation = Preparation(checks=[Check("prepare", False, str(error), hard=True)])
    except Exception:
        # Live data was unreachable (a payments outage, say): stay in `preparing`; the sweep
        # tries again. Nobody can approve a call whose checks have not run.
        logger.exception("tool call %s: checks failed to run; will retry", call.pk)
        return
    checks = [c.as_dict() for c in preparation.checks]
    with transaction.atomic():
        if preparation.blocked:
            failed = "; ".join(f"{c.name}: {c.detail}" for c in preparation.blocked)
            updated = ToolCall.objects.filter(pk=call.pk, status=TC.PREPARING).update(
                status=TC.BLOCKED,
                checks=checks,
                decision=ToolCall.Decision.BLOCKED,
                decided_at=timezone.now(),
                decision_reason=failed,
                result=f"Policy checks failed, so this call cannot be approved and did not run: "
                f"{failed}",
                is_error=True,
                finished_at=timezone.now(),
            )
            kind = "tool.blocked"
        else:
            updated = ToolCall.objects.filter(pk=call.pk, status=TC.PREPARING).update(
                status=TC.AWAITING_APPROVAL, checks=checks
            )
            kind = "tool.checked"
        if updated:
            audit_record(
                kind=kind,
                run=call.run,
                tool_call=call,
                message=preparation.note,
                data={"checks": checks},
            )
    if settle:
        turn_settle(run_id=call.run_id)


def tool_call_execute(*, tool_call_id: int, settle: bool = True) -> None:
    """Run one queued call's handler outside any transaction and record what came of it."""
    now = timezone.now()
    claimed = ToolCall.objects.filter(pk=tool_call_id, status=TC.QUEUED).update(
        status=TC.EXECUTING,
        attempts=F("attempts") + 1,
        claimed_at=now,
        started_at=Coalesce(F("started_at"), Value(now)),
    )
    if not claimed:
        logger.info(
            "tool call %s: not queued (already run or decided); nothing to do", tool_call_id
        )
        return
    call = ToolCall.objects.select_related("run", "decided_by").get(pk=tool_call_id)
    tool = toolset_get(call.run.toolset).get(call.tool_name)
    started = time.monotonic()
    escalation: Escalate | None = None
    try:
        if tool is None:
            raise ToolError(f"The tool {call.tool_name!r} is no longer registered.")
        value = tool.validate(call.effective_input)
        context = ToolContext(
            run=call.run,
            tool_call=call,
            idempotency_key=call.idempotency_key,
            approved_by=call.decided_by,
            edited=call.input_executed is not None,
        )
        outcome = tool.handler(context, value)
        if isinstance(outcome, Escalate):
            escalation = outcome
            outcome = outcome.content or f"Escalated to a person: {outcome.reason}"
        content, is_error = _content(outcome), False
    except ToolError as error:
        content, is_error = str(error), True
    except RetryLater as error:
        if tool is not None and tool.safe_to_retry:
            audit_record(
                kind="tool.retry_later",
                run=call.run,
                tool_call=call,
                message=f"{call.tool_name} will be tried again with the same key: {error}",
            )
            return
        content, is_error = f"The outcome is unknown and it is not safe to retry: {error}", True
    except pydantic.ValidationError as error:
        content, is_error = f"Invalid input for {call.tool_name}: {errors_describe(error)[0]}", True
    except Exception as error:  # a handler's bug must not lose the run
        logger.exception("tool call %s (%s) raised", call.pk, call.tool_name)
        content, is_error = f"The tool failed unexpectedly: {type(error).__name__}: {error}", True
    if call.input_executed is not None:
        content = (
            "A reviewer edited your input before approving it. What ran: "
            f"{json.dumps(call.input_executed, ensure_ascii=False)} (you proposed "
            f"{json.dumps(call.input_proposed, ensure_ascii=False)}).\n{content}"
        )
    duration = int((time.monotonic() - started) * 1000)
    with transaction.atomic():
        updated = ToolCall.objects.filter(pk=call.pk, status=TC.EXECUTING).update(
            status=TC.FAILED if is_error else TC.SUCCEEDED,
            result=content,
            is_error=is_error,
            finished_at=timezone.now(),
            duration_ms=duration,
        )
        if updated and escalation is not None:
            run = AgentRun.objects.select_for_update().get(pk=call.run_id)
            if not run.is_finished:
                run_end(run=run, status=AgentRun.Status.ESCALATED, reason=escalation.reason)
    if settle:
        turn_settle(run_id=call.run_id)


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
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().get(pk=run_id)
        if run.status not in (AgentRun.Status.RUNNING, AgentRun.Status.AWAITING_APPROVAL):
            return
        last = run.messages[-1]
        if last["role"] != "assistant" or run.last_stop_reason != "tool_use":
            return
        calls = list(run.tool_calls.filter(turn=run.turns).order_by("position"))
        if all(call.is_answered for call in calls):
            results = [
                {
                    "type": "tool_result",
                    "tool_use_id": call.tool_use_id,
                    "content": call.result,
                    "is_error": bool(call.is_error),
                }
                for call in calls
            ]
            run.messages = [*run.messages, {"role": "user", "content": results}]
            audit_record(
                kind="run.results_sent",
                run=run,
                message=f"{len(results)} tool result(s) sent back to Claude.",
                data={"tool_use_ids": [c.tool_use_id for c in calls]},
            )
            run_requeue(run)
        elif run.status == AgentRun.Status.RUNNING and any(
            call.status in ToolCall.WAITING for call in calls
        ):
            run_wait_for_approval(run)
