"""The support agent's tools, registered with the engine as the "support" toolset."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field

from agents.models import AgentRun
from agents.prompts import prompt_register
from agents.registry import (
    Check,
    Escalate,
    Preparation,
    ProposalType,
    RetryLater,
    Tool,
    ToolContext,
    ToolError,
    Toolset,
    subject_url_register,
    toolset_register,
)
from support import policy
from support.models import CustomerAlias, Refund, ReplyDraft, Ticket
from support.payments import Charge, Customer, PaymentsUnavailable, gateway_get, refund_reason
from support.payments.types import money
from support.review import (
    RefundEditForm,
    ReplyEditForm,
    refund_review_context,
    reply_review_context,
)
from support.services import refunds as refund_services
from support.services import replies as reply_services
from support.services.tickets import SUBJECT_TYPE

TOOLSET = "support"


class FindCustomer(BaseModel):
    email: str = Field(description="The customer's email address, exactly as the ticket shows it.")


class ListPayments(BaseModel):
    customer_email: str = Field(description="The customer's email address.")


# The most a single Stripe refund can be (8 digits of cents); the policy's caps are lower.
AMOUNT_MAX = 99_999_999


class ProcessRefund(BaseModel):
    customer_email: str = Field(
        max_length=320, description="The email address associated with the account."
    )
    amount: int = Field(gt=0, le=AMOUNT_MAX, description="The exact refund amount in cents.")
    reason: str = Field(
        min_length=3,
        max_length=500,
        description="Why the refund is issued (e.g., 'defective product').",
    )


class ReplyToCustomer(BaseModel):
    # A reply goes to the ticket's From address and nowhere else: there is no recipient to give,
    # and any other field (to, cc, reply_to...) is refused rather than quietly dropped.
    model_config = ConfigDict(extra="forbid")

    body: str = Field(
        min_length=1, max_length=10_000, description="The reply, as plain text; a person sends it."
    )


class EscalateToHuman(BaseModel):
    reason: str = Field(min_length=3, max_length=2_000, description="What a person must decide.")


def _ticket(context: ToolContext) -> Ticket:
    return Ticket.objects.get(pk=context.subject_pk(SUBJECT_TYPE, "a support ticket"))


def _aliases(ticket: Ticket) -> list[str]:
    return list(CustomerAlias.objects.filter(ticket=ticket).values_list("email", flat=True))


def _own_customer(context: ToolContext, email: str) -> Ticket:
    """Look-ups are limited to the ticket's own customer: an email cannot point Claude elsewhere."""
    ticket = _ticket(context)
    check = policy.email_check(proposed=email, ticket=ticket, aliases=_aliases(ticket))
    if not check.passed:
        raise ToolError(f"You may only look up the customer who wrote this ticket: {check.detail}")
    return ticket


def find_customer(context: ToolContext, value: FindCustomer) -> dict:
    _own_customer(context, value.email)
    customer = gateway_get().customer_find(value.email)
    if customer is None:
        raise ToolError(f"No customer with the address {value.email!r} in the payments system.")
    return customer.as_dict()


def list_payments(context: ToolContext, value: ListPayments) -> dict:
    _own_customer(context, value.customer_email)
    gateway = gateway_get()
    customer = gateway.customer_find(value.customer_email)
    if customer is None:
        raise ToolError(f"No customer with the address {value.customer_email!r}.")
    charges = gateway.payments_list(customer.id)
    return {"customer": customer.id, "charges": [c.as_dict() for c in charges]}


@dataclass(frozen=True)
class PaymentsNow:
    """What the payments service says now about the ticket's customer and their charges."""

    customer: Customer | None
    charges: list[Charge]


def refund_gather(context: ToolContext) -> PaymentsNow:
    """Read the ticket's customer and charges live; an outage is worth another try."""
    ticket = _ticket(context)
    gateway = gateway_get()
    try:
        customer = gateway.customer_find(ticket.customer_email)
        charges = gateway.payments_list(customer.id) if customer else []
    except PaymentsUnavailable as error:
        raise RetryLater(f"The payments service did not answer: {error}") from error
    return PaymentsNow(customer=customer, charges=charges)


def _assess(context: ToolContext, refund: Refund | None) -> policy.Assessment:
    ticket = _ticket(context)
    value = context.value
    return policy.refund_assess(
        ticket=ticket,
        proposed_email=value.customer_email,
        amount=value.amount,
        aliases=_aliases(ticket),
        customer=context.evidence.customer,
        charges=context.evidence.charges,
        refund=refund,
    )


