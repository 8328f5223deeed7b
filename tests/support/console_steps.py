"""Rows for the console's list tests: refunds waiting in the queue, without a model in the loop."""

from __future__ import annotations

import itertools
import uuid

from agents.models import AgentRun, ToolCall
from support.models import Refund, Ticket
from support.services.tickets import SUBJECT_TYPE

_numbers = itertools.count(1)


def refund_waiting(*, amount: int = 4000, status: str = Refund.Status.PROPOSED, **fields) -> Refund:
    """A proposed refund on a ticket of its own, as the support tool leaves it."""
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
        status=ToolCall.Status.AWAITING_APPROVAL,
        checks=[{"name": "per-refund cap", "passed": True, "detail": "ok", "hard": True}],
    )
    return Refund.objects.create(
        ticket=ticket,
        tool_call=call,
        customer_email=ticket.customer_email,
        charge_id=f"ch_{n}",
        currency="usd",
        amount_proposed=amount,
        amount=amount,
        reason="broken",
        stripe_reason="requested_by_customer",
        refundable_at_proposal=amount,
        checks=[
            {"name": "per-refund cap", "passed": True, "detail": "ok", "hard": True},
            {"name": "one approver is enough", "passed": n % 2 == 0, "detail": "", "hard": False},
        ],
        status=status,
        **fields,
    )
