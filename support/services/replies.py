"""Replies to customers: Claude's drafts, approved like any proposal, and staff's own words.

A reply Claude drafts with reply_to_customer is a proposal (the engine owns its approval:
approve sends it as drafted, edit then approve sends the edit, reject discards it and Claude is
told why). Once approved, the tool's handler calls `reply_send_approved`, which delivers it
through the same claim-then-send path as staff's own replies.

draft ─► sending ─► sent
  │         └─► draft again, with the mail server's error, to be retried by a person
  └─► discarded

Sending takes two steps. The request marks the draft SENDING (compare-and-set) and queues a
task on commit. The task claims the draft by attaching the outgoing Message it is about to send
(compare-and-set: one delivery only), commits, sends through Django's email backend outside any
transaction, and records the outcome. A duplicated task finds the claim and sends nothing.
A mail server that cannot be reached (or refuses the mail with an answer) took nothing; one cut
off after the mail was handed over (SMTP has no idempotency key) is like a worker that dies
between the claim and the outcome, which leaves the draft SENDING with its message:
the mail may or may not have left, so it is never sent again automatically (the ticket page
says so); a person who knows it did not arrive writes the reply again.
"""

from __future__ import annotations

import logging
import re
import smtplib
from contextlib import suppress
from email.utils import formatdate
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.mail import EmailMessage, get_connection, make_msgid
from django.db import transaction
from django.utils import timezone

from agents.audit import audit_record
from agents.queue import enqueue_on_commit
from agents.registry import RetryLater, ToolError
from agents.services.errors import InvalidTransition
from support.mail import parse_email
from support.models import Message, ReplyDraft, Ticket
from support.selectors import reply_thread_parent
from support.services.tickets import SUBJECT_TYPE, TRANSITIONS, ticket_wait_on_customer

logger = logging.getLogger(__name__)

S = ReplyDraft.Status
PERMISSION = "support.send_reply"
MAX_BODY = 20_000
# A long thread keeps its first message and its newest ones (RFC 5322 section 3.6.4).
MAX_REFERENCES = 20
TASK = "support.tasks.reply_deliver_task"


def reply_can_send(*, user: Any) -> bool:
    return bool(user.is_active and user.has_perm(PERMISSION))


def _check_permission(user: Any) -> None:
    if not reply_can_send(user=user):
        raise PermissionDenied(
            "Sending replies to customers needs the permission support.send_reply."
        )


def _body(text: str | None) -> str:
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise InvalidTransition("A reply needs some text.")
    if len(text) > MAX_BODY:
        raise InvalidTransition(f"A reply may have at most {MAX_BODY} characters.")
    return text


def _audit(draft: ReplyDraft, kind: str, *, actor: Any = None, message: str = "", **data) -> None:
    audit_record(
        kind=f"reply.{kind}",
        actor=actor,
        subject_type=SUBJECT_TYPE,
        subject_id=draft.ticket_id,
        message=message,
        data={"draft": draft.pk, **data},
    )


def reply_send_approved(*, draft_id: int, body: str, user: Any) -> str:
    """Send an approved reply proposal once (the tool's handler); what happened, for Claude.

    Raises RetryLater when the mail server could not be reached (nothing left; the engine tries
    again later) and ToolError when it refused the mail or an earlier try was interrupted
    mid-send (it may have left: it is never sent twice).
    """
    text = _body(body)
    with transaction.atomic():
        ReplyDraft.objects.filter(pk=draft_id, status=S.DRAFT).update(
            status=S.SENDING, sent_body=text, sent_by=user, error=""
        )
    draft = ReplyDraft.objects.select_related("ticket").get(pk=draft_id)
    if draft.status == S.SENT:
        return f"The reply was sent to {draft.ticket.customer_email} as {draft.message.message_id}."
    if draft.status == S.SENDING and draft.message_id is not None:
        raise ToolError(INTERRUPTED)
    outcome = reply_deliver(draft_id=draft_id)
    draft.refresh_from_db()
    if draft.status == S.SENDING and draft.message_id is not None:
        raise ToolError(f"{INTERRUPTED} ({draft.error})")
    if draft.status == S.SENT:
        return (
            f"The reply was sent to {draft.ticket.customer_email} as "
            f"{draft.message.message_id}. A person approved it"
            + (" after editing it." if draft.sent_body != draft.body else ".")
        )
    if draft.error and _transient_mail_error(draft.error):
        raise RetryLater(f"The mail server could not be reached: {draft.error}")
    raise ToolError(f"The reply was not sent: {draft.error or outcome}")


INTERRUPTED = (
    "Sending this reply was interrupted after it was handed to the mail server; it may or may "
    "not have reached the customer, so it is not sent again. A person checks."
)
UNKNOWN = "The mail server was cut off mid-send; the reply may not have been sent."
# The server answered with a refusal: nothing was accepted, so a person may send it again.
SMTP_REFUSED = (
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPSenderRefused,
    smtplib.SMTPDataError,
    smtplib.SMTPNotSupportedError,
)

