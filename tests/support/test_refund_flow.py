"""The seed's example end to end: Bob's email → Claude's proposal → a person → one Stripe refund."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from agents.models import AgentRun, Proposal, ToolCall
from agents.services import (
    InvalidToolInput,
    InvalidTransition,
    ProposalBlocked,
    agents_sweep,
    proposal_approve,
)
from support.models import ReplyDraft, Ticket
from support.services.refunds import refund_approve, refund_reject
from tests.factories.users import user_create
from tests.support.refund_steps import proposed_refund, reply_send, run_of, script_reply

pytestmark = pytest.mark.django_db
P = Proposal.State


def approver(**kwargs):
    return user_create(perms=["support.approve_refund"], **kwargs)


def last_result(fake_anthropic, tool_use_id):
    for request in reversed(fake_anthropic.message_requests):
        for block in request.body["messages"][-1]["content"]:
            if block.get("type") == "tool_result" and block["tool_use_id"] == tool_use_id:
                return block
    raise AssertionError(f"no tool_result for {tool_use_id}")


def test_bobs_email_ends_in_exactly_one_4000_cent_refund_and_a_reply(
    fake_anthropic, stripe_fake, worker
):
    refund = proposed_refund(worker, fake_anthropic)
    run = run_of(refund)
    assert run.status == AgentRun.Status.AWAITING_APPROVAL
    assert refund.state == P.WAITING and refund.amount == 4000
    assert refund.charge_id == stripe_fake.bob_charge["id"]
    assert all(c["passed"] for c in refund.proposal.checks if c["hard"]), refund.proposal.checks
    assert Ticket.objects.get().status == Ticket.Status.AWAITING_APPROVAL
    assert stripe_fake.refund_posts == []  # nothing has moved yet

    reply_id = script_reply(fake_anthropic)
    with worker.committing():
        refund_approve(refund_id=refund.pk, user=approver())
    worker.drain()

    refund.refresh_from_db()
    assert (refund.state, refund.provider_status) == (P.DONE, "succeeded")
    assert refund.provider_refund_id.startswith("re_")
    [post] = stripe_fake.refund_posts
    assert post.headers["idempotency-key"] == str(refund.idempotency_key)
    [at_stripe] = stripe_fake.refunds_on(stripe_fake.bob_charge["id"])
    assert at_stripe["amount"] == 4000 and at_stripe["reason"] == "requested_by_customer"
    assert at_stripe["metadata"]["countersign_refund"] == str(refund.pk)
    assert at_stripe["metadata"]["ticket"] == str(refund.ticket_id)
    result = last_result(fake_anthropic, refund.tool_call.tool_use_id)
    assert result["is_error"] is False
    assert json.loads(result["content"])["refund"] == refund.provider_refund_id
    # Claude's reply is a proposal too: it waits for a person, then goes out once.
    run.refresh_from_db()
    assert run.status == AgentRun.Status.AWAITING_APPROVAL
    draft = ReplyDraft.objects.get()
    assert draft.state == P.WAITING and "$40.00" in draft.body
    assert draft.status == ReplyDraft.Status.DRAFT and not mail.outbox
    assert Ticket.objects.get().status == Ticket.Status.AWAITING_APPROVAL
    reply_send(worker, fake_anthropic, reply_id, then="The reply is sent.")
    draft.refresh_from_db()
    assert draft.state == P.DONE and draft.status == ReplyDraft.Status.SENT
    [sent] = mail.outbox
    assert sent.to == ["bob@test.com"] and "$40.00" in sent.body
    run.refresh_from_db()
    assert run.status == AgentRun.Status.COMPLETED
    assert Ticket.objects.get().status == Ticket.Status.WAITING_ON_CUSTOMER


def test_edit_the_amount_then_approve_refunds_the_edit_and_tells_claude(
    fake_anthropic, stripe_fake, worker
):
    refund = proposed_refund(worker, fake_anthropic)
    script_reply(fake_anthropic, "Hi Bob, we refunded $25.00.")
    with worker.committing():
        refund_approve(refund_id=refund.pk, user=approver(), amount=2500)
    worker.drain()
    refund.refresh_from_db()
    assert (refund.state, refund.amount, refund.amount_proposed) == (P.DONE, 2500, 4000)
    assert stripe_fake.refunds_on(stripe_fake.bob_charge["id"])[0]["amount"] == 2500
    result = last_result(fake_anthropic, refund.tool_call.tool_use_id)
    assert "edited your input" in result["content"] and '"amount": 2500' in result["content"]


def test_an_edit_above_what_is_refundable_is_refused(fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    with pytest.raises(InvalidToolInput, match="not more than is refundable: 4001 of 4000"):
        refund_approve(refund_id=refund.pk, user=approver(), amount=4001)
    refund.refresh_from_db()
    assert refund.state == P.WAITING and refund.amount == 4000


def test_reject_tells_claude_and_moves_no_money(fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    script_reply(fake_anthropic, "Hi Bob, a colleague will look at this.")
    with worker.committing():
        refund_reject(refund_id=refund.pk, user=approver(), reason="Order is past the window")
    worker.drain()
    refund.refresh_from_db()
    assert refund.state == P.REJECTED
    result = last_result(fake_anthropic, refund.tool_call.tool_use_id)
    assert result["is_error"] is True and "Order is past the window" in result["content"]
    assert stripe_fake.refund_posts == []


def test_the_same_approval_twice_refunds_once(fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    person = approver()
    script_reply(fake_anthropic)
    with worker.committing():
        refund_approve(refund_id=refund.pk, user=person)
    with pytest.raises(InvalidTransition):
        refund_approve(refund_id=refund.pk, user=person)
    worker.drain()
    assert len(stripe_fake.refunds_on(stripe_fake.bob_charge["id"])) == 1


def test_approval_needs_the_refund_permission_not_staff(fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    staff = user_create(perms=["support.view_refund"])
    with pytest.raises(PermissionDenied):
        refund_approve(refund_id=refund.pk, user=staff)
    with pytest.raises(PermissionDenied):
        refund_reject(refund_id=refund.pk, user=staff, reason="no")


def test_the_engines_approval_is_the_refund_approval_with_its_rules(
    fake_anthropic, stripe_fake, worker
):
    refund = proposed_refund(worker, fake_anthropic)
    edited = {**refund.tool_call.input_proposed, "amount": 4001}
    with pytest.raises(InvalidToolInput, match="not more than is refundable"):
        proposal_approve(tool_call_id=refund.tool_call_id, user=approver(), edited_input=edited)
    assert ToolCall.objects.get(pk=refund.tool_call_id).status == ToolCall.Status.AWAITING_APPROVAL
    script_reply(fake_anthropic)
    with worker.committing():
        proposal_approve(tool_call_id=refund.tool_call_id, user=approver())
    worker.drain()
    assert len(stripe_fake.refunds_on(refund.charge_id)) == 1


def test_above_the_threshold_two_different_people_must_approve(
    fake_anthropic, stripe_fake, worker, settings
):
    settings.SUPPORT_TWO_PERSON_THRESHOLD_CENTS = 3000
    refund = proposed_refund(worker, fake_anthropic)
    first, second = approver(), approver()
    with worker.committing():
        refund_approve(refund_id=refund.pk, user=first)
    refund.refresh_from_db()
    assert refund.state == P.SECOND_APPROVAL
    assert worker.drain() == [] and stripe_fake.refund_posts == []
    with pytest.raises(PermissionDenied, match="different person"):
        refund_approve(refund_id=refund.pk, user=first)
    script_reply(fake_anthropic)
    with worker.committing():
        refund_approve(refund_id=refund.pk, user=second)
    worker.drain()
    refund.refresh_from_db()
    assert (refund.state, refund.provider_status) == (P.DONE, "succeeded")
    approvals = refund.proposal.approvals.order_by("created_at")
    assert [a.user for a in approvals] == [first, second]
    assert refund.tool_call.decided_by == second
    assert len(stripe_fake.refund_posts) == 1


def test_an_undecided_refund_expires_and_claude_is_told(
    fake_anthropic, stripe_fake, worker, settings
):
    refund = proposed_refund(worker, fake_anthropic)
    script_reply(fake_anthropic, "Hi Bob, we will get back to you.")
    with worker.committing():
        assert agents_sweep(now=timezone.now() + timedelta(hours=49)).calls_expired == 1
    worker.drain()
    refund.refresh_from_db()
    assert refund.state == P.EXPIRED
    result = last_result(fake_anthropic, refund.tool_call.tool_use_id)
    assert result["is_error"] is True and "did not run" in result["content"]
    with pytest.raises(InvalidTransition):
        refund_approve(refund_id=refund.pk, user=approver())


def test_a_worker_killed_after_stripe_answered_refunds_exactly_once(
    fake_anthropic, stripe_fake, worker, monkeypatch
):
    refund = proposed_refund(worker, fake_anthropic)
    with worker.committing():
        refund_approve(refund_id=refund.pk, user=approver())

    def killed(**kwargs):
        raise KeyboardInterrupt("worker killed before the answer was saved")

    monkeypatch.setattr("support.services.refunds.refund_record", killed)
    with pytest.raises(KeyboardInterrupt):
        worker.drain()
    monkeypatch.undo()
    refund.refresh_from_db()
    assert refund.state == P.RUNNING and len(stripe_fake.refunds_on(refund.charge_id)) == 1

    script_reply(fake_anthropic)
    with worker.committing():
        agents_sweep(now=timezone.now() + timedelta(hours=1))
    worker.drain()
    refund.refresh_from_db()
    assert (refund.state, refund.provider_status) == (P.DONE, "succeeded") and refund.attempts == 2
    keys = {p.headers["idempotency-key"] for p in stripe_fake.refund_posts}
    assert keys == {str(refund.idempotency_key)} and len(stripe_fake.refund_posts) == 2
    assert len(stripe_fake.refunds_on(refund.charge_id)) == 1


def test_stripe_down_leaves_the_refund_submitting_until_it_answers(
    fake_anthropic, stripe_fake, worker
):
    refund = proposed_refund(worker, fake_anthropic)
    stripe_fake.fail_next("500", times=2, path="/v1/refunds")  # the SDK tries twice
    with worker.committing():
        refund_approve(refund_id=refund.pk, user=approver())
    worker.drain()
    refund.refresh_from_db()
    # Queued again after a delay, with the same key; never sent twice at once.
    assert refund.state == P.APPROVED
    call = ToolCall.objects.get(pk=refund.tool_call_id)
    assert call.status == ToolCall.Status.QUEUED and call.next_attempt_at is not None

    script_reply(fake_anthropic)
    with worker.committing():
        agents_sweep(now=timezone.now() + timedelta(hours=1))
    worker.drain()
    refund.refresh_from_db()
    assert (refund.state, refund.provider_status) == (P.DONE, "succeeded")
    assert len(stripe_fake.refunds_on(refund.charge_id)) == 1


def refunded_elsewhere(stripe_fake) -> None:
    charge = stripe_fake.bob_charge["id"]
    stripe_fake.refund_add(charge, 4000)
    stripe_fake.charges[charge]["amount_refunded"] = 4000
    stripe_fake.charges[charge]["refunded"] = True


def test_a_refund_whose_charge_changed_is_blocked_at_approval(fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    refunded_elsewhere(stripe_fake)  # days later, the charge is no longer refundable
    script_reply(fake_anthropic, "Hi Bob, we could not refund this just now.")
    with worker.committing(), pytest.raises(ProposalBlocked, match="4000 of 0 cents"):
        refund_approve(refund_id=refund.pk, user=approver())
    worker.drain()
    refund.refresh_from_db()
    assert refund.state == P.BLOCKED and refund.proposal.checked_in == "approval"
    assert stripe_fake.refund_posts == []
    result = last_result(fake_anthropic, refund.tool_call.tool_use_id)
    assert result["is_error"] is True and "4000 of 0 cents" in result["content"]


def test_a_refund_whose_charge_changed_after_approval_is_not_sent(
    fake_anthropic, stripe_fake, worker
):
    refund = proposed_refund(worker, fake_anthropic)
    with worker.committing():
        refund_approve(refund_id=refund.pk, user=approver())
    refunded_elsewhere(stripe_fake)  # between the approval and the worker
    script_reply(fake_anthropic, "Hi Bob, we could not refund this just now.")
    worker.drain()
    refund.refresh_from_db()
    assert refund.state == P.BLOCKED and refund.proposal.checked_in == "execution"
    assert stripe_fake.refund_posts == []
    result = last_result(fake_anthropic, refund.tool_call.tool_use_id)
    assert result["is_error"] is True and "right before it would have run" in result["content"]


def test_a_refund_stripe_refuses_fails_with_stripes_message(fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    script_reply(fake_anthropic, "Hi Bob, we could not refund this just now.")
    with worker.committing():
        refund_approve(refund_id=refund.pk, user=approver())
    stripe_fake.fail_next(
        "error",
        path="/v1/refunds",
        error={
            "type": "invalid_request_error",
            "code": "charge_already_refunded",
            "message": "Charge has already been refunded.",
        },
    )
    worker.drain()
    refund.refresh_from_db()
    assert refund.state == P.FAILED and refund.failure_message
    result = last_result(fake_anthropic, refund.tool_call.tool_use_id)
    assert result["is_error"] is True and refund.failure_message in result["content"]
    assert "already been refunded" in refund.failure_message


def test_escalation_ends_the_run_and_mails_staff(fake_anthropic, stripe_fake, worker, settings):
    from django.core import mail

    from tests.support.refund_steps import bob_writes

    settings.SUPPORT_ESCALATION_EMAILS = ["oncall@shop.example"]
    fake_anthropic.push_tool_use(
        ("escalate_to_human", {"reason": "The customer threatens a chargeback."})
    )
    bob_writes(worker, body="Refund me now or I call my bank and a lawyer.")
    worker.drain()
    ticket = Ticket.objects.get()
    assert ticket.status == Ticket.Status.ESCALATED
    assert ticket.status_reason.endswith("The customer threatens a chargeback.")
    [notice] = mail.outbox
    assert notice.to == ["oncall@shop.example"] and f"#{ticket.pk}" in notice.subject
    assert stripe_fake.refund_posts == []
