"""Sending replies: once, threaded, stored with their raw bytes, and never twice."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied

from agents.models import AuditEvent
from agents.services import InvalidTransition
from support.models import Message, ReplyDraft, Ticket
from support.services import ticket_ingest_email
from support.services.replies import (
    reply_deliver,
    reply_discard,
    reply_requeue,
    reply_send,
    reply_subject,
)
from tests.factories.users import user_create
from tests.support import mails
from tests.support.refund_steps import bob_writes

pytestmark = pytest.mark.django_db
D = ReplyDraft.Status


@pytest.fixture
def sender():
    return user_create(perms=["support.send_reply", "support.view_ticket"])


@pytest.fixture
def draft(worker) -> ReplyDraft:
    """Bob's ticket (being triaged) with a reply Claude drafted."""
    ticket = bob_writes(worker)
    worker.take()  # the agent's run is not under test here
    return ReplyDraft.objects.create(ticket=ticket, body="Hi Bob, your $40.00 is on its way.")


def send(worker, **kwargs) -> ReplyDraft:
    with worker.committing():
        draft = reply_send(**kwargs)
    worker.drain()
    draft.refresh_from_db()
    return draft


def test_a_draft_is_sent_threaded_and_kept_in_the_thread(draft, sender, worker, settings):
    draft = send(worker, draft_id=draft.pk, user=sender)
    assert draft.status == D.SENT and draft.sent_by == sender and draft.sent_at
    [sent] = mail.outbox
    assert sent.from_email == settings.DEFAULT_FROM_EMAIL and sent.to == ["bob@test.com"]
    assert sent.subject == "Re: Broken widget"
    assert sent.body == "Hi Bob, your $40.00 is on its way."
    assert sent.extra_headers["In-Reply-To"] == "<bob-1@test.com>"
    assert sent.extra_headers["References"] == "<bob-1@test.com>"
    message = draft.message
    assert message.direction == Message.Direction.OUT and message.source == "console"
    assert message.message_id == sent.extra_headers["Message-ID"]
    assert message.message_id.endswith("@countersign.localhost>")
    assert bytes(message.raw) == sent.message().as_bytes(linesep="\r\n")
    parsed = message_from_bytes(bytes(message.raw), policy=policy.default)
    assert parsed["In-Reply-To"] == "<bob-1@test.com>" and parsed["To"] == "bob@test.com"
    assert message.text == draft.body and message.in_reply_to == "<bob-1@test.com>"
    ticket = Ticket.objects.get()
    assert ticket.status == Ticket.Status.WAITING_ON_CUSTOMER
    kinds = list(
        AuditEvent.objects.filter(kind__startswith="reply.")
        .order_by("id")
        .values_list("kind", flat=True)
    )
    assert kinds == ["reply.send_requested", "reply.sending", "reply.sent"]


def test_the_customers_answer_joins_the_ticket_and_the_next_reply_threads_under_it(
    draft, sender, worker
):
    ours = send(worker, draft_id=draft.pk, user=sender).message
    answer = mails.reply(
        message_id="<bob-2@test.com>",
        in_reply_to=ours.message_id,
        references=f"<bob-1@test.com> {ours.message_id}",
        body="Thanks, got it!",
    )
    result = ticket_ingest_email(raw=answer, source="imap")
    assert result.ticket_id == draft.ticket_id and result.reopened
    send(worker, ticket_id=draft.ticket_id, user=sender, body="Glad to help.\r\nSupport")
    second = mail.outbox[-1]
    assert second.extra_headers["In-Reply-To"] == "<bob-2@test.com>"
    assert (
        second.extra_headers["References"] == f"<bob-1@test.com> {ours.message_id} <bob-2@test.com>"
    )
    assert second.subject == "Re: Broken widget" and second.body == "Glad to help.\nSupport"


def test_an_edited_draft_sends_the_edit_and_keeps_claudes_words(draft, sender, worker):
    draft = send(worker, draft_id=draft.pk, user=sender, body="Hi Bob, refunded: $40.00.")
    assert mail.outbox[0].body == "Hi Bob, refunded: $40.00."
    assert draft.body == "Hi Bob, your $40.00 is on its way."
    assert draft.sent_body == "Hi Bob, refunded: $40.00."
    assert AuditEvent.objects.get(kind="reply.send_requested").data["edited"] is True


def test_a_duplicated_task_sends_once(draft, sender, worker):
    with worker.committing():
        reply_send(draft_id=draft.pk, user=sender)
    [delivery] = worker.queued()
    worker.run(delivery)
    assert "nothing to send" in worker.run(delivery)
    assert len(mail.outbox) == 1


