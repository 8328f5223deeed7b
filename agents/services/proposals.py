"""Proposals: a consequential call's checks, when it is proposed and right before it runs.

A tool with a `ProposalType` is checked three times on live data: when Claude proposes it (in
a worker, before anyone may approve), at every approval (in the deciding service) and once
more just before its handler runs. Each time, `gather` reads outside services outside any
transaction; then, in one transaction holding the run row and the type's lock, `check` judges
what was read, together with what Countersign itself has approved but not yet done, and the
outcome is recorded. Two approvals that would pass a cap together are judged one after the
other, so the second sees the first.

Errors are classified. Transient ones (RetryLater, timeouts, connection errors) are tried
again with a growing delay, up to a cap, then the call fails visibly and Claude is told; any
other error fails the call at once with the reason. No call stays `preparing` for ever.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from agents.audit import audit_record
from agents.models import AgentRun, Proposal, ToolCall
from agents.registry import (
    TRANSIENT,
    Check,
    Preparation,
    ProposalType,
    Tool,
    ToolContext,
    ToolError,
    tool_of,
)
from agents.services.lifecycle import notice_on_commit, tool_call_close

logger = logging.getLogger(__name__)

TC = ToolCall.Status
PROPOSAL, APPROVAL, EXECUTION = "proposal", "approval", "execution"


class ChecksUnavailable(Exception):
    """The checks could not run just now (an outage); nothing changed, try again."""


def backoff(attempts: int) -> timedelta:
    """The delay before the next try after `attempts` transient failures."""
    seconds = settings.AGENTS_RETRY_BASE_SECONDS * (2 ** max(attempts - 1, 0))
    return timedelta(seconds=min(seconds, settings.AGENTS_RETRY_MAX_SECONDS))


def error_text(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def proposal_create(*, call: ToolCall, tool: Tool) -> Proposal:
    """The engine's row for a consequential call, made with the call in the reply's transaction."""
    return Proposal.objects.create(tool_call=call, toolset=call.run.toolset, tool_name=tool.name)


def context_for(
    call: ToolCall, *, phase: str, value: Any, record: Any = None, user: Any = None, **extra: Any
) -> ToolContext:
    return ToolContext(
        run=call.run,
        tool_call=call,
        idempotency_key=call.idempotency_key,
        approved_by=user,
        phase=phase,
        value=value,
        record=record,
        attempt=call.attempts,
        **extra,
    )


def record_of(ptype: ProposalType, call: ToolCall) -> Any:
    """The domain's row for the call, or None (none yet, or the type keeps none)."""
    if ptype.model is None:
        return None
    return ptype.model.objects.filter(tool_call_id=call.pk).first()


def lock_take(key: str) -> None:
    """Hold `key` until the transaction ends, so that decisions sharing it run one at a time.

    PostgreSQL: a transaction-scoped advisory lock. SQLite takes the database's write lock at
    BEGIN (transaction_mode IMMEDIATE), which already serialises every deciding transaction.
    """
    if connection.vendor == "postgresql":
        number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [number])


def judge(ptype: ProposalType, ctx: ToolContext) -> Preparation:
    """Run the type's checks in a savepoint: a failed write or query leaves the rest usable.

    A ToolError is a check that failed with that message. Anything else propagates, and the
    caller fails the call with it.
    """
    try:
        with transaction.atomic():
            if ptype.lock is not None:
                lock_take(f"{ctx.tool_call.tool_name}:{ptype.lock(ctx)}")
            return ptype.check(ctx) if ptype.check is not None else Preparation()
    except ToolError as error:
        return Preparation(checks=[Check("checks", False, str(error), hard=True)])


def checks_failed_text(preparation: Preparation) -> str:
    return "; ".join(f"{c.name}: {c.detail}" for c in preparation.blocked)


def proposal_checks_record(
    *, proposal: Proposal, preparation: Preparation, phase: str, actor: Any = None
) -> list[dict[str, Any]]:
    """Keep the checks as the latest on the proposal and as an audit row (their history)."""
    checks = [c.as_dict() for c in preparation.checks]
    proposal.checks, proposal.checked_at, proposal.checked_in = checks, timezone.now(), phase
    proposal.check_error = ""
    proposal.save(update_fields=["checks", "checked_at", "checked_in", "check_error", "updated_at"])
    call = proposal.tool_call
    audit_record(
        kind="proposal.checked",
        run=call.run,
        tool_call=call,
        actor=actor,
        message=preparation.note,
        data={"phase": phase, "checks": checks, "blocked": bool(preparation.blocked)},
    )
    return checks