def refund_propose(context: ToolContext) -> Refund:
    """Record the refund with the charge the server picked from the ticket's own customer."""
    assessment = _assess(context, None)
    charge, customer = assessment.charge, assessment.customer
    return Refund.objects.create(
        tool_call=context.tool_call,
        ticket=_ticket(context),
        customer_id=customer.id if customer else "",
        charge_id=charge.id if charge else "",
        currency=charge.currency if charge else "",
        stripe_reason=str(refund_reason(context.value.reason)),
        refundable_at_proposal=charge.amount_refundable if charge else None,
    )


def refund_check(context: ToolContext) -> Preparation:
    """The refund policy on live data, counting Countersign's refunds not yet at Stripe."""
    assessment = _assess(context, context.record)
    charge = assessment.charge
    note = (
        f"Charge {charge.id}: {charge.amount_refundable} of {charge.amount} cents refundable at "
        "the payments service now."
        if charge
        else "No charge resolved."
    )
    return Preparation(checks=assessment.checks, note=note)


def refund_lock(context: ToolContext) -> str:
    """One customer's refunds are decided one at a time: the daily cap counts them all."""
    return _ticket(context).customer_email.casefold()


def refund_approvals(context: ToolContext) -> int:
    return 2 if context.value.amount > settings.SUPPORT_TWO_PERSON_THRESHOLD_CENTS else 1


def refund_summary(context: ToolContext) -> str:
    refund = context.record
    currency = refund.currency if refund is not None and refund.currency else "usd"
    ticket = _ticket(context)
    return (
        f"{money(context.value.amount, currency)} to {context.value.customer_email} · "
        f"ticket #{ticket.pk}: {ticket.subject}"
    )


def refund_outcome(refund: Refund, call) -> str:
    if refund.provider_refund_id:
        return f"{refund.provider_refund_id}: {refund.get_status_display().lower()}"
    return refund.failure_message


def refund_slack_decidable(refund: Refund) -> bool:
    return refund.amount <= settings.SUPPORT_SLACK_MAX_CENTS


def process_refund(context: ToolContext, value: ProcessRefund) -> dict:
    refund = context.record
    result = refund_services.refund_submit(refund_id=refund.pk)
    return {
        "refund": result.id,
        "status": result.status,
        "amount": result.amount,
        "currency": result.currency,
        "charge": result.charge_id,
        "approved_by_a_person": True,
    }


def reply_propose(context: ToolContext) -> ReplyDraft:
    return ReplyDraft.objects.create(
        tool_call=context.tool_call,
        ticket=_ticket(context),
        body=context.tool_call.input_proposed["body"],
        drafted_by_run=context.run,
    )


def reply_check(context: ToolContext) -> Preparation:
    """A reply goes to the ticket's sender only, and says something."""
    ticket = _ticket(context)
    body = context.value.body.strip()
    answered = ReplyDraft.objects.filter(
        ticket=ticket, status=ReplyDraft.Status.SENT, sent_at__gt=ticket_last_in(ticket)
    ).exists()
    return Preparation(
        checks=[
            Check(
                "goes to the ticket's sender only",
                True,
                f"To {ticket.customer_email}, the ticket's From address; never its Reply-To or "
                "an address Claude gives, no Cc or Bcc.",
                hard=True,
            ),
            Check("has text", bool(body), f"{len(body)} characters", hard=True),
            Check(
                "no other reply sent since the customer wrote",
                not answered,
                "Someone already answered the customer's last message." if answered else "None.",
            ),
        ],
        note=f"To {ticket.customer_email}.",
    )


def ticket_last_in(ticket: Ticket) -> datetime:
    last = ticket.messages.filter(direction="in").order_by("-received_at").first()
    return last.received_at if last else ticket.created_at


def reply_summary(context: ToolContext) -> str:
    ticket = _ticket(context)
    first = " ".join(context.value.body.split())[:120]
    return f"Reply to {ticket.customer_email} · ticket #{ticket.pk}: “{first}”"


def reply_outcome(draft: ReplyDraft, call) -> str:
    if draft.status == ReplyDraft.Status.SENT and draft.message_id:
        return f"sent to {draft.ticket.customer_email}"
    return draft.error


def reply_to_customer(context: ToolContext, value: ReplyToCustomer) -> str:
    return reply_services.reply_send_approved(
        draft_id=context.record.pk, body=value.body, user=context.approved_by
    )


