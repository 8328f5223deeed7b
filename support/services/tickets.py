"""Ticket status transitions: each a compare-and-set with its audit row, in one transaction."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from agents.audit import audit_record
from agents.queue import enqueue_on_commit
from agents.services.errors import InvalidTransition
from support.models import Ticket

Status = Ticket.Status
SUBJECT_TYPE = "support.ticket"

# verb -> (statuses it starts from, status it ends in)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    # Being worked on: by the agent, or again once what waited on a person closed.
    "triage": (frozenset({Status.NEW, Status.AWAITING_APPROVAL}), Status.TRIAGING),
    "await_approval": (frozenset({Status.NEW, Status.TRIAGING}), Status.AWAITING_APPROVAL),
    # A reply went out; staff may answer a new or escalated ticket themselves.
    "wait_on_customer": (
        frozenset({Status.NEW, Status.TRIAGING, Status.AWAITING_APPROVAL, Status.ESCALATED}),
        Status.WAITING_ON_CUSTOMER,
    ),
    "resolve": (
        frozenset(
            {
                Status.NEW,
                Status.TRIAGING,
                Status.AWAITING_APPROVAL,
                Status.WAITING_ON_CUSTOMER,
                Status.ESCALATED,
            }
        ),
        Status.RESOLVED,
    ),
    "escalate": (
        frozenset(
            {Status.NEW, Status.TRIAGING, Status.AWAITING_APPROVAL, Status.WAITING_ON_CUSTOMER}
        ),
        Status.ESCALATED,
    ),
    # The customer wrote again: the ticket needs attention once more.
    "reopen": (frozenset({Status.WAITING_ON_CUSTOMER, Status.RESOLVED}), Status.NEW),
}


def ticket_triage(*, ticket_id: int, actor: Any = None, reason: str = "") -> Ticket:
    """Mark the ticket as being worked on (by the support agent or a person)."""
    return _ticket_transition(ticket_id=ticket_id, verb="triage", actor=actor, reason=reason)


def ticket_await_approval(*, ticket_id: int, actor: Any = None, reason: str = "") -> Ticket:
    """Mark the ticket as waiting for a person to approve a proposed action."""
    return _ticket_transition(
        ticket_id=ticket_id, verb="await_approval", actor=actor, reason=reason
    )


def ticket_wait_on_customer(*, ticket_id: int, actor: Any = None, reason: str = "") -> Ticket:
    """Mark the ticket as waiting for the customer's answer."""
    return _ticket_transition(
        ticket_id=ticket_id, verb="wait_on_customer", actor=actor, reason=reason
    )


def ticket_resolve(*, ticket_id: int, actor: Any = None, reason: str = "") -> Ticket:
    """Close the ticket as resolved."""
    return _ticket_transition(ticket_id=ticket_id, verb="resolve", actor=actor, reason=reason)


def ticket_escalate(*, ticket_id: int, actor: Any = None, reason: str = "") -> Ticket:
    """Hand the ticket to a person; staff are told by mail once it commits."""
    with transaction.atomic():
        ticket = _ticket_transition(
            ticket_id=ticket_id, verb="escalate", actor=actor, reason=reason
        )
        enqueue_on_commit("support.tasks.ticket_escalation_notify_task", ticket_id)
    return ticket


def ticket_escalation_notify(*, ticket_id: int) -> int:
    """Mail SUPPORT_ESCALATION_EMAILS that the ticket needs a person; returns mails sent."""
    recipients = settings.SUPPORT_ESCALATION_EMAILS
    ticket = Ticket.objects.get(pk=ticket_id)
    if not recipients or ticket.status != Status.ESCALATED:
        return 0
    sent = send_mail(
        subject=f"[Countersign] Ticket #{ticket.pk} needs a person: {ticket.subject}"[:200],
        message=(
            f"Ticket #{ticket.pk} from {ticket.customer_email} was escalated.\n\n"
            f"Why: {ticket.status_reason or '(no reason given)'}\n"
        ),
        from_email=None,
        recipient_list=recipients,
    )
    audit_record(
        kind="ticket.escalation_notified",
        subject_type=SUBJECT_TYPE,
        subject_id=ticket_id,
        message=f"Mailed {', '.join(recipients)}.",
    )
    return sent


def ticket_reopen(*, ticket_id: int, actor: Any = None, reason: str = "") -> Ticket:
    """Reopen a waiting or resolved ticket because the customer wrote again."""
    return _ticket_transition(ticket_id=ticket_id, verb="reopen", actor=actor, reason=reason)


