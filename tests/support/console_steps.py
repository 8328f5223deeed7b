"""Rows for the console's lists: refunds in the inbox (or closed), without a model in the loop."""

from __future__ import annotations

import itertools

from agents.models import ToolCall
from support.models import Refund, ReplyDraft, Ticket
from support.services.tickets import SUBJECT_TYPE
from tests.factories.proposals import proposal_waiting

_numbers = itertools.count(1)


def refund_waiting(
    *,
    amount: int = 4000,
    call_status: str = ToolCall.Status.AWAITING_APPROVAL,
    approved_by=None,
    **fields,
) -> Refund:
    """A proposed refund on a ticket of its own, as the support tool leaves it.

    `call_status` is where its tool call stands (waiting, by default; rejected, blocked...);
    `approved_by`, a user whose first approval it has (two people are needed then).
    """
    n = next(_numbers)
    ticket = Ticket.objects.create(
        customer_email=f"customer{n}@test.com", subject=f"Refund {n}", status="awaiting_approval"
    )
    proposal = proposal_waiting(
        toolset="support",
        tool_name="process_refund",
        permission="support.approve_refund",
        input={"customer_email": ticket.customer_email, "amount": amount, "reason": "broken"},
        summary=f"${amount / 100:.2f} to {ticket.customer_email} · ticket #{ticket.pk}",
        checks=[
            {"name": "per-refund cap", "passed": True, "detail": "ok", "hard": True},
            {"name": "one approver is enough", "passed": n % 2 == 0, "detail": "", "hard": False},
        ],
        subject=(SUBJECT_TYPE, ticket.pk),
        call_status=call_status,
        approved_by=approved_by,
    )
    call = proposal.tool_call
    return Refund.objects.create(
        ticket=ticket,
        tool_call=call,
        charge_id=f"ch_{n}",
        currency="usd",
        stripe_reason="requested_by_customer",
        refundable_at_proposal=amount,
        **fields,
    )


def reply_waiting(*, ticket: Ticket, body: str = "Hi, a colleague will help.") -> ReplyDraft:
    """Claude's reply on the ticket, waiting for a person, as reply_to_customer leaves it."""
    proposal = proposal_waiting(
        toolset="support",
        tool_name="reply_to_customer",
        permission="support.send_reply",
        input={"body": body},
        summary=f"Reply to {ticket.customer_email} · ticket #{ticket.pk}",
        checks=[{"name": "has text", "passed": True, "detail": "", "hard": True}],
        subject=(SUBJECT_TYPE, ticket.pk),
    )
    call, run = proposal.tool_call, proposal.tool_call.run
    return ReplyDraft.objects.create(tool_call=call, ticket=ticket, body=body, drafted_by_run=run)
