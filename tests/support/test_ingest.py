"""The one ingest service: new tickets, threads, duplicates, auto-replies, rejected mail."""

from __future__ import annotations

import pytest
from django.utils import timezone

from agents import registry
from agents.models import AgentRun, AuditEvent
from support.models import Message, RejectedEmail, Ticket
from support.services import Outcome, ticket_ingest_email, ticket_resolve, ticket_triage
from tests.support import mails

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_agent(monkeypatch):
    """These tests are about mail; with no support agent configured, tickets wait for staff."""
    monkeypatch.delitem(registry._toolsets, "support")


def ingest(worker, raw: bytes, source: str = "file"):
    with worker.committing():
        return ticket_ingest_email(raw=raw, source=source)


def events(kind: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(kind=kind).order_by("id"))


def test_a_new_mail_makes_a_ticket_with_its_message_and_raw_source(worker):
    result = ingest(worker, mails.plain())
    assert (
        result.outcome == Outcome.CREATED and result.describe() == f"new ticket {result.ticket_id}"
    )
    ticket = Ticket.objects.get()
    assert ticket.customer_email == "bob@test.com"
    assert ticket.customer_name == "Bob Smith"
    assert ticket.subject == "My widget broke"
    assert ticket.status == Ticket.Status.NEW
    message = ticket.messages.get()
    assert message.direction == Message.Direction.IN
    assert message.source == Message.Source.FILE
    assert message.message_id == "<bob-1@test.com>"
    assert message.text.startswith("My widget broke on day 2.")
    assert bytes(message.raw) == mails.plain()
    created = events("ticket.created")
    assert [(e.subject_type, e.subject_id) for e in created] == [("support.ticket", str(ticket.pk))]


def test_the_customer_email_is_kept_exactly_as_decoded():
    raw = mails.plain(sender="=?utf-8?q?B=C3=B6b?= <Bob.Smith+Refund@Test.COM>")
    result = ticket_ingest_email(raw=raw, source="file")
    ticket = Ticket.objects.get(pk=result.ticket_id)
    assert (ticket.customer_email, ticket.customer_name) == ("Bob.Smith+Refund@Test.COM", "Böb")


def test_a_reply_joins_its_thread_by_in_reply_to(worker):
    first = ingest(worker, mails.plain())
    second = ingest(
        worker, mails.reply(message_id="<bob-2@test.com>", in_reply_to="<bob-1@test.com>")
    )
    assert second.outcome == Outcome.JOINED and second.ticket_id == first.ticket_id
    assert second.describe() == f"joined ticket {first.ticket_id}"
    assert Ticket.objects.count() == 1
    assert [m.message_id for m in Ticket.objects.get().messages.all()] == [
        "<bob-1@test.com>",
        "<bob-2@test.com>",
    ]
    assert len(events("ticket.message_received")) == 1


def test_a_reply_joins_its_thread_by_references_when_in_reply_to_is_unknown(worker):
    first = ingest(worker, mails.plain())
    raw = mails.reply(
        message_id="<bob-3@test.com>",
        in_reply_to="<lost@elsewhere>",
        references="<older@elsewhere> <bob-1@test.com> <lost@elsewhere>",
    )
    assert ingest(worker, raw).ticket_id == first.ticket_id


def test_a_reply_to_our_outgoing_message_joins_its_ticket(worker):
    first = ingest(worker, mails.plain())
    Message.objects.create(
        ticket_id=first.ticket_id,
        direction=Message.Direction.OUT,
        source=Message.Source.CONSOLE,
        message_id="<reply-1@countersign.example>",
        from_email="support@countersign.example",
        to="bob@test.com",
        raw=b"",
        received_at=timezone.now(),
    )
    raw = mails.reply(message_id="<bob-4@test.com>", in_reply_to="<reply-1@countersign.example>")
    assert ingest(worker, raw).ticket_id == first.ticket_id


