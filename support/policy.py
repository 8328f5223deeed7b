"""Refund policy: the checks every proposed refund must pass before a person may approve it.

Claude never picks the money on its own say: the charge is resolved here from the ticket's own
customer, and each rule below is evaluated against live payment data. Hard failures cannot be
approved at all; every result is shown to the reviewer and sent back to Claude.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from agents.models import ToolCall
from agents.registry import Check
from support.models import Refund, Ticket
from support.payments import Charge, Customer

# Characters that render as nothing, or as a space, but are not the same text.
_INVISIBLE_CATEGORIES = {"Cf", "Cc", "Zl", "Zp"}


def email_check(*, proposed: str, ticket: Ticket, aliases: list[str]) -> Check:
    """The address in the call is the ticket's sender (or a confirmed alias), to the character."""
    allowed = [ticket.customer_email, *aliases]
    if proposed in allowed:
        which = "the ticket's sender" if proposed == ticket.customer_email else "a confirmed alias"
        return Check("email matches the ticket", True, f"{proposed} is {which}.", hard=True)
    detail = f"{proposed!r} is not the ticket's sender {ticket.customer_email!r}"
    hidden = [c for c in proposed if unicodedata.category(c) in _INVISIBLE_CATEGORIES]
    folded = unicodedata.normalize("NFKC", proposed).casefold()
    if hidden:
        detail += (
            f"; it contains invisible characters ({', '.join(f'U+{ord(c):04X}' for c in hidden)})"
        )
    elif any(unicodedata.normalize("NFKC", a).casefold() == folded for a in allowed):
        detail += "; it only looks alike (case, width or look-alike characters differ)"
    elif any(ord(c) > 127 for c in proposed):
        detail += "; it has non-ASCII characters"
    return Check("email matches the ticket", False, detail + ".", hard=True)


@dataclass(frozen=True)
class Assessment:
    checks: list[Check]
    customer: Customer | None
    charge: Charge | None

    @property
    def blocked(self) -> bool:
        return any(c.hard and not c.passed for c in self.checks)


TC = ToolCall.Status


def refunds_committed(*, customer_email: str = "", charge_id: str = "", exclude: int | None = None):
    """Countersign's refunds a person has approved (at least once) that may still move money.

    Approved and waiting for a second approval, queued, being sent, or sent and not failed at
    the payments service: what the daily cap and a charge's refundable amount must count even
    before the payments service shows them.
    """
    refunds = Refund.objects.select_related("tool_call").filter(
        Q(tool_call__status__in=(TC.QUEUED, TC.EXECUTING))
        | Q(tool_call__status=TC.AWAITING_APPROVAL, tool_call__proposal__approvals__isnull=False)
        | (Q(tool_call__status=TC.SUCCEEDED) & ~Q(provider_status__in=Refund.PROVIDER_FAILED))
    )
    if customer_email:
        refunds = refunds.filter(ticket__customer_email=customer_email)
    if charge_id:
        refunds = refunds.filter(charge_id=charge_id)
    if exclude:
        refunds = refunds.exclude(pk=exclude)
    return list(refunds.distinct())


def refunds_open_on(
    *, charge_id: str = "", customer_email: str = "", exclude: int | None = None
) -> list[Refund]:
    """Refunds (of a charge, or a customer) undecided, on their way, or pending at the bank."""
    refunds = Refund.objects.select_related("tool_call").filter(
        Q(
            tool_call__status__in=(
                TC.PREPARING,
                TC.AWAITING_APPROVAL,
                TC.QUEUED,
                TC.EXECUTING,
            )
        )
        | Q(tool_call__status=TC.SUCCEEDED, provider_status__in=("pending", "requires_action")),
    )
    if charge_id:
        refunds = refunds.filter(charge_id=charge_id)
    if customer_email:
        refunds = refunds.filter(ticket__customer_email=customer_email)
    if exclude:
        refunds = refunds.exclude(pk=exclude)
    return list(refunds)


