"""The support desk's services: every write and every ticket status transition."""

from support.services.ingest import IngestResult, Outcome, ticket_ingest_email
from support.services.tickets import (
    ticket_await_approval,
    ticket_escalate,
    ticket_reopen,
    ticket_resolve,
    ticket_triage,
    ticket_wait_on_customer,
)

__all__ = [
    "IngestResult",
    "Outcome",
    "ticket_await_approval",
    "ticket_escalate",
    "ticket_ingest_email",
    "ticket_reopen",
    "ticket_resolve",
    "ticket_triage",
    "ticket_wait_on_customer",
]
