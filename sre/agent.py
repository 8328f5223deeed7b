"""Starting the SRE agent on a code incident.

PLACEHOLDER until the SRE toolset exists (issue 4, §3). `incident_agent_start` is what
`sre.services.agent_requests.incident_agent_request` calls, on commit, when a spike of 5xx comes
with a code incident; that service already decided it may (a code incident, open, no run of its
own still going, under SRE_AGENT_RUNS_PER_HOUR). Until a toolset named "sre" is registered this
records an audit event saying no SRE agent is configured yet, and the incident waits in the
console for a person. Once one is registered it moves the incident to `investigating` and starts
a run; the change that registers the toolset replaces `incident_user_message`, which for now
names the incident by its exception type and culprit frame and carries no message, traceback or
other log text: log text is untrusted and reaches Claude only through the redaction step of §3.
"""

from __future__ import annotations

import logging

from django.db import transaction

from agents.audit import audit_record
from agents.models import AgentRun
from agents.registry import UnknownToolset, toolset_get
from agents.services import InvalidTransition, run_start
from sre.models import Incident
from sre.services.incidents import SUBJECT_TYPE, incident_investigate

logger = logging.getLogger(__name__)

TOOLSET = "sre"


def incident_agent_start(incident_id: int) -> AgentRun | None:
    """Start the SRE agent on the incident, or record that no SRE agent is configured yet."""
    try:
        toolset_get(TOOLSET)
    except UnknownToolset:
        audit_record(
            kind="incident.agent_not_configured",
            subject_type=SUBJECT_TYPE,
            subject_id=incident_id,
            message=f"No SRE agent is configured yet (no toolset named {TOOLSET!r} is "
            "registered); the incident waits for a person.",
        )
        return None
    try:
        with transaction.atomic():
            if incident_run_active(incident_id=incident_id):
                return None  # one run at a time per incident
            incident = incident_investigate(
                incident_id=incident_id, reason="The SRE agent started."
            )
            return run_start(
                toolset=TOOLSET,
                user_message=incident_user_message(incident=incident),
                subject_type=SUBJECT_TYPE,
                subject_id=incident_id,
                prompt_context={"incident_id": incident.pk, "title": incident.title},
            )
    except InvalidTransition as error:
        logger.info("incident %s: agent not started: %s", incident_id, error)
        return None
    except Exception as error:
        logger.exception("incident %s: the SRE agent could not start", incident_id)
        audit_record(
            kind="incident.agent_start_failed",
            subject_type=SUBJECT_TYPE,
            subject_id=incident_id,
            message=f"The SRE agent could not start: {error!r}",
        )
        return None


def incident_run_active(*, incident_id: int) -> bool:
    return (
        AgentRun.objects.filter(subject_type=SUBJECT_TYPE, subject_id=str(incident_id))
        .exclude(status__in=AgentRun.FINISHED)
        .exists()
    )


def incident_user_message(*, incident: Incident) -> str:
    """The run's first message: which incident, never its log text (see the module docstring)."""
    return (
        f"Incident #{incident.pk} ({incident.get_category_display()}): "
        f"{incident.exception_type or 'error'} in {incident.culprit or 'an unknown frame'}, "
        f"{incident.occurrences} occurrence(s) between {incident.first_seen_at:%Y-%m-%d %H:%M} "
        f"and {incident.last_seen_at:%Y-%m-%d %H:%M} UTC."
    )
