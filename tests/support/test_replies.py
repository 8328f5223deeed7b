"""Replies to customers: Claude's are proposals a person approves; staff's own are sent at once.

Either way a reply is sent once, threaded, stored with its raw bytes, and never twice.
"""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from agents.models import AgentRun, AuditEvent, Proposal, ToolCall
from agents.selectors import proposal_inbox
from agents.services import (
    InvalidTransition,
    agents_sweep,
    proposal_approve,
    proposal_reject,
)
from support.models import Message, ReplyDraft, Ticket
from support.services import ticket_ingest_email
from support.services.replies import (
    reply_deliver,
    reply_discard,
    reply_requeue,
    reply_send,
    reply_send_approved,
    reply_subject,
)
from tests.factories.users import user_create
from tests.support import mails
from tests.support.refund_steps import bob_writes, proposed_reply
from tests.support.refund_steps import reply_send as approve_reply

pytestmark = pytest.mark.django_db
D = ReplyDraft.Status
P = Proposal.State
CLAUDE = "Hi Bob, sorry about the widget. A colleague will help."


@pytest.fixture
def sender():
    return user_create(perms=["support.send_reply", "support.view_ticket"])


@pytest.fixture
def ticket(worker) -> Ticket:
    """Bob's ticket, being triaged; the agent's run is not under test here."""
    ticket = bob_writes(worker)
    worker.take()
    return ticket


@pytest.fixture
def unsent(ticket) -> ReplyDraft:
    """Staff's own reply that is not sent yet (as a refused send leaves it)."""
    return ReplyDraft.objects.create(ticket=ticket, body="Hi Bob, your $40.00 is on its way.")


def send(worker, **kwargs) -> ReplyDraft:
    with worker.committing():
        draft = reply_send(**kwargs)
    worker.drain()
    draft.refresh_from_db()
    return draft


def result_of(fake_anthropic, call: ToolCall) -> dict:
    for request in reversed(fake_anthropic.message_requests):
        for block in request.body["messages"][-1]["content"]:
            if block.get("type") == "tool_result" and block["tool_use_id"] == call.tool_use_id:
                return block
    raise AssertionError(f"no tool_result for {call.tool_use_id}")