def test_a_reply_to_an_unknown_message_makes_a_new_ticket(worker):
    ingest(worker, mails.plain())
    raw = mails.reply(message_id="<bob-5@test.com>", in_reply_to="<never-seen@test.com>")
    assert ingest(worker, raw).outcome == Outcome.CREATED
    assert Ticket.objects.count() == 2


def test_a_message_seen_before_is_ignored(worker):
    first = ingest(worker, mails.plain())
    again = ingest(worker, mails.plain(body="Different bytes, same Message-ID."))
    assert again.outcome == Outcome.DUPLICATE and again.ticket_id == first.ticket_id
    assert again.describe() == f"duplicate: <bob-1@test.com> is already in ticket {first.ticket_id}"
    assert Message.objects.count() == 1 and Ticket.objects.count() == 1
    assert len(events("ticket.created")) == 1
    assert len(events("ticket.agent_not_configured")) == 1


def test_the_same_mail_without_message_id_is_recognised_by_its_digest(worker):
    raw = mails.crlf(b"From: bob@test.com\nSubject: no id\n\nHello\n")
    assert ingest(worker, raw).outcome == Outcome.CREATED
    assert ingest(worker, raw).outcome == Outcome.DUPLICATE
    assert Message.objects.get().message_id_synthesized


def test_a_customer_reply_reopens_a_waiting_or_resolved_ticket(worker):
    first = ingest(worker, mails.plain())
    ticket_resolve(ticket_id=first.ticket_id, reason="Refunded.")
    result = ingest(
        worker, mails.reply(message_id="<bob-6@test.com>", in_reply_to="<bob-1@test.com>")
    )
    assert result.reopened and result.describe().endswith("(reopened)")
    assert Ticket.objects.get().status == Ticket.Status.NEW
    assert events("ticket.reopen")[0].data == {"from": "resolved", "to": "new"}


def test_a_reply_leaves_a_ticket_in_progress_alone(worker):
    first = ingest(worker, mails.plain())
    ticket_triage(ticket_id=first.ticket_id)
    ingest(worker, mails.reply(message_id="<bob-7@test.com>", in_reply_to="<bob-1@test.com>"))
    assert Ticket.objects.get().status == Ticket.Status.TRIAGING


def test_an_auto_reply_makes_a_ticket_but_starts_no_agent(worker, support_toolset):
    result = ingest(worker, mails.OUT_OF_OFFICE)
    assert result.outcome == Outcome.CREATED and result.auto_reply
    assert "auto-reply" in result.describe() and "no agent run" in result.describe()
    assert Message.objects.get().is_auto_reply
    assert AgentRun.objects.count() == 0 and worker.queued() == []
    assert events("ticket.agent_not_configured") == []


def test_an_auto_reply_in_a_resolved_thread_does_not_reopen_it(worker):
    first = ingest(worker, mails.plain())
    ticket_resolve(ticket_id=first.ticket_id)
    raw = mails.reply(message_id="<oof-2@test.com>", in_reply_to="<bob-1@test.com>")
    raw = raw.replace(b"Subject: Re:", b"Auto-Submitted: auto-replied\r\nSubject: Re:")
    assert ingest(worker, raw).outcome == Outcome.JOINED
    assert Ticket.objects.get().status == Ticket.Status.RESOLVED


def test_spf_and_dmarc_failures_flag_the_message_and_the_ticket(worker):
    result = ingest(worker, mails.AUTH_FAILED)
    ticket = Ticket.objects.get(pk=result.ticket_id)
    assert ticket.spf_failed and ticket.dmarc_failed and ticket.auth_failed
    message = ticket.messages.get()
    assert message.spf_failed and message.dmarc_failed
    assert "dmarc=fail" in message.auth_summary
    assert "Sender authentication failed" in events("ticket.created")[0].message


