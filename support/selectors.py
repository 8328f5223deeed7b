"""Reads of tickets and their mail, shared by the console, the agent's tools and the routes."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet

from agents.models import AgentRun
from support.models import Message, Refund, ReplyDraft, Ticket
from support.payments import Charge, Customer, PaymentError, gateway_get

logger = logging.getLogger(__name__)


def ticket_get(*, ticket_id: int) -> Ticket:
    return Ticket.objects.get(pk=ticket_id)


def ticket_list(*, status: str | None = None) -> QuerySet[Ticket]:
    tickets = Ticket.objects.annotate(message_count=Count("messages"))
    return tickets.filter(status=status) if status else tickets


def ticket_messages(*, ticket_id: int) -> QuerySet[Message]:
    """The thread, oldest first."""
    return Message.objects.filter(ticket_id=ticket_id).order_by("received_at", "id")


def message_get_by_message_id(*, message_id: str) -> Message | None:
    return Message.objects.filter(message_id=message_id).first()


def message_thread_parent(*, message_ids: Iterable[str]) -> Message | None:
    """The known message (in or out) that the first id, in order of preference, names."""
    ids = [i for i in message_ids if i]
    if not ids:
        return None
    known = {m.message_id: m for m in Message.objects.filter(message_id__in=ids)}
    return next((known[i] for i in ids if i in known), None)


# --- the console: refunds, replies and runs --------------------------------------------------


# A refund's state and amount are its tool call's: lists load the call and its proposal.
REFUND_RELATED = ("ticket", "tool_call__proposal")


def refund_get(*, refund_id: int) -> Refund:
    return Refund.objects.select_related(*REFUND_RELATED, "tool_call__run").get(pk=refund_id)


def refund_list_of_customer(*, customer_email: str, exclude_id: int | None = None):
    """The refunds Countersign proposed for this customer address, newest first."""
    refunds = (
        Refund.objects.filter(ticket__customer_email=customer_email)
        .select_related(*REFUND_RELATED)
        .defer("tool_call__result")
        .prefetch_related("tool_call__proposal__approvals")
    )
    if exclude_id is not None:
        refunds = refunds.exclude(pk=exclude_id)
    return refunds.order_by("-created_at", "-id")


@dataclass(frozen=True)
class CustomerPayments:
    """What the payments service says about a customer now, or why it could not say."""

    gateway: str
    customer: Customer | None = None
    charges: list[Charge] = field(default_factory=list)
    error: str = ""


def customer_payments_get(*, email: str) -> CustomerPayments:
    """Read the customer's charges and their refunds live; a failure is reported, never raised."""
    label = "payments service"
    try:
        gateway = gateway_get()
        label = gateway.label
        customer = gateway.customer_find(email)
        charges = gateway.payments_list(customer.id) if customer else []
    except PaymentError as error:
        return CustomerPayments(gateway=label, error=str(error))
    except Exception as error:  # a page that shows evidence must not fail with it
        logger.exception("payments could not be read for the console")
        return CustomerPayments(gateway=label, error=f"The payments could not be read: {error!r}")
    return CustomerPayments(gateway=label, customer=customer, charges=charges)


def ticket_runs(*, ticket_id: int) -> QuerySet[AgentRun]:
    # Imported here: the services import this module, and a cycle at import time would break.
    from support.services.tickets import SUBJECT_TYPE

    return AgentRun.objects.filter(subject_type=SUBJECT_TYPE, subject_id=str(ticket_id)).order_by(
        "created_at", "id"
    )


def ticket_drafts(*, ticket_id: int) -> QuerySet[ReplyDraft]:
    return (
        ReplyDraft.objects.filter(ticket_id=ticket_id)
        .select_related("sent_by", "message", "tool_call__proposal")
        .defer("message__raw", "tool_call__result")
        .prefetch_related("tool_call__proposal__approvals")
        .order_by("created_at", "id")
    )


def ticket_refunds(*, ticket_id: int) -> QuerySet[Refund]:
    return (
        Refund.objects.filter(ticket_id=ticket_id)
        .select_related(*REFUND_RELATED, "tool_call__decided_by")
        .prefetch_related("tool_call__proposal__approvals")
        .order_by("created_at", "id")
    )


def reply_thread_parent(*, ticket_id: int) -> Message | None:
    """The newest message a reply answers: the customer's, or one of ours that was sent."""
    return (
        Message.objects.filter(ticket_id=ticket_id, message_id__isnull=False)
        .filter(Q(direction=Message.Direction.IN) | Q(draft__status=ReplyDraft.Status.SENT))
        .defer("raw")
        .order_by("-received_at", "-id")
        .first()
    )
