"""manage.py ingest_email: .eml and mbox files, a line per message, non-zero on failure."""

from __future__ import annotations

import mailbox
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from support.models import Message, RejectedEmail, Ticket
from tests.support import mails

pytestmark = pytest.mark.django_db


def run(*paths, worker) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    with worker.committing():
        call_command("ingest_email", *map(str, paths), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_eml_files(tmp_path, worker):
    first, second = tmp_path / "first.eml", tmp_path / "reply.eml"
    first.write_bytes(mails.plain())
    second.write_bytes(mails.reply(message_id="<bob-2@test.com>", in_reply_to="<bob-1@test.com>"))
    out, err = run(first, second, first, worker=worker)
    ticket = Ticket.objects.get()
    assert out.splitlines() == [
        f"{first}: new ticket {ticket.pk}",
        f"{second}: joined ticket {ticket.pk}",
        f"{first}: duplicate: <bob-1@test.com> is already in ticket {ticket.pk}",
        "3 messages read.",
    ]
    assert err == ""
    assert set(Message.objects.values_list("source", flat=True)) == {"file"}


def build_mbox(path, *raws: bytes) -> None:
    box = mailbox.mbox(path)
    for raw in raws:
        box.add(raw)
    box.flush()
    box.close()


@pytest.mark.parametrize("name", ["support.mbox", "Inbox"])  # by extension or by "From " line
def test_mbox_files(tmp_path, worker, name):
    path = tmp_path / name
    build_mbox(
        path,
        mails.plain(),
        mails.WINDOWS_1252_QP,
        mails.OUT_OF_OFFICE,
        mails.reply(message_id="<bob-2@test.com>", in_reply_to="<bob-1@test.com>"),
    )
    out, _ = run(path, worker=worker)
    bob, sean, oof = Ticket.objects.order_by("id")
    assert out.splitlines() == [
        f"{path}#1: new ticket {bob.pk}",
        f"{path}#2: new ticket {sean.pk}",
        f"{path}#3: new ticket {oof.pk} (auto-reply, Auto-Submitted: auto-replied: no agent run)",
        f"{path}#4: joined ticket {bob.pk}",
        "4 messages read.",
    ]
    assert sean.subject == "Refund – “broken” widget"
    assert bytes(bob.messages.first().raw) == mails.plain()  # no "From " line, no mangling


def test_failures_are_reported_and_exit_non_zero(tmp_path, worker):
    good, bad, empty = tmp_path / "good.eml", tmp_path / "bad.eml", tmp_path / "empty.mbox"
    good.write_bytes(mails.plain())
    bad.write_bytes(b"Subject: no sender\r\n\r\nhello\r\n")
    empty.write_bytes(b"")
    missing = tmp_path / "missing.eml"
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="3 of 4 messages failed"), worker.committing():
        call_command("ingest_email", good, bad, empty, missing, stdout=out, stderr=err)
    assert out.getvalue().splitlines() == [f"{good}: new ticket {Ticket.objects.get().pk}"]
    assert err.getvalue().splitlines() == [
        f"{bad}: error: The message has no From header.",
        f"{empty}: error: the mbox file holds no messages",
        f"{missing}: error: cannot read the file (No such file or directory)",
    ]
    assert RejectedEmail.objects.get().source == "file"
