"""Staff confirm that another address belongs to a ticket's customer."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

from agents.audit import audit_record
from support.models import CustomerAlias
from support.services.tickets import SUBJECT_TYPE


def customer_alias_confirm(*, ticket_id: int, email: str, user: Any) -> CustomerAlias:
    """Record that `email`, exactly as written, is the ticket's customer too."""
    if not user.has_perm("support.add_customeralias"):
        raise PermissionDenied("Confirming a customer's other address needs permission.")
    email = email.strip()
    with transaction.atomic():
        alias, created = CustomerAlias.objects.get_or_create(
            ticket_id=ticket_id, email=email, defaults={"confirmed_by": user}
        )
        if created:
            audit_record(
                kind="ticket.alias_confirmed",
                actor=user,
                subject_type=SUBJECT_TYPE,
                subject_id=ticket_id,
                message=f"{email} confirmed as the customer's address.",
            )
    return alias
