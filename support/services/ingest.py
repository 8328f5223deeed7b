"""Mail in: the one service that the file command, the IMAP poll and the webhook all end in."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from agents.audit import audit_record
from support.mail import InvalidEmail, ParsedEmail, parse_email, raw_digest
from support.mail.trust import thread_sender_warning
from support.models import Message, RejectedEmail, Ticket
from support.selectors import message_get_by_message_id, message_thread_parent
from support.services.tickets import SUBJECT_TYPE, TRANSITIONS, ticket_reopen

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    CREATED = "created"
    JOINED = "joined"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    ticket_id: int | None = None
    message_pk: int | None = None
    message_id: str = ""
    auto_reply: str = ""  # why the mail counts as an auto-reply; "" when a person wrote it
    reopened: bool = False
    reason: str = ""  # why a rejected mail could not be read

    @property
    def ok(self) -> bool:
        """The mail is stored (now or before): the copy at the source may be let go."""
        return self.outcome != Outcome.REJECTED

    def describe(self) -> str:
        if self.outcome == Outcome.REJECTED:
            return f"error: {self.reason}"
        if self.outcome == Outcome.DUPLICATE:
            return f"duplicate: {self.message_id} is already in ticket {self.ticket_id}"
        text = f"{'new' if self.outcome == Outcome.CREATED else 'joined'} ticket {self.ticket_id}"
        if self.auto_reply:
            text += f" (auto-reply, {self.auto_reply}: no agent run)"
        elif self.reopened:
            text += " (reopened)"
        return text


def ticket_ingest_email(*, raw: bytes, source: str, batch: bool = False) -> IngestResult:
    """Store one raw RFC 5322 message: a new ticket, a reply in its thread, or a duplicate.

    A new ticket that a person wrote queues the support agent once the transaction commits
    (with `batch`, its first model call waits for a Message Batch: docs/BACKLOG.md).
    Mail that cannot be read is kept as a RejectedEmail and reported, never dropped.
    """
    if source not in Message.Source.values:
        raise ValueError(f"Unknown mail source {source!r}.")
    try:
        parsed = parse_email(raw)
    except InvalidEmail as error:
        return _reject(raw=raw, source=source, reason=str(error))
    except Exception as error:  # a parser bug must not lose the mail either
        logger.exception("mail could not be parsed")
        return _reject(
            raw=raw, source=source, reason=f"The message could not be parsed ({error!r})."
        )
    try:
        with transaction.atomic():
            return _store(parsed=parsed, source=source, batch=batch)
    except IntegrityError:
        # Another worker stored the same Message-ID between our check and our insert.
        existing = message_get_by_message_id(message_id=parsed.message_id)
        if existing is None:
            raise
        return _duplicate(existing)


def _store(*, parsed: ParsedEmail, source: str, batch: bool = False) -> IngestResult:
    if existing := message_get_by_message_id(message_id=parsed.message_id):
        return _duplicate(existing)
    parent = message_thread_parent(message_ids=parsed.thread_ids)
    warnings = list(parsed.trust_warnings)
    if parent is None:
        ticket = Ticket.objects.create(
            customer_email=parsed.from_email,
            customer_name=parsed.from_name,
            subject=parsed.subject[:998],
            spf_failed=parsed.spf_failed,
            dmarc_failed=parsed.dmarc_failed,
            hidden_content_dropped=parsed.hidden_content_dropped,
        )
    else:
        ticket = Ticket.objects.select_for_update().get(pk=parent.ticket_id)
        flags = {
            name: True
            for name in ("spf_failed", "dmarc_failed", "hidden_content_dropped")
            if getattr(parsed, name) and not getattr(ticket, name)
        }
        if flags:
            Ticket.objects.filter(pk=ticket.pk).update(**flags, updated_at=timezone.now())
        warnings += thread_sender_warning(
            sender=parsed.from_email,
            customer=ticket.customer_email,
            ticket_id=ticket.pk,
            aliases=ticket.aliases.values_list("email", flat=True),
        )
    message = Message.objects.create(
        ticket=ticket,
        direction=Message.Direction.IN,
        source=source,
        message_id=parsed.message_id,
        message_id_synthesized=parsed.message_id_synthesized,
        in_reply_to=parsed.in_reply_to,
        references=" ".join(parsed.references),
        from_email=parsed.from_email[:320],
        from_name=parsed.from_name,
        to=parsed.to,
        cc=parsed.cc,
        subject=parsed.subject[:998],
        text=parsed.text,
        html_converted=parsed.html_converted,
        hidden_content_dropped=parsed.hidden_content_dropped,
        hidden_content_summary=parsed.hidden_content_summary,
        attachments=parsed.attachments,
        is_auto_reply=parsed.is_auto_reply,
        auto_reply_reason=parsed.auto_reply_reason[:200],
        spf_failed=parsed.spf_failed,
        dmarc_failed=parsed.dmarc_failed,
        auth_summary=parsed.auth_summary,
        trust_warnings=warnings,
        defects=parsed.defects,
        raw=parsed.raw,
        sent_at=parsed.sent_at,
        received_at=timezone.now(),
    )
    audit_record(
        kind="ticket.created" if parent is None else "ticket.message_received",
        subject_type=SUBJECT_TYPE,
        subject_id=ticket.pk,
        message=_audit_message(
            parsed=parsed, ticket=ticket, new=parent is None, source=source, warnings=warnings
        ),
        data={
            "message": message.pk,
            "message_id": parsed.message_id,
            "source": source,
            "auto_reply": parsed.auto_reply_reason,
            "spf_failed": parsed.spf_failed,
            "dmarc_failed": parsed.dmarc_failed,
            "hidden_content_dropped": parsed.hidden_content_dropped,
            "trust_warnings": [w["code"] for w in warnings],
            "attachments": len(parsed.attachments),
        },
    )
    reopened = False
    if parent is None and not parsed.is_auto_reply:
        from support.agent import ticket_agent_start

        ticket_id = ticket.pk
        # robust: the ticket is stored whatever happens to the agent's start (it audits why).
        transaction.on_commit(lambda: ticket_agent_start(ticket_id, batch=batch), robust=True)
    elif not parsed.is_auto_reply and ticket.status in TRANSITIONS["reopen"][0]:
        ticket_reopen(ticket_id=ticket.pk, reason="The customer wrote again.")
        reopened = True
    return IngestResult(
        outcome=Outcome.CREATED if parent is None else Outcome.JOINED,
        ticket_id=ticket.pk,
        message_pk=message.pk,
        message_id=parsed.message_id,
        auto_reply=parsed.auto_reply_reason,
        reopened=reopened,
    )


def _duplicate(existing: Message) -> IngestResult:
    return IngestResult(
        outcome=Outcome.DUPLICATE,
        ticket_id=existing.ticket_id,
        message_pk=existing.pk,
        message_id=existing.message_id or "",
    )


def _audit_message(
    *, parsed: ParsedEmail, ticket: Ticket, new: bool, source: str, warnings: list[dict]
) -> str:
    text = (
        f"{'New ticket' if new else 'Reply in ticket'} #{ticket.pk} from {parsed.from_email} "
        f"by {source}: {parsed.subject[:120]!r}."
    )
    if parsed.is_auto_reply:
        text += f" Auto-reply ({parsed.auto_reply_reason})."
    if parsed.spf_failed or parsed.dmarc_failed:
        text += f" Sender authentication failed: {parsed.auth_summary}."
    if parsed.hidden_content_dropped:
        text += " Hidden HTML content was dropped."
    if warnings:
        text += f" Trust warnings: {', '.join(w['code'] for w in warnings)}."
    return text


def _reject(*, raw: bytes, source: str, reason: str) -> IngestResult:
    raw = bytes(raw)
    now = timezone.now()
    with transaction.atomic():
        rejected, created = RejectedEmail.objects.get_or_create(
            digest=raw_digest(raw),
            defaults={"source": source, "reason": reason, "raw": raw, "last_seen_at": now},
        )
        if created:
            audit_record(
                kind="email.rejected",
                subject_type="support.rejectedemail",
                subject_id=rejected.pk,
                message=f"Mail from {source} could not be read: {reason}",
                data={"source": source, "bytes": len(raw), "digest": rejected.digest},
            )
        else:
            RejectedEmail.objects.filter(pk=rejected.pk).update(
                attempts=F("attempts") + 1, last_seen_at=now
            )
    logger.warning("rejected mail from %s: %s", source, reason)
    return IngestResult(outcome=Outcome.REJECTED, reason=reason)
