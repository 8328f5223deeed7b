"""Refunds: what the support desk declares for process_refund, and the exactly-once send.

Where a refund stands is its proposal's, which the engine owns (agents.services): checked when
Claude proposes it, again at each approval and right before it is sent; one approval, or two
different people's above SUPPORT_TWO_PERSON_THRESHOLD_CENTS. This module sends an approved
refund to the payments gateway outside any transaction, with the refund's idempotency key
fixed before the first attempt, and records the answer: a retried or duplicated task can never
refund twice. `refund_approve` and `refund_reject` are the engine's decisions, named for
refunds and taking the amount in cents.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents.audit import audit_record
from agents.models import ToolCall
from agents.registry import RetryLater, ToolError
from agents.services import InvalidTransition, proposal_approve, proposal_reject
from support.models import Refund
from support.payments import PaymentError, RefundResult, gateway_get
from support.services.tickets import SUBJECT_TYPE

PERMISSION = "support.approve_refund"
# Stripe keeps an idempotency key for 24 hours; after that a retry first looks the refund up.
KEY_WINDOW = timedelta(hours=23)
METADATA_KEY = "countersign_refund"


def refund_audit(
    refund: Refund, kind: str, *, actor: Any = None, message: str = "", **data: Any
) -> None:
    audit_record(
        kind=f"refund.{kind}",
        actor=actor,
        tool_call=refund.tool_call,
        run=refund.tool_call.run,
        subject_type=SUBJECT_TYPE,
        subject_id=refund.ticket_id,
        message=message,
        data={"refund": refund.pk, "amount": refund.amount, **data},
    )


def refund_approve(
    *,
    refund_id: int,
    user: Any,
    amount: int | None = None,
    note: str = "",
    channel: str = "console",
) -> Refund:
    """Approve a refund, optionally for another amount (cents); the engine runs the checks."""
    refund = Refund.objects.select_related("tool_call").get(pk=refund_id)
    edited = None
    if amount is not None and amount != refund.amount:
        edited = {**refund.tool_call.effective_input, "amount": amount}
    proposal_approve(
        tool_call_id=refund.tool_call_id, user=user, edited_input=edited, note=note, channel=channel
    )
    return Refund.objects.select_related("tool_call").get(pk=refund_id)


def refund_reject(*, refund_id: int, user: Any, reason: str) -> Refund:
    """Reject a refund; Claude is told the reason."""
    refund = Refund.objects.get(pk=refund_id)
    proposal_reject(tool_call_id=refund.tool_call_id, user=user, reason=reason)
    return Refund.objects.select_related("tool_call").get(pk=refund_id)


def refund_submit(*, refund_id: int) -> RefundResult:
    """Send an approved refund to the payments gateway, once, whatever happens around it.

    Runs only inside its tool call's execution, which the engine claimed (`executing`) after a
    person's approval; the call's status is the claim, the refund's key the guarantee.
    """
    now = timezone.now()
    refund = Refund.objects.select_related("tool_call__run").get(pk=refund_id)
    call = refund.tool_call
    if call.status != ToolCall.Status.EXECUTING or call.decided_by_id is None:
        raise ToolError(f"Refund #{refund.pk} stands at “{refund.get_state_display()}”: not sent.")
    approvers = list(call.proposal.approvals.values_list("user_id", flat=True))
    if len(set(approvers)) < call.proposal.approvals_required:
        raise ToolError("This refund has fewer approvals than it needs; it was not sent.")
    Refund.objects.filter(pk=refund_id).update(
        attempts=F("attempts") + 1, submitted_at=Coalesce(F("submitted_at"), now)
    )
    refund.refresh_from_db()
    gateway = gateway_get()
    metadata = {
        METADATA_KEY: str(refund.pk),
        "ticket": str(refund.ticket_id),
        "approved_by": ",".join(str(a) for a in approvers),
    }
    try:
        result = None
        if refund.submitted_at and refund.submitted_at < now - KEY_WINDOW:
            result = gateway.refund_find(
                charge_id=refund.charge_id, metadata_key=METADATA_KEY, metadata_value=str(refund.pk)
            )
        if result is None:
            result = gateway.refund_create(
                charge_id=refund.charge_id,
                amount=refund.amount,
                reason=refund.stripe_reason,
                metadata=metadata,
                idempotency_key=str(refund.idempotency_key),
            )
    except PaymentError as error:
        if error.retryable or error.outcome_unknown:
            with transaction.atomic():
                refund_audit(refund, "submit_retry", message=error.message)
            raise RetryLater(f"The payments service did not answer: {error.message}") from error
        _record_failure(refund_id=refund.pk, gateway=gateway.name, message=error.message)
        raise ToolError(f"The refund was refused by {gateway.label}: {error.message}") from error
    refund_record(refund_id=refund.pk, result=result, gateway=gateway.name)
    return result


def _record_failure(*, refund_id: int, gateway: str, message: str) -> None:
    with transaction.atomic():
        refund = (
            Refund.objects.select_for_update().select_related("tool_call__run").get(pk=refund_id)
        )
        if refund.provider_refund_id:
            return  # the payments service made it after all
        refund.gateway, refund.failure_message = gateway, message
        refund.save(update_fields=["gateway", "failure_message", "updated_at"])
        refund_audit(refund, "refused", message=message)


def refund_record(*, refund_id: int, result: RefundResult, gateway: str = "") -> Refund:
    """Record what the gateway (an answer or a webhook) says about the refund."""
    with transaction.atomic():
        refund = (
            Refund.objects.select_for_update().select_related("tool_call__run").get(pk=refund_id)
        )
        if refund.submitted_at is None:
            return refund  # never sent by us: a webhook about something else
        if refund.provider_refund_id and refund.provider_refund_id != result.id:
            raise InvalidTransition(
                f"Refund #{refund.pk} is {refund.provider_refund_id} at the gateway, not {result.id}."
            )
        changed = (refund.provider_refund_id, refund.provider_status) != (result.id, result.status)
        refund.provider_refund_id = result.id
        refund.provider_status = result.status
        refund.gateway = gateway or refund.gateway
        refund.failure_message = result.failure_reason or ""
        refund.save()
        if changed:
            refund_audit(
                refund,
                result.status,
                message=f"{result.id}: {result.status}",
                provider_id=result.id,
            )
    return refund


def refund_reconcile_event(*, event: dict[str, Any]) -> list[str]:
    """Apply a verified Stripe event to the refunds it names; unknown refunds are ignored."""
    from support.integrations.stripe import refund_result_from

    kind = event["type"]
    obj = event["data"]["object"]
    if kind in ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated"):
        objects = [obj]
    elif kind == "charge.refunded":
        objects = (obj.get("refunds") or {}).get("data") or []
    else:
        return [f"ignored {kind}"]
    done = []
    for data in objects:
        result = refund_result_from(data)
        refund = (
            Refund.objects.filter(provider_refund_id=result.id).first()
            or Refund.objects.filter(pk=_int(result.metadata.get(METADATA_KEY))).first()
        )
        if refund is None:
            done.append(f"{result.id}: not ours")
            continue
        refund = refund_record(refund_id=refund.pk, result=result)
        done.append(f"{result.id}: refund #{refund.pk} {refund.provider_status}")
    return done


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
