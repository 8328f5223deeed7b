"""Backlog mode for the support desk: many tickets triaged through Message Batches at half price.

Each ticket's run starts as any other (`ticket_agent_start`) with its first model call held for
a batch; the engine submits, polls and resumes them (agents/services/batches.py), and what
Claude proposes waits for the same checks and approvals as ever. docs/BACKLOG.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import CharField, Exists, OuterRef, QuerySet
from django.db.models.functions import Cast

from agents.audit import audit_record
from agents.models import AgentRun
from agents.services.batches import batches_enabled
from agents.services.errors import InvalidTransition
from support.models import Ticket
from support.services.tickets import SUBJECT_TYPE

TRIAGE_PERMISSION = "support.change_ticket"


@dataclass
class BacklogReport:
    held: list[int] = field(default_factory=list)  # first call waits for a batch
    started: list[int] = field(default_factory=list)  # went the normal way (e.g. replay)
    skipped: list[int] = field(default_factory=list)  # not new, or triaged already

    def describe(self) -> str:
        return (
            f"{len(self.held)} ticket(s) wait for a Message Batch, {len(self.started)} started "
            f"at once, {len(self.skipped)} skipped (not new, or triaged already)."
        )


def ticket_backlog_list() -> QuerySet[Ticket]:
    """New tickets no agent run has started on, oldest first."""
    runs = AgentRun.objects.filter(
        subject_type=SUBJECT_TYPE, subject_id=Cast(OuterRef("pk"), output_field=CharField())
    )
    return Ticket.objects.filter(~Exists(runs), status=Ticket.Status.NEW).order_by(
        "created_at", "pk"
    )


def tickets_triage_in_batch(*, ticket_ids: Iterable[int], actor: Any = None) -> BacklogReport:
    """Start the support agent on each new ticket with its first model call held for a batch."""
    from support.agent import ticket_agent_start

    if actor is not None and not actor.has_perm(TRIAGE_PERMISSION):
        raise PermissionDenied("You may not start the support agent on tickets.")
    if not batches_enabled():
        raise InvalidTransition("Backlog mode is off: set AGENTS_BATCH_ENABLED to use batches.")
    report = BacklogReport()
    for ticket_id in ticket_ids:
        run = ticket_agent_start(ticket_id, batch=True)
        if run is None:
            report.skipped.append(ticket_id)
        elif run.status == AgentRun.Status.BATCHED:
            report.held.append(ticket_id)
        else:
            report.started.append(ticket_id)
    if report.held or report.started:
        audit_record(
            kind="ticket.backlog_triage",
            actor=actor,
            subject_type=SUBJECT_TYPE,
            message=report.describe(),
            data={"held": report.held, "started": report.started},
        )
    return report