# --- when Claude proposes ---------------------------------------------------------------------


def proposal_check(*, tool_call_id: int) -> bool:
    """Check a proposed call on live data; then it waits for a person, or is blocked or failed.

    Returns True when the call moved on (so the turn may be settled).
    """
    call = ToolCall.objects.select_related("run", "proposal").get(pk=tool_call_id)
    if call.status != TC.PREPARING:
        return False
    proposal = call.proposal
    if proposal.next_check_at and proposal.next_check_at > timezone.now():
        return False  # waiting out a transient failure
    tool = tool_of(call)
    if tool is None or tool.proposal is None:
        return checks_fail(call, f"The tool {call.tool_name!r} is no longer registered.")
    ptype = tool.proposal
    try:
        ctx = context_for(call, phase=PROPOSAL, value=tool.validate(call.input_proposed))
        evidence = ptype.gather(ctx) if ptype.gather is not None else None
    except TRANSIENT as error:
        return _checks_retry(call, error)
    except Exception as error:
        logger.exception("tool call %s: gathering for the checks failed", call.pk)
        return checks_fail(call, f"The checks failed: {error_text(error)}.")
    ctx = dataclasses.replace(ctx, evidence=evidence)
    with transaction.atomic():
        AgentRun.objects.select_for_update().get(pk=call.run_id)
        call = ToolCall.objects.select_related("run", "proposal").get(pk=tool_call_id)
        if call.status != TC.PREPARING:
            return False
        proposal = call.proposal
        try:
            with transaction.atomic():
                record = record_of(ptype, call)
                if record is None and ptype.propose is not None:
                    record = ptype.propose(dataclasses.replace(ctx, tool_call=call))
                ctx = dataclasses.replace(ctx, tool_call=call, record=record)
                preparation = judge(ptype, ctx)
                summary = ptype.summary(ctx) if ptype.summary else ""
                required = ptype.approvals(ctx) if ptype.approvals else 1
        except Exception as error:
            logger.exception("tool call %s: the checks raised", call.pk)
            return checks_fail(call, f"The checks failed: {error_text(error)}.", locked=True)
        proposal.summary, proposal.approvals_required = summary[:500], max(1, required)
        proposal.save(update_fields=["summary", "approvals_required", "updated_at"])
        checks = proposal_checks_record(proposal=proposal, preparation=preparation, phase=PROPOSAL)
        ToolCall.objects.filter(pk=call.pk, checks__isnull=True).update(checks=checks)
        if preparation.blocked:
            failed = checks_failed_text(preparation)
            tool_call_close(
                call=call,
                status=TC.BLOCKED,
                reason=failed,
                result=f"Policy checks failed, so this call cannot be approved and did not run: "
                f"{failed}",
                sources=(TC.PREPARING,),
            )
            return True
        ToolCall.objects.filter(pk=call.pk, status=TC.PREPARING).update(status=TC.AWAITING_APPROVAL)
        proposal.waiting_since = timezone.now()
        proposal.save(update_fields=["waiting_since", "updated_at"])
        if ptype.on_wait is not None and record is not None:
            ptype.on_wait(record)
        notice_on_commit(call)
    return True


def _checks_retry(call: ToolCall, error: BaseException) -> bool:
    """A transient failure while checking: try again later, until the cap; then fail."""
    proposal = call.proposal
    attempts = proposal.check_attempts + 1
    cap = settings.AGENTS_CHECK_MAX_ATTEMPTS
    if attempts >= cap:
        return checks_fail(
            call,
            f"The checks could not run after {attempts} tries; the last: {error_text(error)}.",
        )
    delay = backoff(attempts)
    Proposal.objects.filter(pk=proposal.pk).update(
        check_attempts=attempts,
        next_check_at=timezone.now() + delay,
        check_error=error_text(error)[:2000],
        updated_at=timezone.now(),
    )
    with transaction.atomic():
        audit_record(
            kind="proposal.check_retry",
            run=call.run,
            tool_call=call,
            message=f"The checks could not run ({error_text(error)}); try {attempts + 1} of "
            f"{cap} in {int(delay.total_seconds())} s.",
        )
    return False


