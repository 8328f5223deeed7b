"""Polling the support mailbox over IMAP (stdlib imaplib).

Each unseen message is fetched without marking it read (BODY.PEEK[]; a plain RFC822 fetch
would set \\Seen on the server at once), handed to the ingest service, and flagged \\Seen only
after that service has committed. Mail that fails stays unseen and is tried again at the
next poll; a duplicate delivery (two polls overlapping) is recognised by its Message-ID.
Call it outside any transaction, as the task does, so "committed" means committed.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import re
import ssl
import time
from dataclasses import dataclass, field

from django.conf import settings

from support.mail.errors import MailboxError
from support.models import Message
from support.services.ingest import IngestResult, Outcome, ticket_ingest_email

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30


@dataclass
class PollReport:
    skipped: bool = False
    results: list[tuple[str, IngestResult]] = field(default_factory=list)  # (uid, result)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (uid, reason)
    left: int = 0  # unseen messages left for the next poll (time budget spent)

    def summary(self) -> str:
        if self.skipped:
            return "IMAP polling is off (IMAP_HOST is empty)."
        counts = {outcome: 0 for outcome in Outcome}
        for _, result in self.results:
            counts[result.outcome] += 1
        text = (
            f"new {counts[Outcome.CREATED]}, joined {counts[Outcome.JOINED]}, "
            f"duplicate {counts[Outcome.DUPLICATE]}, failed {len(self.failed)}"
        )
        return text + (f", left for the next poll {self.left}" if self.left else "")


def imap_poll(*, max_seconds: float | None = None) -> PollReport:
    """Ingest every unseen message in the configured folder; mark each seen once stored."""
    if not settings.IMAP_HOST:
        return PollReport(skipped=True)
    budget = max_seconds if max_seconds is not None else settings.Q_CLUSTER["timeout"] / 2
    started = time.monotonic()
    report = PollReport()
    conn = _connect()
    try:
        _ok(conn.login(settings.IMAP_USER, settings.IMAP_PASSWORD), "LOGIN")
        _ok(conn.select(_mailbox(settings.IMAP_FOLDER)), f"SELECT {settings.IMAP_FOLDER}")
        data = _ok(conn.uid("SEARCH", "UNSEEN"), "UID SEARCH UNSEEN")
        uids = [uid.decode() for uid in (data[0] or b"").split()]
        for index, uid in enumerate(uids):
            if time.monotonic() - started > budget:
                report.left = len(uids) - index
                break
            _poll_one(conn, uid, report)
        conn.close()
    except (OSError, imaplib.IMAP4.error) as error:
        raise MailboxError(f"IMAP {settings.IMAP_HOST}:{settings.IMAP_PORT}: {error}") from error
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            conn.logout()
    return report


def _poll_one(conn: imaplib.IMAP4, uid: str, report: PollReport) -> None:
    data = _ok(conn.uid("FETCH", uid, "(BODY.PEEK[])"), f"UID FETCH {uid}")
    raw = next((item[1] for item in data if isinstance(item, tuple) and len(item) > 1), None)
    if raw is None:
        report.failed.append((uid, "the server returned no message body"))
        return
    try:
        result = ticket_ingest_email(raw=raw, source=Message.Source.IMAP)
    except Exception as error:  # leave it unseen; the next poll tries again
        logger.exception("IMAP uid %s: ingest failed", uid)
        report.failed.append((uid, repr(error)))
        return
    report.results.append((uid, result))
    if not result.ok:
        report.failed.append((uid, result.reason))
        return
    _ok(conn.uid("STORE", uid, "+FLAGS.SILENT", "(\\Seen)"), f"UID STORE {uid}")
    logger.info("IMAP uid %s: %s", uid, result.describe())


def _connect() -> imaplib.IMAP4:
    host, port = settings.IMAP_HOST, settings.IMAP_PORT
    try:
        if settings.IMAP_SSL:
            return imaplib.IMAP4_SSL(
                host, port, ssl_context=ssl.create_default_context(), timeout=TIMEOUT_SECONDS
            )
        return imaplib.IMAP4(host, port, timeout=TIMEOUT_SECONDS)
    except (OSError, imaplib.IMAP4.error) as error:
        raise MailboxError(f"Cannot connect to IMAP {host}:{port}: {error}") from error


def _ok(response: tuple[str, list], what: str) -> list:
    status, data = response
    if status != "OK":
        detail = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
        raise MailboxError(f"IMAP {what} failed: {status} {detail}".strip())
    return data


def _mailbox(name: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9._/-]+", name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
