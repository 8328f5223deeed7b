"""The IMAP poll against a local IMAP4rev1 server: the real imaplib, never a mock."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from support.mail import MailboxError
from support.mail.imap import imap_poll
from support.models import Message, RejectedEmail, Ticket
from support.services import ingest
from support.tasks import imap_poll_task
from tests.support import mails

pytestmark = pytest.mark.django_db


def poll(worker, **kwargs):
    with worker.committing():
        return imap_poll(**kwargs)


def test_unseen_mail_is_ingested_and_marked_seen(fake_imap, worker):
    first = fake_imap.add(mails.plain())
    old = fake_imap.add(mails.WINDOWS_1252_QP, seen=True)
    reply = fake_imap.add(
        mails.reply(message_id="<bob-2@test.com>", in_reply_to="<bob-1@test.com>")
    )
    report = poll(worker)
    assert report.summary() == "new 1, joined 1, duplicate 0, failed 0"
    assert fake_imap.seen(first) and fake_imap.seen(reply) and fake_imap.seen(old)
    ticket = Ticket.objects.get()
    assert ticket.messages.count() == 2
    assert set(Message.objects.values_list("source", flat=True)) == {"imap"}
    # Fetched with BODY.PEEK[] (no implicit \Seen); flagged only after the ingest.
    fetches = [c for c in fake_imap.commands if c.startswith("UID FETCH")]
    assert fetches == [f"UID FETCH {first} (BODY.PEEK[])", f"UID FETCH {reply} (BODY.PEEK[])"]
    assert fake_imap.commands.index(f"UID STORE {first} +FLAGS.SILENT (\\Seen)") > (
        fake_imap.commands.index(fetches[0])
    )
    assert fake_imap.commands[-1] == "LOGOUT"


def test_mail_that_fails_to_ingest_stays_unseen(fake_imap, worker):
    good = fake_imap.add(mails.plain())
    garbage = fake_imap.add(mails.GARBAGE)
    no_sender = fake_imap.add(b"Subject: hi\r\n\r\nbody\r\n")
    report = poll(worker)
    assert report.summary() == "new 1, joined 0, duplicate 0, failed 2"
    assert fake_imap.seen(good)
    assert not fake_imap.seen(garbage) and not fake_imap.seen(no_sender)
    assert RejectedEmail.objects.count() == 2
    # The next poll tries them again; nothing is stored twice.
    assert poll(worker).summary() == "new 0, joined 0, duplicate 0, failed 2"
    assert not fake_imap.seen(garbage)
    assert set(RejectedEmail.objects.values_list("attempts", flat=True)) == {2}


def test_an_ingest_that_crashes_leaves_the_mail_unseen(fake_imap, worker, monkeypatch):
    uid = fake_imap.add(mails.plain())

    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("support.mail.imap.ticket_ingest_email", broken)
    report = poll(worker)
    assert report.failed == [(str(uid), "RuntimeError('database went away')")]
    assert not fake_imap.seen(uid)
    monkeypatch.setattr("support.mail.imap.ticket_ingest_email", ingest.ticket_ingest_email)
    assert poll(worker).summary() == "new 1, joined 0, duplicate 0, failed 0"
    assert fake_imap.seen(uid)


def test_a_message_stored_before_but_still_unseen_is_marked_seen(fake_imap, worker):
    with worker.committing():
        ingest.ticket_ingest_email(raw=mails.plain(), source="file")
    uid = fake_imap.add(mails.plain())
    assert poll(worker).summary() == "new 0, joined 0, duplicate 1, failed 0"
    assert fake_imap.seen(uid)


def test_the_time_budget_leaves_the_rest_for_the_next_poll(fake_imap, worker):
    uids = [fake_imap.add(mails.plain(message_id=f"<m{i}@test.com>")) for i in range(3)]
    report = poll(worker, max_seconds=0)
    assert report.left == 3 and "left for the next poll 3" in report.summary()
    assert not any(fake_imap.seen(uid) for uid in uids)


def test_a_folder_with_a_space_in_its_name(fake_imap, worker, settings):
    fake_imap.folders["Support Desk"] = []
    fake_imap.add(mails.plain(), folder="Support Desk")
    settings.IMAP_FOLDER = "Support Desk"
    assert poll(worker).summary() == "new 1, joined 0, duplicate 0, failed 0"


def test_wrong_credentials_raise_a_clear_error(fake_imap, settings):
    fake_imap.add(mails.plain())
    settings.IMAP_PASSWORD = "wrong"
    with pytest.raises(MailboxError, match="AUTHENTICATIONFAILED"):
        imap_poll()
    assert not Ticket.objects.exists()


def test_a_missing_folder_raises_a_clear_error(fake_imap, settings):
    settings.IMAP_FOLDER = "Nope"
    with pytest.raises(MailboxError, match="SELECT Nope failed: NO"):
        imap_poll()


def test_an_unreachable_server_raises_a_clear_error(settings):
    settings.IMAP_HOST, settings.IMAP_PORT, settings.IMAP_SSL = "127.0.0.1", 9, False
    with pytest.raises(MailboxError, match="Cannot connect to IMAP 127.0.0.1:9"):
        imap_poll()


def test_without_a_host_the_task_does_nothing(settings):
    settings.IMAP_HOST = ""
    assert imap_poll_task() == "IMAP polling is off (IMAP_HOST is empty)."


def test_the_task_reports_what_it_did(fake_imap):
    fake_imap.add(mails.plain())
    assert imap_poll_task() == "new 1, joined 0, duplicate 0, failed 0"


def test_the_poll_is_scheduled_every_imap_poll_minutes(settings):
    settings.IMAP_POLL_MINUTES = 7
    call_command("setup_schedules", stdout=None)
    schedule = Schedule.objects.get(name="support: poll the IMAP mailbox")
    assert (schedule.func, schedule.minutes) == ("support.tasks.imap_poll_task", 7)


def test_imap_ssl_setting_speaks_tls(fake_imap, settings):
    # The fake speaks plain IMAP, so a TLS handshake with it fails: proof that TLS was tried.
    settings.IMAP_SSL = True
    with pytest.raises(MailboxError, match=f"Cannot connect to IMAP 127.0.0.1:{fake_imap.port}"):
        imap_poll()