TRANSIENT_MAIL = (
    "ConnectionRefusedError",
    "ConnectionResetError",
    "TimeoutError",
    "SMTPServerDisconnected",
    "SMTPConnectError",
    "gaierror",
    "OSError",
)


def _transient_mail_error(error: str) -> bool:
    return error.split(":", 1)[0] in TRANSIENT_MAIL


def reply_send(
    *,
    user: Any,
    draft_id: int | None = None,
    ticket_id: int | None = None,
    body: str | None = None,
) -> ReplyDraft:
    """Queue a reply for sending: a draft (as is, or with `body` as edited) or staff's own words."""
    _check_permission(user)
    if (draft_id is None) == (ticket_id is None):
        raise TypeError("reply_send takes a draft_id or a ticket_id, not both.")
    with transaction.atomic():
        if draft_id is None:
            text = _body(body)
            ticket = Ticket.objects.get(pk=ticket_id)
            draft = ReplyDraft.objects.create(
                ticket=ticket, body=text, status=S.SENDING, sent_body=text, sent_by=user
            )
            edited = False
        else:
            draft = ReplyDraft.objects.get(pk=draft_id)
            if draft.tool_call_id is not None:
                raise InvalidTransition(
                    f"Reply #{draft.pk} is Claude's proposal: approve or reject it on its review "
                    "page."
                )
            text = _body(draft.body if body is None else body)
            changed = ReplyDraft.objects.filter(pk=draft_id, status=S.DRAFT).update(
                status=S.SENDING, sent_body=text, sent_by=user, error=""
            )
            if not changed:
                draft.refresh_from_db()
                raise InvalidTransition(
                    f"Reply #{draft.pk} is {draft.get_status_display().lower()}; "
                    "it cannot be sent again."
                )
            edited = text != draft.body
        _audit(
            draft,
            "send_requested",
            actor=user,
            message=f"Reply #{draft.pk} queued for sending to {draft.ticket.customer_email}"
            + (" (edited)." if edited else "."),
            edited=edited,
            written_by_staff=draft_id is None,
        )
        enqueue_on_commit(TASK, draft.pk)
    draft.refresh_from_db()
    return draft


def reply_requeue(*, draft_id: int, user: Any) -> ReplyDraft:
    """Queue a SENDING draft again that no worker has claimed yet (its task was lost)."""
    _check_permission(user)
    with transaction.atomic():
        draft = ReplyDraft.objects.get(pk=draft_id)
        if draft.status != S.SENDING or draft.message_id is not None:
            raise InvalidTransition(
                f"Reply #{draft.pk} is not waiting for a worker; queueing it again could send "
                "it twice."
            )
        _audit(draft, "requeued", actor=user, message=f"Reply #{draft.pk} queued again.")
        enqueue_on_commit(TASK, draft.pk)
    return draft


def reply_discard(*, draft_id: int, user: Any) -> ReplyDraft:
    """Set a draft aside unsent."""
    _check_permission(user)
    with transaction.atomic():
        draft = ReplyDraft.objects.get(pk=draft_id)
        if draft.tool_call_id is not None:
            raise InvalidTransition(
                f"Reply #{draft.pk} is Claude's proposal: reject it on its review page, with a "
                "reason for Claude."
            )
        if not ReplyDraft.objects.filter(pk=draft_id, status=S.DRAFT).update(status=S.DISCARDED):
            raise InvalidTransition(
                f"Reply #{draft.pk} is {draft.get_status_display().lower()}; "
                "only a draft can be discarded."
            )
        _audit(draft, "discarded", actor=user, message=f"Reply #{draft.pk} discarded unsent.")
    draft.refresh_from_db()
    return draft


def reply_deliver(*, draft_id: int) -> str:
    """Send a SENDING draft once, whatever happens around it; return what happened."""
    draft = ReplyDraft.objects.select_related("ticket").get(pk=draft_id)
    if draft.status != S.SENDING:
        return f"reply #{draft_id} is {draft.status}: nothing to send"
    if draft.message_id is not None:
        return f"reply #{draft_id} was claimed by an earlier delivery: not sent again"
    try:
        email = reply_email_build(draft=draft)
        raw = email.message().as_bytes(linesep="\r\n")
    except Exception as error:  # an address the mail library refuses, for one
        return _record_failure(draft, None, error)
    with transaction.atomic():
        message = _outgoing_store(draft=draft, raw=raw)
        claimed = ReplyDraft.objects.filter(
            pk=draft_id, status=S.SENDING, message__isnull=True
        ).update(message=message)
        if not claimed:
            transaction.set_rollback(True)
            return f"reply #{draft_id} was claimed by another delivery: not sent again"
        _audit(draft, "sending", message=f"Sending {message.message_id}.", message_id=message.pk)
    # Committed: this delivery alone may send it, and only from outside any transaction.
    connection = get_connection()
    try:
        connection.open()  # a server that cannot be reached or refuses us took nothing
    except Exception as error:
        return _record_failure(draft, message, error)
    try:
        email.connection = connection
        if email.send(fail_silently=False) != 1:
            raise RuntimeError("The email backend accepted no message.")
    except SMTP_REFUSED as error:  # the server answered no: nothing left
        return _record_failure(draft, message, error)
    except Exception as error:  # cut off mid-send: the mail may have left
        return _record_unknown(draft, message, error)
    finally:
        with suppress(Exception):
            connection.close()
    return _record_sent(draft, message)