def smtp_refuses(settings) -> None:
    """A real SMTP client against a closed port: the connection is refused, nothing leaves."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 5


# --- Claude's reply: a proposal -----------------------------------------------------------------


def test_claudes_reply_waits_for_a_person_then_is_sent_once_threaded(
    fake_anthropic, worker, settings
):
    draft = proposed_reply(worker, fake_anthropic)
    assert (draft.state, draft.status, draft.body) == (P.WAITING, D.DRAFT, CLAUDE)
    assert draft.get_status_display() == "Not sent" and mail.outbox == []
    assert [p.pk for p in proposal_inbox()] == [draft.tool_call_id]
    assert Ticket.objects.get().status == Ticket.Status.AWAITING_APPROVAL
    person = user_create(perms=["support.send_reply"])

    approve_reply(worker, fake_anthropic, draft.tool_call.tool_use_id, user=person)

    draft.refresh_from_db()
    assert (draft.state, draft.status) == (P.DONE, D.SENT)
    assert draft.sent_by == person and draft.sent_body == CLAUDE and draft.sent_at
    [sent] = mail.outbox
    assert sent.from_email == settings.DEFAULT_FROM_EMAIL and sent.to == ["bob@test.com"]
    assert sent.subject == "Re: Broken widget" and sent.body == CLAUDE
    assert sent.extra_headers["In-Reply-To"] == "<bob-1@test.com>"
    assert sent.extra_headers["References"] == "<bob-1@test.com>"
    message = draft.message
    assert message.direction == Message.Direction.OUT and message.source == "console"
    assert message.message_id == sent.extra_headers["Message-ID"]
    assert bytes(message.raw) == sent.message().as_bytes(linesep="\r\n")
    parsed = message_from_bytes(bytes(message.raw), policy=policy.default)
    assert parsed["In-Reply-To"] == "<bob-1@test.com>" and parsed["To"] == "bob@test.com"
    result = result_of(fake_anthropic, draft.tool_call)
    assert result["is_error"] is False and "sent to bob@test.com" in result["content"]
    assert AgentRun.objects.get().status == AgentRun.Status.COMPLETED
    assert Ticket.objects.get().status == Ticket.Status.WAITING_ON_CUSTOMER
    assert not proposal_inbox().exists()
    kinds = list(
        AuditEvent.objects.filter(kind__startswith="reply.")
        .order_by("id")
        .values_list("kind", flat=True)
    )
    assert kinds == ["reply.sending", "reply.sent"]


def test_an_edited_reply_sends_the_edit_and_keeps_claudes_words(fake_anthropic, worker):
    draft = proposed_reply(worker, fake_anthropic)
    fake_anthropic.push_text("Sent.")
    with worker.committing():
        proposal_approve(
            tool_call_id=draft.tool_call_id,
            user=user_create(perms=["support.send_reply"]),
            edited_input={"body": "Hi Bob, refunded: $40.00."},
        )
    worker.drain()
    draft.refresh_from_db()
    assert [m.body for m in mail.outbox] == ["Hi Bob, refunded: $40.00."]
    assert draft.body == CLAUDE and draft.sent_body == "Hi Bob, refunded: $40.00."
    assert draft.tool_call.input_executed == {"body": "Hi Bob, refunded: $40.00."}
    content = result_of(fake_anthropic, draft.tool_call)["content"]
    assert "A reviewer edited your input" in content and "after editing it" in content


def test_a_rejected_reply_is_not_sent_and_claude_is_told_why(fake_anthropic, worker):
    draft = proposed_reply(worker, fake_anthropic)
    fake_anthropic.push_text("Understood; a person will answer.")
    with worker.committing():
        proposal_reject(
            tool_call_id=draft.tool_call_id,
            user=user_create(perms=["support.send_reply"]),
            reason="Too vague; promise nothing.",
        )
    worker.drain()
    draft.refresh_from_db()
    assert (draft.state, draft.status) == (P.REJECTED, D.DRAFT) and draft.message is None
    result = result_of(fake_anthropic, draft.tool_call)
    assert result["is_error"] is True and "Too vague; promise nothing." in result["content"]
    assert mail.outbox == [] and not Message.objects.filter(direction="out").exists()


def test_claudes_reply_is_decided_on_its_review_page_not_sent_or_discarded_directly(
    fake_anthropic, worker, sender
):
    draft = proposed_reply(worker, fake_anthropic)
    with pytest.raises(InvalidTransition, match="review page"):
        reply_send(draft_id=draft.pk, user=sender)
    with pytest.raises(InvalidTransition, match="review page"):
        reply_send(draft_id=draft.pk, user=sender, body="Something else.")
    with pytest.raises(InvalidTransition, match="review page"):
        reply_discard(draft_id=draft.pk, user=sender)
    draft.refresh_from_db()
    assert (draft.state, draft.status) == (P.WAITING, D.DRAFT)
    assert not worker.queued() and mail.outbox == []


def test_approving_a_reply_needs_the_send_permission(fake_anthropic, worker):
    draft = proposed_reply(worker, fake_anthropic)
    refunder = user_create(perms=["support.approve_refund", "support.view_ticket"])
    with pytest.raises(PermissionDenied, match="support.send_reply"):
        proposal_approve(tool_call_id=draft.tool_call_id, user=refunder)
    with pytest.raises(PermissionDenied):
        proposal_reject(tool_call_id=draft.tool_call_id, user=refunder, reason="no")
    draft.refresh_from_db()
    assert draft.state == P.WAITING and mail.outbox == []


def test_a_mail_server_outage_is_tried_again_and_the_reply_goes_once(
    fake_anthropic, worker, settings
):
    draft = proposed_reply(worker, fake_anthropic)
    smtp_refuses(settings)
    with worker.committing():
        proposal_approve(
            tool_call_id=draft.tool_call_id, user=user_create(perms=["support.send_reply"])
        )
    worker.drain()
    draft.refresh_from_db()
    call = ToolCall.objects.get(pk=draft.tool_call_id)
    assert call.status == ToolCall.Status.QUEUED and call.next_attempt_at is not None
    assert draft.status == D.DRAFT and "ConnectionRefusedError" in draft.error
    assert draft.state == P.APPROVED and not Message.objects.filter(direction="out").exists()

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    fake_anthropic.push_text("Sent.")
    with worker.committing():
        agents_sweep(now=timezone.now() + timedelta(hours=1))
    worker.drain()
    draft.refresh_from_db()
    assert (draft.state, draft.status, draft.error) == (P.DONE, D.SENT, "")
    assert len(mail.outbox) == 1 and Message.objects.filter(direction="out").count() == 1


def test_the_approved_handler_run_twice_sends_once(fake_anthropic, worker):
    draft = proposed_reply(worker, fake_anthropic)
    person = user_create(perms=["support.send_reply"])
    assert "sent to bob@test.com" in reply_send_approved(
        draft_id=draft.pk, body=CLAUDE, user=person
    )
    again = reply_send_approved(draft_id=draft.pk, body=CLAUDE, user=person)
    assert "was sent to bob@test.com" in again and len(mail.outbox) == 1


# --- staff's own replies ------------------------------------------------------------------------


def test_staff_write_their_own_reply_and_it_is_sent_threaded(ticket, sender, worker, settings):
    draft = send(worker, ticket_id=ticket.pk, user=sender, body="  Hello Bob  ")
    assert draft.tool_call is None and draft.drafted_by_run is None
    assert (draft.status, draft.body, draft.sent_by) == (D.SENT, "Hello Bob", sender)
    [sent] = mail.outbox
    assert sent.from_email == settings.DEFAULT_FROM_EMAIL and sent.to == ["bob@test.com"]
    assert sent.subject == "Re: Broken widget" and sent.body == "Hello Bob"
    assert sent.extra_headers["In-Reply-To"] == "<bob-1@test.com>"
    message = draft.message
    assert message.message_id == sent.extra_headers["Message-ID"]
    assert message.message_id.endswith("@countersign.localhost>")
    assert bytes(message.raw) == sent.message().as_bytes(linesep="\r\n")
    assert message.text == "Hello Bob" and message.in_reply_to == "<bob-1@test.com>"
    assert Ticket.objects.get().status == Ticket.Status.WAITING_ON_CUSTOMER
    kinds = list(
        AuditEvent.objects.filter(kind__startswith="reply.")
        .order_by("id")
        .values_list("kind", flat=True)
    )
    assert kinds == ["reply.send_requested", "reply.sending", "reply.sent"]
    assert AuditEvent.objects.get(kind="reply.send_requested").data["written_by_staff"] is True


def test_the_customers_answer_joins_the_ticket_and_the_next_reply_threads_under_it(
    ticket, sender, worker
):
    ours = send(worker, ticket_id=ticket.pk, user=sender, body="Looking into it.").message
    answer = mails.reply(
        message_id="<bob-2@test.com>",
        in_reply_to=ours.message_id,
        references=f"<bob-1@test.com> {ours.message_id}",
        body="Thanks, got it!",
    )
    result = ticket_ingest_email(raw=answer, source="imap")
    assert result.ticket_id == ticket.pk and result.reopened
    send(worker, ticket_id=ticket.pk, user=sender, body="Glad to help.\r\nSupport")
    second = mail.outbox[-1]
    assert second.extra_headers["In-Reply-To"] == "<bob-2@test.com>"
    assert (
        second.extra_headers["References"] == f"<bob-1@test.com> {ours.message_id} <bob-2@test.com>"
    )
    assert second.subject == "Re: Broken widget" and second.body == "Glad to help.\nSupport"


def test_an_unsent_reply_is_sent_as_is_or_edited(unsent, sender, worker):
    draft = send(worker, draft_id=unsent.pk, user=sender, body="Hi Bob, refunded: $40.00.")
    assert mail.outbox[0].body == "Hi Bob, refunded: $40.00."
    assert draft.body == "Hi Bob, your $40.00 is on its way."
    assert draft.sent_body == "Hi Bob, refunded: $40.00."
    assert AuditEvent.objects.get(kind="reply.send_requested").data["edited"] is True


def test_a_duplicated_task_sends_once(ticket, sender, worker):
    with worker.committing():
        reply_send(ticket_id=ticket.pk, user=sender, body="Hello")
    [delivery] = worker.queued()
    worker.run(delivery)
    assert "nothing to send" in worker.run(delivery)
    assert len(mail.outbox) == 1


def test_two_deliveries_racing_send_once(ticket, sender, worker, monkeypatch):
    from support.services import replies

    build = replies.reply_email_build
    with worker.committing():
        draft = reply_send(ticket_id=ticket.pk, user=sender, body="Hello")

    def racing(**kwargs):
        # Another worker delivers the same task between this one's read and its claim.
        monkeypatch.setattr(replies, "reply_email_build", build)
        assert "sent as" in reply_deliver(draft_id=draft.pk)
        return build(**kwargs)

    monkeypatch.setattr(replies, "reply_email_build", racing)
    assert "claimed by another delivery" in reply_deliver(draft_id=draft.pk)
    assert len(mail.outbox) == 1 and Message.objects.filter(direction="out").count() == 1


def test_a_worker_killed_while_sending_never_sends_again(ticket, sender, worker, monkeypatch):
    with worker.committing():
        draft = reply_send(ticket_id=ticket.pk, user=sender, body="Hello")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("worker killed after the mail left")

    monkeypatch.setattr("support.services.replies._record_sent", killed)
    with pytest.raises(KeyboardInterrupt):
        worker.drain()
    monkeypatch.undo()
    assert len(mail.outbox) == 1
    draft.refresh_from_db()
    assert draft.status == D.SENDING and draft.message is not None
    assert "not sent again" in reply_deliver(draft_id=draft.pk)
    with pytest.raises(InvalidTransition, match="could send it twice"):
        reply_requeue(draft_id=draft.pk, user=sender)
    assert len(mail.outbox) == 1


def test_a_refused_send_records_the_error_and_can_be_retried(ticket, sender, worker, settings):
    smtp_refuses(settings)
    draft = send(worker, ticket_id=ticket.pk, user=sender, body="Hello")
    assert draft.status == D.DRAFT and "ConnectionRefusedError" in draft.error
    assert draft.message is None and not Message.objects.filter(direction="out").exists()
    assert Ticket.objects.get().status == Ticket.Status.TRIAGING
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    draft = send(worker, draft_id=draft.pk, user=sender)
    assert draft.status == D.SENT and draft.error == "" and len(mail.outbox) == 1


def test_a_lost_task_can_be_queued_again_safely(ticket, sender, worker):
    with worker.committing():
        draft = reply_send(ticket_id=ticket.pk, user=sender, body="Hello")
    worker.take()  # the broker lost it
    with worker.committing():
        reply_requeue(draft_id=draft.pk, user=sender)
    worker.drain()
    draft.refresh_from_db()
    assert draft.status == D.SENT and len(mail.outbox) == 1


def test_sending_needs_the_permission(unsent, worker):
    staff = user_create(perms=["support.view_ticket"])
    with pytest.raises(PermissionDenied):
        reply_send(draft_id=unsent.pk, user=staff)
    with pytest.raises(PermissionDenied):
        reply_send(ticket_id=unsent.ticket_id, user=staff, body="hi")
    with pytest.raises(PermissionDenied):
        reply_discard(draft_id=unsent.pk, user=staff)
    unsent.refresh_from_db()
    assert unsent.status == D.DRAFT and not worker.queued()


@pytest.mark.parametrize("status", [D.SENDING, D.SENT, D.DISCARDED])
def test_only_an_unsent_reply_can_be_sent_or_discarded(unsent, sender, worker, status):
    ReplyDraft.objects.filter(pk=unsent.pk).update(status=status)
    with pytest.raises(InvalidTransition):
        reply_send(draft_id=unsent.pk, user=sender)
    with pytest.raises(InvalidTransition):
        reply_discard(draft_id=unsent.pk, user=sender)
    assert ReplyDraft.objects.get(pk=unsent.pk).status == status and not worker.queued()


@pytest.mark.parametrize("status", [D.DRAFT, D.SENT, D.DISCARDED])
def test_only_an_unclaimed_sending_reply_can_be_queued_again(unsent, sender, worker, status):
    ReplyDraft.objects.filter(pk=unsent.pk).update(status=status)
    with pytest.raises(InvalidTransition):
        reply_requeue(draft_id=unsent.pk, user=sender)


def test_a_discarded_reply_is_not_sent(unsent, sender, worker):
    draft = reply_discard(draft_id=unsent.pk, user=sender)
    assert draft.status == D.DISCARDED
    assert "nothing to send" in reply_deliver(draft_id=unsent.pk)
    assert mail.outbox == []


def test_an_empty_reply_is_refused(unsent, sender):
    with pytest.raises(InvalidTransition, match="needs some text"):
        reply_send(draft_id=unsent.pk, user=sender, body=" \n ")
    with pytest.raises(InvalidTransition, match="needs some text"):
        reply_send(ticket_id=unsent.ticket_id, user=sender, body="")
    with pytest.raises(TypeError):
        reply_send(draft_id=unsent.pk, ticket_id=unsent.ticket_id, user=sender)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Broken widget", "Re: Broken widget"),
        ("Re: Broken widget", "Re: Broken widget"),
        ("RE:Broken", "RE:Broken"),
        ("", "Re: your message to support"),
        ("Two\n lines", "Re: Two lines"),
    ],
)
def test_reply_subjects(subject, expected):
    assert reply_subject(subject) == expected
