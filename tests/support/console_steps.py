"""Rows for the console's lists: refunds in the inbox (or closed), without a model in the loop."""

from __future__ import annotations

import itertools
import uuid

from django.utils import timezone

from agents.models import AgentRun, Approval, Proposal, ToolCall
from support.models import Refund, ReplyDraft, Ticket
from support.services.tickets import SUBJECT_TYPE

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
    run = AgentRun.objects.create(
        toolset="support",
        prompt_name="support",
        prompt_version=1,
        system="",
        model="replay",
        backend="replay",
        max_tokens=1024,
        status=AgentRun.Status.AWAITING_APPROVAL,
        subject_type=SUBJECT_TYPE,
        subject_id=str(ticket.pk),
    )
    proposed = {"customer_email": ticket.customer_email, "amount": amount, "reason": "broken"}
    call = ToolCall.objects.create(
        run=run,
        tool_use_id=f"toolu_{uuid.uuid4().hex[:12]}",
        turn=1,
        position=0,
        tool_name="process_refund",
        input_proposed=proposed,
        requires_approval=True,
        approval_permission="support.approve_refund",
        status=call_status,
        checks=[{"name": "per-refund cap", "passed": True, "detail": "ok", "hard": True}],
    )
    proposal = Proposal.objects.create(
        tool_call=call,
        toolset="support",
        tool_name="process_refund",
        summary=f"${amount / 100:.2f} to {ticket.customer_email} · ticket #{ticket.pk}",
        checks=[
            {"name": "per-refund cap", "passed": True, "detail": "ok", "hard": True},
            {"name": "one approver is enough", "passed": n % 2 == 0, "detail": "", "hard": False},
        ],
        checked_at=timezone.now(),
        checked_in="proposal",
        waiting_since=timezone.now(),
        approvals_required=2 if approved_by is not None else 1,
    )
    if approved_by is not None:
        Approval.objects.create(proposal=proposal, user=approved_by)
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
    run = AgentRun.objects.create(
        toolset="support",
        prompt_name="support",
        prompt_version=1,
        system="",
        model="replay",
        backend="replay",
        max_tokens=1024,
        status=AgentRun.Status.AWAITING_APPROVAL,
        subject_type=SUBJECT_TYPE,
        subject_id=str(ticket.pk),
    )
    call = ToolCall.objects.create(
        run=run,
        tool_use_id=f"toolu_{uuid.uuid4().hex[:12]}",
        turn=1,
        position=0,
        tool_name="reply_to_customer",
        input_proposed={"body": body},
        requires_approval=True,
        approval_permission="support.send_reply",
        status=ToolCall.Status.AWAITING_APPROVAL,
    )
    Proposal.objects.create(
        tool_call=call,
        toolset="support",
        tool_name="reply_to_customer",
        summary=f"Reply to {ticket.customer_email} · ticket #{ticket.pk}",
        checks=[{"name": "has text", "passed": True, "detail": "", "hard": True}],
        checked_at=timezone.now(),
        checked_in="proposal",
        waiting_since=timezone.now(),
    )
    return ReplyDraft.objects.create(tool_call=call, ticket=ticket, body=body, drafted_by_run=run)