def _ticket_transition(*, ticket_id: int, verb: str, actor: Any, reason: str) -> Ticket:
    sources, target = TRANSITIONS[verb]
    with transaction.atomic():
        ticket = Ticket.objects.get(pk=ticket_id)
        previous = ticket.status
        if previous not in sources:
            raise InvalidTransition(
                f"Ticket #{ticket_id} is {ticket.get_status_display().lower()}; "
                f"it cannot go to {Status(target).label.lower()} from there."
            )
        now = timezone.now()
        changed = Ticket.objects.filter(pk=ticket_id, status=previous).update(
            status=target, status_reason=reason, updated_at=now
        )
        if not changed:
            raise InvalidTransition(f"Ticket #{ticket_id} changed status meanwhile; try again.")
        audit_record(
            kind=f"ticket.{verb}",
            actor=actor,
            subject_type=SUBJECT_TYPE,
            subject_id=ticket_id,
            message=reason or f"Ticket #{ticket_id}: {previous} → {target}.",
            data={"from": previous, "to": target},
        )
        ticket.status, ticket.status_reason, ticket.updated_at = target, reason, now
    return ticket


# How a proposal's closing reads on the ticket, by its tool call's closing status.
CLOSED_WORDS = {
    "succeeded": "went through",
    "failed": "failed",
    "rejected": "was rejected",
    "blocked": "was blocked by its checks",
    "expired": "expired undecided",
}


def ticket_proposal_waits(*, ticket_id: int, what: str) -> Ticket | None:
    """A proposal on the ticket (a refund, a reply) waits for a person: say which."""
    try:
        return ticket_await_approval(ticket_id=ticket_id, reason=f"{what} waits for approval.")
    except InvalidTransition:
        return None


def ticket_proposal_closed(
    *, ticket_id: int, what: str, status: str, actor: Any = None, why: str = ""
) -> Ticket | None:
    """A proposal on the ticket closed: unless another still waits, the ticket is worked on."""
    from agents.models import ToolCall

    if status not in CLOSED_WORDS:
        return None  # cancelled with its run: the run's end moves the ticket
    waiting = ToolCall.objects.filter(
        status=ToolCall.Status.AWAITING_APPROVAL,
        run__subject_type=SUBJECT_TYPE,
        run__subject_id=str(ticket_id),
    ).exists()
    if waiting or not Ticket.objects.filter(pk=ticket_id, status=Status.AWAITING_APPROVAL).exists():
        return None
    by = f" by {actor.get_username()}" if actor is not None else ""
    reason = f"{what} {CLOSED_WORDS[status]}{by}" + (f": {why}" if why else ".")
    try:
        return ticket_triage(ticket_id=ticket_id, actor=actor, reason=reason[:2000])
    except InvalidTransition:
        return None


def ticket_status_follow_run(*, run: Any) -> Ticket | None:
    """Move the ticket along with its agent run: waiting on a person, or handed to one."""
    from agents.models import AgentRun
    from support.models import ReplyDraft

    if run.subject_type != SUBJECT_TYPE:
        return None
    ticket_id = int(run.subject_id)
    RunStatus = AgentRun.Status
    ticket = Ticket.objects.filter(pk=ticket_id).first()
    if ticket is None:
        return None
    try:
        if run.status == RunStatus.AWAITING_APPROVAL:
            if ticket.status != Status.TRIAGING:
                return None  # the proposal that waits said so already
            return ticket_await_approval(
                ticket_id=ticket_id, reason=f"Run #{run.pk} proposed an action for approval."
            )
        if run.status in (RunStatus.ESCALATED, RunStatus.FAILED):
            return ticket_escalate(
                ticket_id=ticket_id, reason=f"Run #{run.pk}: {run.status_reason}"
            )
        if not run.is_finished or ticket.status not in (
            Status.NEW,
            Status.TRIAGING,
            Status.AWAITING_APPROVAL,
        ):
            return None  # answered (waiting on the customer), resolved or escalated already
        # Staff's own unsent reply waits for a person to send it. Claude's replies are
        # proposals: the run's end closed any still open, so none of them waits any more.
        if ReplyDraft.objects.filter(
            ticket_id=ticket_id, status=ReplyDraft.Status.DRAFT, tool_call__isnull=True
        ).exists():
            if ticket.status == Status.AWAITING_APPROVAL:
                return None
            return ticket_await_approval(
                ticket_id=ticket_id, reason="A reply is drafted for a person to send."
            )
        # The run ended and nobody answered the customer: a person takes it from here.
        ended = "was cancelled" if run.status == RunStatus.CANCELLED else "ended"
        return ticket_escalate(
            ticket_id=ticket_id,
            reason=f"Run #{run.pk} {ended} without a reply to the customer"
            + (f": {run.status_reason}" if run.status_reason else "."),
        )
    except InvalidTransition:
        return None