def checks_fail(call: ToolCall, why: str, *, locked: bool = False) -> bool:
    """Fail a call whose checks cannot run: Claude is told, nothing ran."""
    with transaction.atomic():
        if not locked:
            AgentRun.objects.select_for_update().get(pk=call.run_id)
        Proposal.objects.filter(pk=call.pk).update(check_error=why[:2000])
        return bool(
            tool_call_close(
                call=call,
                status=TC.FAILED,
                reason=why,
                result=f"{why} Nothing ran; nobody could approve it.",
                sources=(TC.PREPARING,),
            )
        )


# --- right before it runs ---------------------------------------------------------------------


def proposal_check_before_execution(*, call: ToolCall, tool: Tool, value: Any) -> tuple[bool, Any]:
    """Judge an approved call once more just before it runs, on live data.

    Returns (may run, the domain row to run with). It may not run when its checks failed (it is
    closed, Claude is told why) or could not run (it is queued again with a delay, or failed
    once the tries are used up).
    """
    ptype = tool.proposal
    record = record_of(ptype, call)
    ctx = context_for(call, phase=EXECUTION, value=value, record=record, user=call.decided_by)
    try:
        ctx = dataclasses.replace(ctx, evidence=ptype.gather(ctx) if ptype.gather else None)
    except TRANSIENT as error:
        execution_retry(call=call, error=error, what="The checks before running")
        return False, None
    except Exception as error:
        logger.exception("tool call %s: gathering before execution failed", call.pk)
        _execution_refuse(call, f"The checks before running failed: {error_text(error)}.")
        return False, None
    with transaction.atomic():
        AgentRun.objects.select_for_update().get(pk=call.run_id)
        if not ToolCall.objects.filter(pk=call.pk, status=TC.EXECUTING).exists():
            return False, None
        try:
            preparation = judge(ptype, ctx)
        except Exception as error:
            logger.exception("tool call %s: the checks before execution raised", call.pk)
            _execution_refuse(call, f"The checks before running failed: {error_text(error)}.")
            return False, None
        proposal = Proposal.objects.select_related("tool_call__run").get(pk=call.pk)
        proposal_checks_record(proposal=proposal, preparation=preparation, phase=EXECUTION)
        if preparation.blocked:
            failed = checks_failed_text(preparation)
            _execution_refuse(
                call, f"Checks failed right before it would have run, so it did not: {failed}."
            )
            return False, None
    return True, record


def _execution_refuse(call: ToolCall, why: str) -> None:
    with transaction.atomic():
        tool_call_close(
            call=call,
            status=TC.BLOCKED,
            reason=why,
            result=f"{why} Nothing ran.",
            sources=(TC.EXECUTING,),
        )


def execution_retry(*, call: ToolCall, error: BaseException, what: str) -> bool:
    """Queue a call again after a transient failure, with a delay; past the cap, fail it.

    Returns True when it will be tried again.
    """
    cap = settings.AGENTS_EXECUTE_MAX_ATTEMPTS
    if call.attempts >= cap:
        with transaction.atomic():
            tool_call_close(
                call=call,
                status=TC.FAILED,
                reason=f"{what} failed {call.attempts} times; the last: {error_text(error)}.",
                result=f"{what} failed {call.attempts} times (the last: {error_text(error)}). "
                "It is not tried again; whether it took effect is checked by a person.",
                sources=(TC.EXECUTING,),
            )
        return False
    delay = backoff(call.attempts)
    with transaction.atomic():
        moved = ToolCall.objects.filter(pk=call.pk, status=TC.EXECUTING).update(
            status=TC.QUEUED, next_attempt_at=timezone.now() + delay, claimed_at=None
        )
        if moved:
            audit_record(
                kind="tool.retry_later",
                run=call.run,
                tool_call=call,
                message=f"{what} met a transient failure ({error_text(error)}); try "
                f"{call.attempts + 1} of {cap} in {int(delay.total_seconds())} s, with the same "
                "idempotency key.",
            )
    return bool(moved)
