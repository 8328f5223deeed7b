"""Reads of tickets and their mail, shared by the console, the agent's tools and the routes."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count, QuerySet

from support.models import Message, Ticket


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
