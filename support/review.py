"""What the engine's review page shows and edits for the support desk's proposals."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from agents.admin.forms import ProposalEditForm
from support.admin.forms import amount_to_cents, cents_to_text
from support.mail.trust import warned_messages
from support.models import Refund, ReplyDraft
from support.payments.types import money
from support.selectors import customer_payments_get, refund_list_of_customer, ticket_messages


class RefundEditForm(ProposalEditForm):
    """A lower (or other) amount, in dollars and cents as a person writes it."""

    template_name = "support/_refund_edit.html"
    label = "Edit the amount, then approve"
    submit_label = "Approve this amount"
    amount = forms.CharField(max_length=32, strip=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.currency = (self.record.currency if self.record else "") or "usd"
        if not self.is_bound and self.record is not None:
            self.initial["amount"] = cents_to_text(self.record.amount, self.currency)

    def clean_amount(self) -> int:
        return amount_to_cents(self.cleaned_data["amount"], currency=self.currency)

    def edited_value(self) -> dict[str, Any]:
        return {**self.call.effective_input, "amount": self.cleaned_data["amount"]}

    def limit(self) -> str:
        refundable = self.record.refundable_at_proposal if self.record else 0
        return money(min(refundable or 0, settings.SUPPORT_REFUND_MAX_CENTS), self.currency)


def refund_review_context(refund: Refund, call: Any) -> dict[str, Any]:
    """The refund's evidence: the live payments, earlier refunds, the thread and its warnings."""
    ticket = refund.ticket
    currency = refund.currency or "usd"
    thread = list(ticket_messages(ticket_id=ticket.pk).defer("raw"))
    return {
        "refund": refund,
        "ticket": ticket,
        "amount": money(refund.amount, currency),
        "amount_proposed": money(refund.amount_proposed, currency),
        "approve_label": f"Approve {money(refund.amount, currency)}",
        "refundable": (
            money(refund.refundable_at_proposal, currency)
            if refund.refundable_at_proposal is not None
            else "unknown"
        ),
        "threshold": money(settings.SUPPORT_TWO_PERSON_THRESHOLD_CENTS, currency),
        "payments": customer_payments_get(email=ticket.customer_email),
        "earlier": list(
            refund_list_of_customer(customer_email=ticket.customer_email, exclude_id=refund.pk)[:20]
        ),
        "thread": thread,
        "warned": warned_messages(thread),
    }


class ReplyEditForm(ProposalEditForm):
    """The reply's text, as the reviewer would send it."""

    template_name = "agents/proposals/_edit_json.html"
    label = "Edit the reply, then approve (send it)"
    submit_label = "Approve: send the edited reply"
    body = forms.CharField(
        label="The reply", strip=False, max_length=20_000, widget=forms.Textarea(attrs={"rows": 10})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial["body"] = self.call.effective_input.get("body", "")

    def clean_body(self) -> str:
        text = self.cleaned_data["body"].replace("\r\n", "\n").replace("\r", "\n").strip()
        if not text:
            raise forms.ValidationError("A reply needs some text.")
        return text

    def edited_value(self) -> dict[str, Any]:
        return {**self.call.effective_input, "body": self.cleaned_data["body"]}


def reply_review_context(draft: ReplyDraft, call: Any) -> dict[str, Any]:
    """The reply's evidence: who it goes to, the ticket's thread and what to be wary of in it."""
    ticket = draft.ticket
    thread = list(ticket_messages(ticket_id=ticket.pk).defer("raw"))
    return {
        "draft": draft,
        "ticket": ticket,
        "approve_label": f"Approve: send to {ticket.customer_email}",
        "thread": thread,
        "warned": warned_messages(thread),
    }
