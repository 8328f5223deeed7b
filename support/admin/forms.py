"""Forms of the support desk's console pages; they parse input, the services decide."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django import forms
from django.core.exceptions import ValidationError

# Currencies Stripe counts in whole units: an amount of 500 JPY is 500, not 5.00.
ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
_AMOUNT = re.compile(r"\d{1,9}(\.\d+)?")
_SYMBOLS = "$€£¥"


def minor_units(currency: str) -> int:
    return 0 if currency.lower() in ZERO_DECIMAL else 2


def amount_to_cents(text: str, *, currency: str) -> int:
    """Read "25", "25.5" or "25.50" (dollars and cents) as integer cents; refuse anything else."""
    value = (text or "").strip().lstrip(_SYMBOLS).strip()
    places = minor_units(currency)
    unit = "whole units" if places == 0 else "dollars and cents, like 25.00"
    if "," in value:
        raise ValidationError(
            f"Write the amount as {unit}, with a dot for the cents and no thousands separator."
        )
    if not value:
        raise ValidationError(f"Enter the amount to refund, in {unit}.")
    if not _AMOUNT.fullmatch(value):
        raise ValidationError(f"“{text.strip()}” is not an amount: write it as {unit}.")
    try:
        minor = Decimal(value).scaleb(places)
    except InvalidOperation as error:
        raise ValidationError(f"“{text.strip()}” is not an amount.") from error
    if minor != minor.to_integral_value():
        raise ValidationError(
            "That is a fraction of a cent: use at most two decimals."
            if places
            else "This currency has no cents: use a whole number."
        )
    if minor <= 0:
        raise ValidationError("The amount must be more than zero.")
    return int(minor)


def cents_to_text(cents: int | None, currency: str) -> str:
    """Integer cents as the figure a person types: 4000 → "40.00"."""
    if cents is None:
        return ""
    places = minor_units(currency)
    return f"{Decimal(cents).scaleb(-places):.{places}f}"


APPROVE, EDIT, REJECT = "approve", "edit", "reject"


class RefundDecisionForm(forms.Form):
    """One of the review page's three forms, told apart by `action`."""

    action = forms.ChoiceField(choices=[(APPROVE, "Approve"), (EDIT, "Edit"), (REJECT, "Reject")])
    note = forms.CharField(required=False, max_length=2000)
    amount = forms.CharField(required=False, max_length=32, strip=True)
    reason = forms.CharField(required=False, max_length=2000)

    def __init__(self, *args, currency: str = "usd", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency or "usd"

    def clean(self) -> dict:
        data = super().clean()
        action = data.get("action")
        if action == EDIT:
            try:
                data["amount_cents"] = amount_to_cents(
                    data.get("amount", ""), currency=self.currency
                )
            except ValidationError as error:
                self.add_error("amount", error)
        if action == REJECT and not data.get("reason", "").strip():
            self.add_error("reason", "A rejection needs a reason; Claude is told it.")
        return data


SEND, SEND_EDITED, DISCARD, REQUEUE = "send", "send_edited", "discard", "requeue"


class ReplyForm(forms.Form):
    """A reply on the ticket page: a draft's buttons, or staff's own words (no draft)."""

    action = forms.ChoiceField(
        choices=[
            (SEND, "Send as is"),
            (SEND_EDITED, "Send edited"),
            (DISCARD, "Discard"),
            (REQUEUE, "Queue again"),
        ]
    )
    draft = forms.IntegerField(required=False, min_value=1)
    body = forms.CharField(required=False, max_length=20_000, strip=False)

    def clean(self) -> dict:
        data = super().clean()
        needs_body = data.get("action") == SEND_EDITED or not data.get("draft")
        if needs_body and not (data.get("body") or "").strip():
            self.add_error("body", "Write the reply first.")
        if not data.get("draft") and data.get("action") not in (SEND, SEND_EDITED):
            self.add_error("draft", "Which draft?")
        return data


class AliasForm(forms.Form):
    email = forms.CharField(max_length=320, strip=True)