def test_two_deliveries_racing_send_once(draft, sender, worker, monkeypatch):
    from support.services import replies

    build = replies.reply_email_build
    with worker.committing():
        reply_send(draft_id=draft.pk, user=sender)

    def racing(**kwargs):
        # Another worker delivers the same task between this one's read and its claim.
        monkeypatch.setattr(replies, "reply_email_build", build)
        assert "sent as" in reply_deliver(draft_id=draft.pk)
        return build(**kwargs)

    monkeypatch.setattr(replies, "reply_email_build", racing)
    assert "claimed by another delivery" in reply_deliver(draft_id=draft.pk)
    assert len(mail.outbox) == 1 and Message.objects.filter(direction="out").count() == 1


def test_a_worker_killed_while_sending_never_sends_again(draft, sender, worker, monkeypatch):
    with worker.committing():
        reply_send(draft_id=draft.pk, user=sender)

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


def test_a_refused_send_records_the_error_and_can_be_retried(draft, sender, worker, settings):
    # A real SMTP client against a closed port: the connection is refused, nothing leaves.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 5
    draft = send(worker, draft_id=draft.pk, user=sender)
    assert draft.status == D.DRAFT and "ConnectionRefusedError" in draft.error
    assert draft.message is None and not Message.objects.filter(direction="out").exists()
    assert Ticket.objects.get().status == Ticket.Status.TRIAGING
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    draft = send(worker, draft_id=draft.pk, user=sender)
    assert draft.status == D.SENT and draft.error == "" and len(mail.outbox) == 1


def test_a_lost_task_can_be_queued_again_safely(draft, sender, worker):
    with worker.committing():
        reply_send(draft_id=draft.pk, user=sender)
    worker.take()  # the broker lost it
    with worker.committing():
        reply_requeue(draft_id=draft.pk, user=sender)
    worker.drain()
    draft.refresh_from_db()
    assert draft.status == D.SENT and len(mail.outbox) == 1


def test_staff_write_their_own_reply(worker, sender):
    ticket = bob_writes(worker)
    worker.take()
    draft = send(worker, ticket_id=ticket.pk, user=sender, body="  Hello Bob  ")
    assert draft.drafted_by_run is None and draft.body == "Hello Bob" and draft.status == D.SENT
    assert mail.outbox[0].body == "Hello Bob"


def test_sending_needs_the_permission(draft, worker):
    staff = user_create(perms=["support.view_ticket"])
    with pytest.raises(PermissionDenied):
        reply_send(draft_id=draft.pk, user=staff)
    with pytest.raises(PermissionDenied):
        reply_send(ticket_id=draft.ticket_id, user=staff, body="hi")
    with pytest.raises(PermissionDenied):
        reply_discard(draft_id=draft.pk, user=staff)
    draft.refresh_from_db()
    assert draft.status == D.DRAFT and not worker.queued()


@pytest.mark.parametrize("status", [D.SENDING, D.SENT, D.DISCARDED])
def test_only_a_draft_can_be_sent_or_discarded(draft, sender, worker, status):
    ReplyDraft.objects.filter(pk=draft.pk).update(status=status)
    with pytest.raises(InvalidTransition):
        reply_send(draft_id=draft.pk, user=sender)
    with pytest.raises(InvalidTransition):
        reply_discard(draft_id=draft.pk, user=sender)
    assert ReplyDraft.objects.get(pk=draft.pk).status == status and not worker.queued()


@pytest.mark.parametrize("status", [D.DRAFT, D.SENT, D.DISCARDED])
def test_only_an_unclaimed_sending_draft_can_be_queued_again(draft, sender, worker, status):
    ReplyDraft.objects.filter(pk=draft.pk).update(status=status)
    with pytest.raises(InvalidTransition):
        reply_requeue(draft_id=draft.pk, user=sender)


def test_a_discarded_draft_is_not_sent(draft, sender, worker):
    draft = reply_discard(draft_id=draft.pk, user=sender)
    assert draft.status == D.DISCARDED
    assert "nothing to send" in reply_deliver(draft_id=draft.pk)
    assert mail.outbox == []


def test_an_empty_reply_is_refused(draft, sender):
    with pytest.raises(InvalidTransition, match="needs some text"):
        reply_send(draft_id=draft.pk, user=sender, body=" \n ")
    with pytest.raises(InvalidTransition, match="needs some text"):
        reply_send(ticket_id=draft.ticket_id, user=sender, body="")
    with pytest.raises(TypeError):
        reply_send(draft_id=draft.pk, ticket_id=draft.ticket_id, user=sender)


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
