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
from django.db.models import Sum
from django.utils import timezone

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


def refund_assess(
    *,
    ticket: Ticket,
    proposed_email: str,
    amount: int,
    aliases: list[str],
    customer: Customer | None,
    charges: list[Charge],
    exclude_refund_id: int | None = None,
) -> Assessment:
    """Evaluate every rule for `amount` cents against the customer's live charges."""
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
            isinstance(amount, int) and amount > 0,
            f"{amount} cents",
            hard=True,
        )
    )
    open_refunds = Refund.objects.filter(status__in=Refund.OPEN + Refund.IN_FLIGHT)
    if exclude_refund_id:
        open_refunds = open_refunds.exclude(pk=exclude_refund_id)
    busy = set(open_refunds.values_list("charge_id", flat=True))
    charge = charge_choose(charges=charges, amount=amount, busy=busy)
    if charge is None:
        refundable = [c for c in charges if c.amount_refundable > 0]
        detail = (
            "No charge has anything left to refund."
            if not refundable
            else "No single charge can cover it: "
            + ", ".join(f"{c.id} has {c.amount_refundable} refundable" for c in refundable)
        )
        checks.append(Check("refundable charge", False, detail, hard=True))
        return Assessment(checks, customer, None)
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
    checks.append(
        Check(
            "not more than is refundable",
            amount <= charge.amount_refundable,
            f"{amount} of {charge.amount_refundable} cents",
            hard=True,
        )
    )
    checks.append(
        Check(
            "no open dispute",
            not charge.disputed,
            "The charge is disputed: the bank decides." if charge.disputed else "None.",
            hard=True,
        )
    )
    pending_at_gateway = [r for r in charge.refunds if r.status == "pending"]
    other_pending = charge.id in busy or bool(pending_at_gateway)
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
    today = _refunded_today(customer_email=ticket.customer_email, exclude=exclude_refund_id)
    daily = settings.SUPPORT_REFUND_DAILY_MAX_CENTS
    checks.append(
        Check(
            "per-customer daily cap",
            today + amount <= daily,
            f"{today} already in the last 24 hours + {amount} of at most {daily} cents "
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


def charge_choose(*, charges: list[Charge], amount: int, busy: set[str]) -> Charge | None:
    """The newest charge that can cover the amount, preferring ones with no refund open."""
    candidates = [c for c in charges if c.amount_refundable >= amount > 0]
    if not candidates:
        return None
    candidates.sort(
        key=lambda c: (c.id in busy or c.disputed, -(c.created.timestamp() if c.created else 0))
    )
    return candidates[0]


def _refunded_today(*, customer_email: str, exclude: int | None) -> int:
    since = timezone.now() - timedelta(hours=24)
    counted = Refund.objects.filter(
        ticket__customer_email=customer_email,
        created_at__gte=since,
        status__in=(
            *Refund.IN_FLIGHT,
            Refund.Status.SUCCEEDED,
            Refund.Status.AWAITING_SECOND_APPROVAL,
        ),
    )
    if exclude:
        counted = counted.exclude(pk=exclude)
    return counted.aggregate(total=Sum("amount"))["total"] or 0
