"""Refund transitions, from proposal to Stripe's last word.

proposed ─► approved ─► submitting ─► succeeded / pending / failed
    │   └─► awaiting_second_approval ─► approved (a different person)
    ├─► rejected          blocked (a hard policy failure; never approvable)
    └─► expired

Every transition is a compare-and-set in a transaction with its audit row. Submission claims
the row, commits, then calls the payments gateway outside any transaction with the refund's
fixed idempotency key, and records the answer in a new transaction: a retried or duplicated
task can never refund twice.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents.audit import audit_record
from agents.registry import RetryLater, ToolError
from agents.services import InvalidTransition, tool_call_approve, tool_call_expire, tool_call_reject
from support.models import Refund
from support.payments import PaymentError, RefundResult, gateway_get
from support.services.tickets import SUBJECT_TYPE

S = Refund.Status
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
        data={"refund": refund.pk, "amount": refund.amount, "status": refund.status, **data},
    )


def _check_permission(user: Any) -> None:
    if not (user.is_active and user.has_perm(PERMISSION)):
        raise PermissionDenied("Deciding on refunds needs the permission support.approve_refund.")


def _locked(refund_id: int, allowed: tuple[str, ...], verb: str) -> Refund:
    refund = Refund.objects.select_for_update().select_related("tool_call__run").get(pk=refund_id)
    if refund.status not in allowed:
        raise InvalidTransition(
            f"Refund #{refund.pk} is {refund.get_status_display().lower()}; it cannot be {verb}."
        )
    return refund


def refund_approve(
    *, refund_id: int, user: Any, amount: int | None = None, note: str = ""
) -> Refund:
    """Approve a refund, optionally for a lower amount; above the threshold it takes two people."""
    _check_permission(user)
    with transaction.atomic():
        refund = _locked(refund_id, Refund.OPEN, "approved")
        now = timezone.now()
        if amount is not None and amount != refund.amount:
            if refund.status != S.PROPOSED:
                raise InvalidTransition(
                    "The second approver approves the amount the first one did."
                )
            _amount_check(refund, amount)
            refund.amount = amount
        if refund.status == S.PROPOSED and refund.needs_second_approval:
            refund.status = S.AWAITING_SECOND_APPROVAL
            refund.first_approved_by, refund.first_approved_at = user, now
            refund.save()
            refund_audit(refund, "first_approval", actor=user, message=note)
            return refund
        if refund.status == S.AWAITING_SECOND_APPROVAL and refund.first_approved_by_id == user.pk:
            raise PermissionDenied("The second approval must come from a different person.")
        refund.status = S.APPROVED
        refund.approved_by, refund.approved_at = user, now
        refund.save()
        refund_audit(refund, "approved", actor=user, message=note)
        proposed = refund.tool_call.input_proposed
        edited = (
            {**proposed, "amount": refund.amount} if refund.amount != proposed["amount"] else None
        )
        tool_call_approve(
            tool_call_id=refund.tool_call_id, user=user, edited_input=edited, note=note
        )
    return refund


def _amount_check(refund: Refund, amount: int) -> None:
    if not isinstance(amount, int) or amount <= 0:
        raise InvalidTransition("The amount must be a positive whole number of cents.")
    limit = min(refund.refundable_at_proposal or 0, settings.SUPPORT_REFUND_MAX_CENTS)
    if amount > limit:
        raise InvalidTransition(
            f"{amount} cents is more than may be refunded here ({limit} cents: what is "
            "refundable on the charge, within the per-refund cap)."
        )


def refund_reject(*, refund_id: int, user: Any, reason: str) -> Refund:
    """Reject a refund; Claude is told the reason."""
    _check_permission(user)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidTransition("A rejection needs a reason; Claude is told it.")
    with transaction.atomic():
        refund = _locked(refund_id, Refund.OPEN, "rejected")
        refund.status = S.REJECTED
        refund.rejected_by, refund.rejected_at, refund.reject_reason = user, timezone.now(), reason
        refund.finished_at = timezone.now()
        refund.save()
        refund_audit(refund, "rejected", actor=user, message=reason)
        tool_call_reject(tool_call_id=refund.tool_call_id, user=user, reason=reason)
    return refund


def refund_authorize(call: Any, user: Any, edited_input: dict[str, Any] | None) -> None:
    """The engine's approval gate for process_refund: only `refund_approve` may open it."""
    refund = Refund.objects.filter(tool_call_id=call.pk).first()
    if refund is None or refund.status != S.APPROVED or refund.approved_by_id != user.pk:
        raise InvalidTransition(
            "Refunds are approved on the refund review page, where the amount checks and the "
            "two-person rule apply."
        )
    if (edited_input or call.input_proposed)["amount"] != refund.amount:
        raise InvalidTransition("The approved amount and the refund's amount differ.")


