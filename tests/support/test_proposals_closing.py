"""Every way a waiting proposal closes closes the refund and Claude's reply with it.

Rejected, expired, its run cancelled, or its run ending while it waits: afterwards the refund
and the reply say so, the inbox no longer lists them, no money moves, no mail leaves, and
nobody can approve them any more.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from agents.models import AgentRun, Proposal, ToolCall
from agents.selectors import proposal_inbox
from agents.services import (
    InvalidTransition,
    agents_sweep,
    proposal_approve,
    proposal_reject,
    run_cancel,
)
from support.models import Refund, ReplyDraft, Ticket
from support.services.refunds import refund_approve, refund_reject
from tests.factories.users import user_create
from tests.support.refund_steps import bob_writes

pytestmark = pytest.mark.django_db
P = Proposal.State
R = Refund.Status
REFUND = {"customer_email": "bob@test.com", "amount": 4000, "reason": "widget broke on day 2"}
REPLY = {"body": "Hi Bob, your $40.00 refund is on its way."}
ESCALATE = {"reason": "The customer also asks about a legal matter."}


def refunder():
    return user_create(perms=["support.approve_refund"])


def sender():
    return user_create(perms=["support.send_reply"])


def propose_both(fake_anthropic, worker, *, escalate: bool = False) -> tuple[Refund, ReplyDraft]:
    """Claude proposes the refund and its reply in one turn (and, if asked, escalates in it)."""
    calls = [("process_refund", REFUND), ("reply_to_customer", REPLY)]
    if escalate:
        calls.append(("escalate_to_human", ESCALATE))
    refund_id, reply_id, *_ = fake_anthropic.push_tool_use(*calls)
    bob_writes(worker)
    worker.drain()
    refund = Refund.objects.get(tool_call__tool_use_id=refund_id)
    draft = ReplyDraft.objects.get(tool_call__tool_use_id=reply_id)
    return refund, draft


def assert_closed(refund: Refund, draft: ReplyDraft, state: str, stripe_fake) -> None:
    refund.refresh_from_db()
    draft.refresh_from_db()
    assert refund.state == state and refund.status == R(state) and not refund.is_open
    assert draft.state == state and not draft.is_open
    assert draft.status == ReplyDraft.Status.DRAFT and draft.message is None  # "Not sent"
    assert not proposal_inbox().exists()
    assert stripe_fake.refund_posts == [] and mail.outbox == []
    with pytest.raises(InvalidTransition):
        refund_approve(refund_id=refund.pk, user=refunder())
    with pytest.raises(InvalidTransition):
        proposal_approve(tool_call_id=draft.tool_call_id, user=sender())
    with pytest.raises(InvalidTransition):
        proposal_reject(tool_call_id=draft.tool_call_id, user=sender(), reason="late")
    assert stripe_fake.refund_posts == [] and mail.outbox == []


def test_both_wait_in_the_inbox_until_someone_decides(fake_anthropic, stripe_fake, worker):
    refund, draft = propose_both(fake_anthropic, worker)
    assert (refund.status, draft.state) == (R.PROPOSED, P.WAITING)
    inbox = [p.pk for p in proposal_inbox()]
    assert inbox == [refund.tool_call_id, draft.tool_call_id]
    assert AgentRun.objects.get().status == AgentRun.Status.AWAITING_APPROVAL


def test_rejected(client, fake_anthropic, stripe_fake, worker):
    refund, draft = propose_both(fake_anthropic, worker)
    with worker.committing():
        refund_reject(refund_id=refund.pk, user=refunder(), reason="Past the window.")
    assert [p.pk for p in proposal_inbox()] == [draft.tool_call_id]
    fake_anthropic.push_text("Understood; a person will follow up.")
    with worker.committing():
        proposal_reject(tool_call_id=draft.tool_call_id, user=sender(), reason="No refund.")
    worker.drain()
    assert_closed(refund, draft, P.REJECTED, stripe_fake)
    assert refund.tool_call.decision_reason == "Past the window."
    assert draft.tool_call.decision_reason == "No refund."
    # Claude was told both, and its run finished.
    assert AgentRun.objects.get().status == AgentRun.Status.COMPLETED
    client.force_login(user_create(perms=["support.approve_refund", "support.send_reply"]))
    for call_id in (refund.tool_call_id, draft.tool_call_id):
        page = client.get(reverse("admin:agents_toolcall_review", args=[call_id]))
        assert "nothing to decide" in page.content.decode()


def test_expired_each_after_its_own_time(fake_anthropic, stripe_fake, worker, settings):
    settings.SUPPORT_REFUND_EXPIRY_HOURS, settings.AGENTS_APPROVAL_TTL_HOURS = 48, 72
    refund, draft = propose_both(fake_anthropic, worker)
    with worker.committing():
        assert agents_sweep(now=timezone.now() + timedelta(hours=49)).calls_expired == 1
    refund.refresh_from_db()
    assert refund.status == R.EXPIRED
    assert [p.pk for p in proposal_inbox()] == [draft.tool_call_id]  # a reply waits longer
    fake_anthropic.push_text("Nobody decided; a person will follow up.")
    with worker.committing():
        assert agents_sweep(now=timezone.now() + timedelta(hours=73)).calls_expired == 1
    worker.drain()
    assert_closed(refund, draft, P.EXPIRED, stripe_fake)
    assert AgentRun.objects.get().status == AgentRun.Status.COMPLETED


def test_the_run_cancelled(fake_anthropic, stripe_fake, worker):
    refund, draft = propose_both(fake_anthropic, worker)
    run = AgentRun.objects.get()
    with worker.committing():
        run_cancel(
            run_id=run.pk,
            user=user_create(perms=["agents.cancel_agentrun"]),
            reason="A person takes this ticket.",
        )
    worker.drain()
    assert_closed(refund, draft, P.CANCELLED, stripe_fake)
    run.refresh_from_db()
    assert run.status == AgentRun.Status.CANCELLED
    for call_id in (refund.tool_call_id, draft.tool_call_id):
        call = ToolCall.objects.get(pk=call_id)
        assert call.status == ToolCall.Status.CANCELLED and "A person takes this" in call.result


def test_the_run_ending_while_they_wait(fake_anthropic, stripe_fake, worker):
    # Claude's same reply escalates next to its proposals: the run ends, and so do they.
    refund, draft = propose_both(fake_anthropic, worker, escalate=True)
    assert_closed(refund, draft, P.CANCELLED, stripe_fake)
    run = AgentRun.objects.get()
    assert run.status == AgentRun.Status.ESCALATED and run.status_reason == ESCALATE["reason"]
    assert Ticket.objects.get().status == Ticket.Status.ESCALATED


def test_a_reply_closed_before_anyone_saw_it_leaves_nothing_for_a_person(
    fake_anthropic, stripe_fake, worker
):
    # A reply with no text is blocked by its checks at once; Claude then ends its turn.
    [reply_id] = fake_anthropic.push_tool_use(("reply_to_customer", {"body": "   "}))
    fake_anthropic.push_text("I could not write a reply; a person will answer.")
    bob_writes(worker)
    worker.drain()
    draft = ReplyDraft.objects.get(tool_call__tool_use_id=reply_id)
    assert draft.state == P.BLOCKED and draft.status == ReplyDraft.Status.DRAFT
    assert AgentRun.objects.get().status == AgentRun.Status.COMPLETED
    assert not proposal_inbox().exists() and mail.outbox == []
    # The ticket is not left "awaiting approval" for a reply nobody can send.
    ticket = Ticket.objects.get()
    assert ticket.status != Ticket.Status.AWAITING_APPROVAL, ticket.status_reason
