"""Deciding whether a spike starts the SRE agent on a code incident.

Only code incidents (a traceback), only while open, one run at a time per incident, once per
spike, and no more than SRE_AGENT_RUNS_PER_HOUR starts across all incidents in any hour. The
decision is an `AgentTrigger` row and an audit row; the start itself
(`sre.agent.incident_agent_start`) runs when the transaction commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.audit import audit_record
from sre.models import AgentTrigger, Incident, Spike
from sre.services.incidents import SUBJECT_TYPE


def incident_agent_request(
    *, incident_id: int, spike_id: int | None = None, now: datetime | None = None
) -> AgentTrigger | None:
    """Queue the SRE agent for a code incident of a spike, within the caps; None if not due."""
    from sre.agent import incident_agent_start, incident_run_active

    now = now or timezone.now()
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident_id)
        if incident.category != Incident.Category.CODE or incident.status != Incident.Status.OPEN:
            return None
        if AgentTrigger.objects.filter(incident=incident, spike_id=spike_id).exists():
            return None
        if incident_run_active(incident_id=incident_id):
            return None
        started = AgentTrigger.objects.filter(
            outcome=AgentTrigger.Outcome.QUEUED, created_at__gt=now - timedelta(hours=1)
        ).count()
        cap = settings.SRE_AGENT_RUNS_PER_HOUR
        outcome = AgentTrigger.Outcome.QUEUED if started < cap else AgentTrigger.Outcome.CAPPED
        trigger = AgentTrigger.objects.create(
            incident=incident, spike_id=spike_id, outcome=outcome, created_at=now
        )
        if outcome == AgentTrigger.Outcome.CAPPED:
            audit_record(
                kind="incident.agent_capped",
                subject_type=SUBJECT_TYPE,
                subject_id=incident_id,
                message=f"The SRE agent was not started: {started} starts in the last hour "
                f"(SRE_AGENT_RUNS_PER_HOUR={cap}).",
            )
            return trigger
        audit_record(
            kind="incident.agent_requested",
            subject_type=SUBJECT_TYPE,
            subject_id=incident_id,
            message=f"A spike of 5xx with this code incident: the SRE agent is queued "
            f"({started + 1} of {cap} this hour).",
            data={"spike": spike_id},
        )
        transaction.on_commit(lambda: incident_agent_start(incident_id))
    return trigger


def spike_incidents(*, spike: Spike) -> list[int]:
    """Open code incidents that occurred in the spike's window."""
    return list(
        Incident.objects.filter(
            category=Incident.Category.CODE,
            status=Incident.Status.OPEN,
            windows__window_start=spike.window_start,
            windows__count__gt=0,
        )
        .order_by("-occurrences", "pk")
        .values_list("pk", flat=True)
    )
