"""The support agent's tools, registered with the engine as the "support" toolset."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction
from django.urls import reverse
from pydantic import BaseModel, Field

from agents.models import AgentRun
from agents.prompts import prompt_register
from agents.registry import (
    Escalate,
    Preparation,
    Tool,
    ToolContext,
    ToolError,
    Toolset,
    toolset_register,
)
from support import policy
from support.models import CustomerAlias, Refund, ReplyDraft, Ticket
from support.payments import gateway_get, refund_reason
from support.services import refunds as refund_services
from support.services.tickets import SUBJECT_TYPE

TOOLSET = "support"


class FindCustomer(BaseModel):
    email: str = Field(description="The customer's email address, exactly as the ticket shows it.")


class ListPayments(BaseModel):
    customer_email: str = Field(description="The customer's email address.")


class ProcessRefund(BaseModel):
    customer_email: str = Field(description="The email address associated with the account.")
    amount: int = Field(strict=True, gt=0, description="The exact refund amount in cents.")
    reason: str = Field(
        min_length=3,
        max_length=500,
        description="Why the refund is issued (e.g., 'defective product').",
    )


class ReplyToCustomer(BaseModel):
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


def process_refund_prepare(context: ToolContext, value: ProcessRefund) -> Preparation:
    """Resolve the charge from the ticket's customer and evaluate the refund policy."""
    ticket = _ticket(context)
    gateway = gateway_get()
    customer = gateway.customer_find(ticket.customer_email)
    charges = gateway.payments_list(customer.id) if customer else []
    assessment = policy.refund_assess(
        ticket=ticket,
        proposed_email=value.customer_email,
        amount=value.amount,
        aliases=_aliases(ticket),
        customer=customer,
        charges=charges,
    )
    charge = assessment.charge
    checks = [c.as_dict() for c in assessment.checks]
    with transaction.atomic():
        refund, created = Refund.objects.get_or_create(
            tool_call=context.tool_call,
            defaults={
                "ticket": ticket,
                "customer_email": value.customer_email,
                "customer_id": customer.id if customer else "",
                "charge_id": charge.id if charge else "",
                "currency": charge.currency if charge else "",
                "amount_proposed": value.amount,
                "amount": value.amount,
                "reason": value.reason,
                "stripe_reason": str(refund_reason(value.reason)),
                "refundable_at_proposal": charge.amount_refundable if charge else None,
                "checks": checks,
                "status": Refund.Status.BLOCKED if assessment.blocked else Refund.Status.PROPOSED,
                "status_reason": "A hard policy check failed." if assessment.blocked else "",
            },
        )
        if created:
            refund_services.refund_audit(refund, refund.status, checks=checks)
    note = (
        f"Charge {charge.id}: {charge.amount_refundable} of {charge.amount} cents refundable."
        if charge
        else "No charge resolved."
    )
    return Preparation(checks=assessment.checks, note=note)


def process_refund(context: ToolContext, value: ProcessRefund) -> dict:
    refund = Refund.objects.get(tool_call=context.tool_call)
    result = refund_services.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()
    return {
        "refund": result.id,
        "status": result.status,
        "amount": result.amount,
        "currency": result.currency,
        "charge": result.charge_id,
        "approved_by_a_person": True,
    }


def reply_to_customer(context: ToolContext, value: ReplyToCustomer) -> str:
    ticket = _ticket(context)
    draft = ReplyDraft.objects.create(ticket=ticket, body=value.body, drafted_by_run=context.run)
    return (
        f"Draft reply #{draft.pk} saved on ticket #{ticket.pk}. A person reviews and sends it; "
        "it has not been sent yet."
    )


def escalate_to_human(context: ToolContext, value: EscalateToHuman) -> Escalate:
    return Escalate(reason=value.reason, content="Handed over to a person.")


def refund_review_url(call) -> str | None:
    """Refunds are reviewed on their own page, with the payments and the two-person rule."""
    refund_id = Refund.objects.filter(tool_call_id=call.pk).values_list("pk", flat=True).first()
    return reverse("admin:support_refund_review", args=[refund_id]) if refund_id else None


def run_status_changed(run: AgentRun) -> None:
    """Keep the ticket's status in step with its agent run."""
    from support.services.tickets import ticket_status_follow_run

    ticket_status_follow_run(run=run)


def register() -> Toolset:
    prompt_register(name="support", version=1, template="prompts/support/v1.txt")
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
            approval_permission=refund_services.PERMISSION,
            idempotent=True,  # the refund's idempotency key is fixed before the first attempt
            prepare=process_refund_prepare,
            authorize=refund_services.refund_authorize,
            review_url=refund_review_url,
        )
    )
    toolset.add(
        Tool(
            "reply_to_customer",
            "Draft a reply to the customer. It is saved for a person to review and send.",
            ReplyToCustomer,
            reply_to_customer,
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