def escalate_to_human(context: ToolContext, value: EscalateToHuman) -> Escalate:
    return Escalate(reason=value.reason, content="Handed over to a person.")


def _closing_why(record: Refund | ReplyDraft, status: str) -> tuple[object, str]:
    """Who closed the proposal and why, in a line for the ticket."""
    call = record.tool_call
    if status == "rejected":
        return call.decided_by, call.decision_reason or ""
    if status == "succeeded" and isinstance(record, Refund):
        return None, f"{record.get_status_display().lower()} ({record.provider_refund_id})"
    return None, (call.decision_reason or call.result or "")[:300]


def _what(record: Refund | ReplyDraft) -> str:
    if isinstance(record, Refund):
        return f"Refund #{record.pk} of {money(record.amount, record.currency or 'usd')}"
    return f"Reply #{record.pk}"


def proposal_waits(record: Refund | ReplyDraft) -> None:
    """The ticket says which of its proposals waits for a person."""
    from support.services.tickets import ticket_proposal_waits

    ticket_proposal_waits(ticket_id=record.ticket_id, what=_what(record))


def proposal_closed(record: Refund | ReplyDraft, status: str) -> None:
    """The ticket follows a proposal's closing: worked on again, unless another still waits."""
    from support.services.tickets import ticket_proposal_closed

    actor, why = _closing_why(record, status)
    ticket_proposal_closed(
        ticket_id=record.ticket_id, what=_what(record), status=status, actor=actor, why=why
    )


def _ticket_url(subject_id: str) -> str:
    from django.urls import reverse

    return reverse("admin:support_ticket_change", args=[int(subject_id)])


def run_status_changed(run: AgentRun) -> None:
    """Keep the ticket's status in step with its agent run."""
    from support.services.tickets import ticket_status_follow_run

    ticket_status_follow_run(run=run)


def register() -> Toolset:
    prompt_register(name="support", version=1, template="prompts/support/v1.txt")
    subject_url_register(SUBJECT_TYPE, _ticket_url)
    toolset = Toolset(
        name=TOOLSET,
        label="Support desk",
        prompt="support",
        replay_dir=str(Path(__file__).parent / "replays"),
        on_status_change=run_status_changed,
    )
    toolset.add(
        Tool(
            "find_customer",
            "Find the customer in the payments system by email address.",
            FindCustomer,
            find_customer,
        )
    )
    toolset.add(
        Tool(
            "list_payments",
            "List the customer's charges, what was refunded and what is still refundable.",
            ListPayments,
            list_payments,
        )
    )
    toolset.add(
        Tool(
            "process_refund",
            "Trigger a full or partial refund for a customer via Stripe. A person approves "
            "every refund before it runs; the server picks the charge and checks the policy.",
            ProcessRefund,
            process_refund,
            proposal=ProposalType(
                permission=refund_services.PERMISSION,
                model=Refund,
                gather=refund_gather,
                propose=refund_propose,
                check=refund_check,
                lock=refund_lock,
                approvals=refund_approvals,
                summary=refund_summary,
                template="support/_refund_evidence.html",
                context=refund_review_context,
                edit_form=RefundEditForm,
                ttl_hours=lambda: settings.SUPPORT_REFUND_EXPIRY_HOURS,
                slack_decidable=refund_slack_decidable,
                outcome=refund_outcome,
                on_wait=proposal_waits,
                on_close=proposal_closed,
            ),
            idempotent=True,  # the refund's idempotency key is fixed before the first attempt
        )
    )
    toolset.add(
        Tool(
            "reply_to_customer",
            "Reply to the customer who wrote the ticket. A person reviews every reply (and may "
            "edit it) before it is sent.",
            ReplyToCustomer,
            reply_to_customer,
            proposal=ProposalType(
                permission=reply_services.PERMISSION,
                model=ReplyDraft,
                propose=reply_propose,
                check=reply_check,
                summary=reply_summary,
                template="support/_reply_evidence.html",
                context=reply_review_context,
                edit_form=ReplyEditForm,
                outcome=reply_outcome,
                on_wait=proposal_waits,
                on_close=proposal_closed,
            ),
            idempotent=True,  # the draft's claim sends it once, however often this runs
        )
    )
    toolset.add(
        Tool(
            "escalate_to_human",
            "Hand the ticket to a person, with the reason. The run stops.",
            EscalateToHuman,
            escalate_to_human,
        )
    )
    return toolset_register(toolset)