def refunds_expire(*, now=None) -> int:
    """Expire refunds nobody decided on in time; Claude is told they did not happen."""
    now = now or timezone.now()
    hours = settings.SUPPORT_REFUND_EXPIRY_HOURS
    expired = 0
    for refund_id in Refund.objects.filter(
        status__in=Refund.OPEN, created_at__lt=now - timedelta(hours=hours)
    ).values_list("pk", flat=True):
        with transaction.atomic():
            try:
                refund = _locked(refund_id, Refund.OPEN, "expired")
            except InvalidTransition:
                continue
            refund.status, refund.finished_at = S.EXPIRED, now
            refund.status_reason = f"No decision within {hours:g} hours."
            refund.save()
            refund_audit(refund, "expired", message=refund.status_reason)
            tool_call_expire(tool_call_id=refund.tool_call_id, older_than_hours=hours)
            expired += 1
    return expired


def refund_submit(*, refund_id: int) -> RefundResult:
    """Send an approved refund to the payments gateway, once, whatever happens around it."""
    now = timezone.now()
    claimed = Refund.objects.filter(
        pk=refund_id, status__in=(S.APPROVED, S.SUBMITTING), approved_by__isnull=False
    ).update(
        status=S.SUBMITTING,
        attempts=F("attempts") + 1,
        submitted_at=Coalesce(F("submitted_at"), now),
    )
    refund = Refund.objects.select_related("tool_call__run").get(pk=refund_id)
    if not claimed:
        raise ToolError(
            f"Refund #{refund.pk} is {refund.get_status_display().lower()}: it was not sent."
        )
    if refund.needs_second_approval and not (
        refund.first_approved_by_id and refund.first_approved_by_id != refund.approved_by_id
    ):
        raise ToolError("This refund needs two different approvers; it was not sent.")
    gateway = gateway_get()
    metadata = {
        METADATA_KEY: str(refund.pk),
        "ticket": str(refund.ticket_id),
        "approved_by": str(refund.approved_by_id),
        "first_approved_by": str(refund.first_approved_by_id or ""),
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
        if refund.status != S.SUBMITTING:
            return
        refund.status, refund.gateway, refund.failure_message = S.FAILED, gateway, message
        refund.finished_at = timezone.now()
        refund.save()
        refund_audit(refund, "failed", message=message)


OUTCOMES = {
    "succeeded": S.SUCCEEDED,
    "pending": S.PENDING,
    "requires_action": S.PENDING,
    "failed": S.FAILED,
    "canceled": S.FAILED,
}


def refund_record(*, refund_id: int, result: RefundResult, gateway: str = "") -> Refund:
    """Record what the gateway (an answer or a webhook) says about the refund."""
    status = OUTCOMES.get(result.status, S.PENDING)
    with transaction.atomic():
        refund = (
            Refund.objects.select_for_update().select_related("tool_call__run").get(pk=refund_id)
        )
        if refund.status not in (S.SUBMITTING, S.PENDING, S.SUCCEEDED):
            return refund
        if refund.provider_refund_id and refund.provider_refund_id != result.id:
            raise InvalidTransition(
                f"Refund #{refund.pk} is {refund.provider_refund_id} at the gateway, not {result.id}."
            )
        changed = (refund.status, refund.provider_status) != (status, result.status)
        refund.status = status
        refund.provider_refund_id = result.id
        refund.provider_status = result.status
        refund.gateway = gateway or refund.gateway
        refund.failure_message = result.failure_reason or ""
        if status in (S.SUCCEEDED, S.FAILED):
            refund.finished_at = refund.finished_at or timezone.now()
        refund.save()
        if changed:
            refund_audit(
                refund, status, message=f"{result.id}: {result.status}", provider_id=result.id
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
        done.append(f"{result.id}: refund #{refund.pk} {refund.status}")
    return done


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