def reply_email_build(*, draft: ReplyDraft) -> EmailMessage:
    """The email for a draft: threaded under the newest message of the ticket."""
    ticket = draft.ticket
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip("> ") or "countersign.localhost"
    headers = {
        "Message-ID": make_msgid(domain=domain),
        # Set here, not by Django at each .message(): the stored raw is exactly what is sent.
        "Date": formatdate(localtime=settings.EMAIL_USE_LOCALTIME),
    }
    parent = reply_thread_parent(ticket_id=ticket.pk)
    if parent is not None:
        refs = [r for r in parent.references.split() if r != parent.message_id]
        refs.append(parent.message_id)
        if len(refs) > MAX_REFERENCES:
            refs = refs[:1] + refs[-(MAX_REFERENCES - 1) :]
        headers["In-Reply-To"] = parent.message_id
        headers["References"] = " ".join(refs)
    return EmailMessage(
        subject=reply_subject(ticket.subject),
        body=draft.sent_body or draft.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[ticket.customer_email],
        headers=headers,
    )


def reply_subject(subject: str) -> str:
    subject = " ".join((subject or "").split())
    if not subject:
        return "Re: your message to support"
    return subject if re.match(r"(?i)re\s*:", subject) else f"Re: {subject}"


def _outgoing_store(*, draft: ReplyDraft, raw: bytes) -> Message:
    """Keep the outgoing mail as part of the thread, raw bytes and all, like incoming mail."""
    parsed = parse_email(raw)
    return Message.objects.create(
        ticket_id=draft.ticket_id,
        direction=Message.Direction.OUT,
        source=Message.Source.CONSOLE,
        message_id=parsed.message_id,
        in_reply_to=parsed.in_reply_to,
        references=" ".join(parsed.references),
        from_email=parsed.from_email[:320],
        from_name=parsed.from_name,
        to=parsed.to,
        cc=parsed.cc,
        subject=parsed.subject[:998],
        text=parsed.text,
        raw=parsed.raw,
        sent_at=parsed.sent_at,
        received_at=timezone.now(),
    )


def _record_sent(draft: ReplyDraft, message: Message) -> str:
    now = timezone.now()
    with transaction.atomic():
        if not ReplyDraft.objects.filter(pk=draft.pk, status=S.SENDING, message=message).update(
            status=S.SENT, sent_at=now
        ):
            return f"reply #{draft.pk} changed while it was sent"
        Message.objects.filter(pk=message.pk).update(received_at=now)
        _audit(
            draft,
            "sent",
            actor=draft.sent_by,
            message=f"Reply #{draft.pk} sent to {draft.ticket.customer_email} as "
            f"{message.message_id}.",
            message_id=message.message_id,
        )
        if draft.ticket.status in TRANSITIONS["wait_on_customer"][0]:
            ticket_wait_on_customer(
                ticket_id=draft.ticket_id,
                actor=draft.sent_by,
                reason=f"Reply #{draft.pk} was sent; waiting for the customer.",
            )
    return f"reply #{draft.pk} sent as {message.message_id}"


def _record_unknown(draft: ReplyDraft, message: Message, error: Exception) -> str:
    # Like a worker killed mid-send: the claim stays, so it is never sent again on its own.
    text = f"{type(error).__name__}: {error}"[:2000]
    logger.warning("reply #%s may not have been sent: %s", draft.pk, text)
    with transaction.atomic():
        if not ReplyDraft.objects.filter(pk=draft.pk, status=S.SENDING, message=message).update(
            error=f"{UNKNOWN} {text}"
        ):
            return f"reply #{draft.pk} changed while it was sent"
        _audit(draft, "send_unknown", message=f"Reply #{draft.pk}: {UNKNOWN} {text}")
    return f"reply #{draft.pk}: {UNKNOWN} {text}"


def _record_failure(draft: ReplyDraft, message: Message | None, error: Exception) -> str:
    # The mail server refused or could not be reached: nothing left, so a person may retry.
    text = f"{type(error).__name__}: {error}"[:2000]
    logger.warning("reply #%s was not sent: %s", draft.pk, text)
    with transaction.atomic():
        changed = ReplyDraft.objects.filter(pk=draft.pk, status=S.SENDING, message=message).update(
            status=S.DRAFT, message=None, error=text
        )
        if not changed:
            return f"reply #{draft.pk} changed while it was sent"
        if message is not None:
            Message.objects.filter(pk=message.pk).delete()  # it never left: not in the thread
        _audit(draft, "failed", message=f"Reply #{draft.pk} was not sent: {text}")
    return f"reply #{draft.pk} not sent: {text}"
