"""A ticket's status follows what happened to its refunds, replies and runs, on every path."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import AuditEvent, ToolCall
from agents.services import agents_sweep, proposal_reject, run_cancel
from support.models import ReplyDraft, Ticket
from support.services.refunds import refund_approve, refund_reject
from tests.factories.users import user_create
from tests.support.refund_steps import (
    bob_writes,
    proposed_refund,
    proposed_reply,
    reply_send,
    run_of,
    script_reply,
)

pytestmark = pytest.mark.django_db
T = Ticket.Status


def approver():
    return user_create(perms=["support.approve_refund", "support.send_reply"])


def steps(ticket_id: int) -> list[tuple[str, str]]:
    """The ticket's transitions, oldest first: (status it went to, why)."""
    events = AuditEvent.objects.filter(
        subject_type="support.ticket", subject_id=str(ticket_id), kind__startswith="ticket."
    )
    return [(e.data["to"], e.message) for e in events.order_by("id") if "to" in (e.data or {})]


def ticket() -> Ticket:
    return Ticket.objects.get()


def test_refund_succeeded_then_reply_drafted_then_sent(fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    assert ticket().status == T.AWAITING_APPROVAL
    assert ticket().status_reason == f"Refund #{refund.pk} of $40.00 waits for approval."
    reply_id = script_reply(fake_anthropic)
    with worker.committing():
        refund_approve(refund_id=refund.pk, user=approver())
    worker.drain()
    reply = ReplyDraft.objects.get(tool_call__tool_use_id=reply_id)
    # Waiting again, on the reply now; and it says so, not the refund that went through.
    assert ticket().status == T.AWAITING_APPROVAL
    assert ticket().status_reason == f"Reply #{reply.pk} waits for approval."
    went = steps(ticket().pk)
    assert [s for s, _ in went] == [
        "triaging",
        "awaiting_approval",
        "triaging",
        "awaiting_approval",
    ]
    assert went[2][1].startswith(f"Refund #{refund.pk} of $40.00 went through: succeeded (re_")
    reply_send(worker, fake_anthropic, reply_id)
    assert ticket().status == T.WAITING_ON_CUSTOMER
    assert run_of(refund).status == "completed"


def test_refund_rejected_then_claude_ends_its_turn_hands_the_ticket_to_a_person(
    fake_anthropic, stripe_fake, worker
):
    refund = proposed_refund(worker, fake_anthropic)
    fake_anthropic.push_text("Understood, I will not refund.")
    with worker.committing():
        refund_reject(refund_id=refund.pk, user=approver(), reason="Past the window")
    worker.drain()
    assert run_of(refund).status == "completed"
    assert ticket().status == T.ESCALATED
    assert "without a reply to the customer" in ticket().status_reason
    went = steps(ticket().pk)
    assert went[-2][0] == "triaging"
    assert went[-2][1].startswith(f"Refund #{refund.pk} of $40.00 was rejected by user")
    assert went[-2][1].endswith(": Past the window")


def test_refund_rejected_then_a_reply_waits(fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    script_reply(fake_anthropic, "Hi Bob, a colleague will look at this.")
    with worker.committing():
        refund_reject(refund_id=refund.pk, user=approver(), reason="Past the window")
    worker.drain()
    assert ticket().status == T.AWAITING_APPROVAL
    assert ticket().status_reason.startswith("Reply #")


def test_refund_failed_at_the_bank_then_claude_ends(fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    fake_anthropic.push_text("The refund failed.")
    with worker.committing():
        refund_approve(refund_id=refund.pk, user=approver())
    stripe_fake.fail_next(
        "error",
        path="/v1/refunds",
        error={"type": "invalid_request_error", "code": "x", "message": "Charge refunded."},
    )
    worker.drain()
    went = steps(ticket().pk)
    assert went[-2][0] == "triaging" and went[-2][1].startswith(f"Refund #{refund.pk}")
    assert "failed" in went[-2][1]
    assert ticket().status == T.ESCALATED


def test_refund_expired_undecided(fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    script_reply(fake_anthropic, "Hi Bob, we will get back to you.")
    with worker.committing():
        assert agents_sweep(now=timezone.now() + timedelta(hours=49)).calls_expired == 1
    worker.drain()
    went = steps(ticket().pk)
    assert went[-2][0] == "triaging"
    assert went[-2][1].startswith(f"Refund #{refund.pk} of $40.00 expired undecided")
    assert ticket().status == T.AWAITING_APPROVAL  # on the reply Claude then proposed


def test_reply_rejected_goes_back_to_work_and_claude_ending_escalates(fake_anthropic, worker):
    draft = proposed_reply(worker, fake_anthropic)
    assert ticket().status_reason == f"Reply #{draft.pk} waits for approval."
    fake_anthropic.push_text("OK.")
    with worker.committing():
        proposal_reject(tool_call_id=draft.tool_call_id, user=approver(), reason="Too curt")
    worker.drain()
    went = steps(ticket().pk)
    assert went[-2][0] == "triaging"
    assert went[-2][1].startswith(f"Reply #{draft.pk} was rejected by user")
    assert "Too curt" in went[-2][1]
    assert ticket().status == T.ESCALATED


def test_run_completed_after_the_reply_was_sent_stays_waiting_on_customer(fake_anthropic, worker):
    draft = proposed_reply(worker, fake_anthropic)
    reply_send(worker, fake_anthropic, ToolCall.objects.get(pk=draft.tool_call_id).tool_use_id)
    assert ticket().status == T.WAITING_ON_CUSTOMER


def test_run_failed_escalates(fake_anthropic, worker):
    fake_anthropic.push_error(400, "invalid_request_error", "bad request")
    bob_writes(worker)
    worker.drain()
    assert ticket().status == T.ESCALATED
    assert ticket().status_reason.startswith("Run #")


def test_run_escalated_by_claude_escalates(fake_anthropic, worker):
    fake_anthropic.push_tool_use(("escalate_to_human", {"reason": "Legal threat."}))
    bob_writes(worker)
    worker.drain()
    assert ticket().status == T.ESCALATED and ticket().status_reason.endswith("Legal threat.")


def test_run_completed_with_no_reply_escalates(fake_anthropic, worker):
    fake_anthropic.push_text("Nothing to do.")
    bob_writes(worker)
    worker.drain()
    assert ticket().status == T.ESCALATED
    assert "without a reply to the customer" in ticket().status_reason


def test_run_cancelled_while_a_refund_waits_hands_it_to_a_person(
    fake_anthropic, stripe_fake, worker
):
    refund = proposed_refund(worker, fake_anthropic)
    with worker.committing():
        run_cancel(
            run_id=run_of(refund).pk,
            user=user_create(perms=["agents.cancel_agentrun"]),
            reason="I will handle it",
        )
    worker.drain()
    assert ticket().status == T.ESCALATED
    assert "was cancelled" in ticket().status_reason