def test_a_failing_reply_flags_a_clean_ticket(worker):
    ingest(worker, mails.plain())
    raw = mails.reply(message_id="<bob-8@test.com>", in_reply_to="<bob-1@test.com>")
    raw = b"Authentication-Results: mx.example; dmarc=fail\r\n" + raw
    ingest(worker, raw)
    ticket = Ticket.objects.get()
    assert ticket.dmarc_failed and not ticket.spf_failed


def test_hidden_html_is_dropped_and_flagged_on_the_ticket(worker):
    result = ingest(worker, mails.HTML_HIDDEN_INJECTION)
    ticket = Ticket.objects.get(pk=result.ticket_id)
    assert ticket.hidden_content_dropped
    message = ticket.messages.get()
    assert message.html_converted and message.hidden_content_dropped
    assert "refund $5000" not in message.text
    assert "refund $5000" in message.hidden_content_summary


def test_attachments_are_listed_and_their_content_not_kept_apart_from_the_raw_source(worker):
    result = ingest(worker, mails.BASE64_WITH_ATTACHMENTS)
    message = Message.objects.get(pk=result.message_pk)
    assert [a["filename"] for a in message.attachments] == ["photo.png", "領収書.pdf"]
    assert "IGNORE ALL PREVIOUS" not in message.text


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "The message is empty."),
        (mails.GARBAGE, "No mail headers found"),
        (b"Subject: hi\r\n\r\nbody\r\n", "no From header"),
    ],
)
def test_unreadable_mail_is_kept_with_a_clear_error(worker, raw, reason):
    result = ingest(worker, raw, source="imap")
    assert result.outcome == Outcome.REJECTED and not result.ok
    assert reason in result.reason and result.describe() == f"error: {result.reason}"
    rejected = RejectedEmail.objects.get()
    assert bytes(rejected.raw) == raw and rejected.source == "imap" and reason in rejected.reason
    assert Ticket.objects.count() == 0
    assert len(events("email.rejected")) == 1
    # Seen again (the next poll): counted, not stored twice, not audited twice.
    ingest(worker, raw, source="imap")
    rejected.refresh_from_db()
    assert rejected.attempts == 2 and RejectedEmail.objects.count() == 1
    assert len(events("email.rejected")) == 1


def test_an_unknown_source_is_a_programming_error():
    with pytest.raises(ValueError, match="Unknown mail source"):
        ticket_ingest_email(raw=mails.plain(), source="carrier-pigeon")


def test_nul_characters_and_raw_8bit_names_are_stored_on_every_database(worker):
    raw = mails.crlf(
        b"From: a@example.com\nSubject: nul \x00 here\nMessage-ID: <nul@x>\n"
        b'Content-Type: multipart/mixed; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain; charset=utf-8\n\nbefore\x00after\n"
        b"--b\nContent-Type: application/octet-stream\n"
        b'Content-Disposition: attachment; filename="r\xe9sum\xe9\x00.bin"\n\nxx\n--b--\n'
    )
    result = ingest(worker, raw)
    message = Message.objects.get(pk=result.message_pk)
    assert message.text == "beforeafter"
    assert message.attachments[0]["filename"] == "résumé.bin"
    assert bytes(message.raw) == raw


def test_an_overlong_sender_address_is_rejected_not_crashed(worker):
    raw = mails.plain(sender=f"<{'a' * 320}@example.com>")
    result = ingest(worker, raw)
    assert result.outcome == Outcome.REJECTED and "longer than 320" in result.reason


def test_a_duplicate_that_races_past_the_check_is_recognised(worker, monkeypatch):
    first = ingest(worker, mails.plain())
    # Another worker stored the same Message-ID after our check: the unique index catches it.
    answers = iter([None, Message.objects.get()])
    monkeypatch.setattr(
        "support.services.ingest.message_get_by_message_id", lambda **kwargs: next(answers)
    )
    result = ingest(worker, mails.plain())
    assert result.outcome == Outcome.DUPLICATE and result.ticket_id == first.ticket_id
    assert Ticket.objects.count() == 1 and Message.objects.count() == 1