def refund_assess(
    *,
    ticket: Ticket,
    proposed_email: str,
    amount: int,
    aliases: list[str],
    customer: Customer | None,
    charges: list[Charge],
    refund: Refund | None = None,
) -> Assessment:
    """Evaluate every rule for `amount` cents against the customer's live charges.

    With no `refund` yet (a new proposal) the server picks the charge; afterwards the refund's
    own charge is judged again, as the payments service sees it now, together with the refunds
    Countersign has approved but the payments service may not show yet.
    """
    exclude = refund.pk if refund is not None else None
    checks = [email_check(proposed=proposed_email, ticket=ticket, aliases=aliases)]
    if customer is None:
        checks.append(
            Check("customer found", False, "No customer with that address in payments.", hard=True)
        )
        return Assessment(checks, None, None)
    checks.append(Check("customer found", True, f"{customer.id} ({customer.email})", hard=True))
    checks.append(
        Check(
            "amount is a positive whole number of cents",
            isinstance(amount, int) and not isinstance(amount, bool) and amount > 0,
            f"{amount} cents",
            hard=True,
        )
    )
    if refund is None:
        busy = {r.charge_id for r in refunds_open_on(customer_email=ticket.customer_email)}
        charge = charge_choose(charges=charges, amount=amount, busy=busy)
    else:
        charge = next((c for c in charges if c.id == refund.charge_id), None)
    if charge is None:
        refundable = [c for c in charges if c.amount_refundable > 0]
        if refund is not None and refund.charge_id:
            detail = f"The charge {refund.charge_id} is no longer among the customer's charges."
        elif not refundable:
            detail = "No charge has anything left to refund."
        else:
            detail = "No single charge can cover it: " + ", ".join(
                f"{c.id} has {c.amount_refundable} refundable" for c in refundable
            )
        checks.append(Check("refundable charge", False, detail, hard=True))
        return Assessment(checks, customer, None)
    own = _own_at_gateway(charge, refund)
    unreflected = sum(
        r.amount
        for r in refunds_committed(charge_id=charge.id, exclude=exclude)
        if r.provider_refund_id not in {x.id for x in charge.refunds}
    )
    refundable_now = charge.amount_refundable + own - unreflected
    checks.append(
        Check(
            "refundable charge",
            True,
            f"{charge.id}: {charge.amount} {charge.currency.upper()} charged, "
            f"{charge.amount_refunded} refunded, {charge.amount_refundable} refundable"
            + (f" ({charge.description})" if charge.description else ""),
            hard=True,
        )
    )
    detail = f"{amount} of {refundable_now} cents"
    if unreflected:
        detail += f" ({unreflected} approved here and not yet shown by the payments service)"
    if own:
        detail += " (this refund is already at the payments service)"
    checks.append(Check("not more than is refundable", amount <= refundable_now, detail, hard=True))
    checks.append(
        Check(
            "no open dispute",
            not charge.disputed,
            "The charge is disputed: the bank decides." if charge.disputed else "None.",
            hard=True,
        )
    )
    mine = {refund.provider_refund_id} if refund is not None else set()
    pending_at_gateway = [
        r
        for r in charge.refunds
        if r.status == "pending"
        and r.id not in mine
        and (refund is None or r.metadata.get("countersign_refund") != str(refund.pk))
    ]
    other_open = refunds_open_on(charge_id=charge.id, exclude=exclude)
    other_pending = bool(pending_at_gateway or other_open)
    checks.append(
        Check(
            "no other refund pending on the charge",
            not other_pending,
            "Another refund on this charge is still open." if other_pending else "None.",
            hard=True,
        )
    )
    per_refund = settings.SUPPORT_REFUND_MAX_CENTS
    checks.append(
        Check(
            "per-refund cap",
            amount <= per_refund,
            f"{amount} of at most {per_refund} cents (SUPPORT_REFUND_MAX_CENTS)",
            hard=True,
        )
    )
    since = timezone.now() - timedelta(hours=24)
    today = sum(
        r.amount
        for r in refunds_committed(customer_email=ticket.customer_email, exclude=exclude)
        if r.created_at >= since
    )
    daily = settings.SUPPORT_REFUND_DAILY_MAX_CENTS
    checks.append(
        Check(
            "per-customer daily cap",
            today + amount <= daily,
            f"{today} approved in the last 24 hours + {amount} of at most {daily} cents "
            "(SUPPORT_REFUND_DAILY_MAX_CENTS)",
            hard=True,
        )
    )
    threshold = settings.SUPPORT_TWO_PERSON_THRESHOLD_CENTS
    checks.append(
        Check(
            "one approver is enough",
            amount <= threshold,
            f"Above {threshold} cents a second, different person must approve."
            if amount > threshold
            else f"At most {threshold} cents.",
        )
    )
    return Assessment(checks, customer, charge)


def _own_at_gateway(charge: Charge, refund: Refund | None) -> int:
    """Cents of this very refund that the payments service already counts (a retried send)."""
    if refund is None:
        return 0
    mine = [
        r
        for r in charge.refunds
        if (r.id and r.id == refund.provider_refund_id)
        or r.metadata.get("countersign_refund") == str(refund.pk)
    ]
    return sum(r.amount for r in mine if r.status not in Refund.PROVIDER_FAILED)


def charge_choose(*, charges: list[Charge], amount: int, busy: set[str]) -> Charge | None:
    """The newest charge that can cover the amount, preferring ones with no refund open."""
    candidates = [c for c in charges if c.amount_refundable >= amount > 0]
    if not candidates:
        return None
    candidates.sort(
        key=lambda c: (c.id in busy or c.disputed, -(c.created.timestamp() if c.created else 0))
    )
    return candidates[0]
