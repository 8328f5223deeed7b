"""Incident status transitions: each a compare-and-set with its audit row, in one transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from agents.audit import audit_record
from agents.services.errors import InvalidTransition
from sre.models import Incident

Status = Incident.Status
SUBJECT_TYPE = "sre.incident"
_ACTIVE = frozenset(
    {Status.OPEN, Status.INVESTIGATING, Status.PATCH_PROPOSED, Status.BRANCH_MADE, Status.PR_OPEN}
)

# verb -> (statuses it starts from, status it ends in)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "investigate": (frozenset({Status.OPEN}), Status.INVESTIGATING),
    "propose_patch": (frozenset({Status.INVESTIGATING}), Status.PATCH_PROPOSED),
    # The approved fix was committed to a branch; no pull request (GitHub not configured).
    "make_branch": (frozenset({Status.PATCH_PROPOSED}), Status.BRANCH_MADE),
    "open_pr": (frozenset({Status.PATCH_PROPOSED, Status.BRANCH_MADE}), Status.PR_OPEN),
    "reinvestigate": (
        frozenset({Status.PATCH_PROPOSED, Status.BRANCH_MADE, Status.PR_OPEN}),
        Status.INVESTIGATING,
    ),
    "resolve": (_ACTIVE | {Status.ESCALATED}, Status.RESOLVED),
    "escalate": (
        frozenset({Status.OPEN, Status.INVESTIGATING, Status.PATCH_PROPOSED, Status.BRANCH_MADE}),
        Status.ESCALATED,
    ),
    "ignore": (_ACTIVE | {Status.ESCALATED}, Status.IGNORED),
    "reopen": (frozenset({Status.RESOLVED, Status.IGNORED}), Status.OPEN),
}
# Infrastructure failures go to a person, never towards a code change.
CODE_ONLY = frozenset({"investigate", "propose_patch", "make_branch", "open_pr", "reinvestigate"})


def incident_investigate(*, incident_id: int, actor: Any = None, reason: str = "") -> Incident:
    """Mark the incident as being investigated (by the SRE agent or a person)."""
    return _transition(incident_id=incident_id, verb="investigate", actor=actor, reason=reason)


def incident_propose_patch(*, incident_id: int, actor: Any = None, reason: str = "") -> Incident:
    """Mark the incident as having a patch waiting for review."""
    return _transition(incident_id=incident_id, verb="propose_patch", actor=actor, reason=reason)


def incident_make_branch(*, incident_id: int, actor: Any = None, reason: str = "") -> Incident:
    """Mark the incident's approved fix as committed to a branch, with no pull request."""
    return _transition(incident_id=incident_id, verb="make_branch", actor=actor, reason=reason)


def incident_open_pr(*, incident_id: int, actor: Any = None, reason: str = "") -> Incident:
    """Mark the incident as having an open pull request."""
    return _transition(incident_id=incident_id, verb="open_pr", actor=actor, reason=reason)


def incident_reinvestigate(*, incident_id: int, actor: Any = None, reason: str = "") -> Incident:
    """Send the incident back to investigation (its patch was rejected or its PR closed)."""
    return _transition(incident_id=incident_id, verb="reinvestigate", actor=actor, reason=reason)


def incident_resolve(
    *, incident_id: int, actor: Any = None, reason: str = "", now: datetime | None = None
) -> Incident:
    """Close the incident; an occurrence after now reopens it."""
    return _transition(incident_id=incident_id, verb="resolve", actor=actor, reason=reason, now=now)


def incident_escalate(*, incident_id: int, actor: Any = None, reason: str = "") -> Incident:
    """Hand the incident to a person."""
    return _transition(incident_id=incident_id, verb="escalate", actor=actor, reason=reason)


def incident_ignore(*, incident_id: int, actor: Any = None, reason: str = "") -> Incident:
    """Stop acting on the incident; occurrences are still counted."""
    return _transition(incident_id=incident_id, verb="ignore", actor=actor, reason=reason)


def incident_reopen(*, incident_id: int, actor: Any = None, reason: str = "") -> Incident:
    """Open a resolved or ignored incident again."""
    return _transition(incident_id=incident_id, verb="reopen", actor=actor, reason=reason)


def _transition(
    *, incident_id: int, verb: str, actor: Any, reason: str, now: datetime | None = None
) -> Incident:
    sources, target = TRANSITIONS[verb]
    now = now or timezone.now()
    with transaction.atomic():
        incident = Incident.objects.get(pk=incident_id)
        previous = incident.status
        if verb in CODE_ONLY and incident.needs_escalation:
            raise InvalidTransition(
                f"Incident #{incident_id} is an infrastructure failure: it goes to a person, "
                "never to a code change."
            )
        if previous not in sources:
            raise InvalidTransition(
                f"Incident #{incident_id} stands at “{incident.get_status_display()}”; "
                f"it cannot go to “{Status(target).label}” from there."
            )
        fields: dict[str, Any] = {"status": target, "status_reason": reason, "updated_at": now}
        if verb == "resolve":
            fields["resolved_at"] = now
        if verb == "reopen":
            fields["times_reopened"] = incident.times_reopened + 1
        changed = Incident.objects.filter(pk=incident_id, status=previous).update(**fields)
        if not changed:
            raise InvalidTransition(f"Incident #{incident_id} changed status meanwhile; try again.")
        audit_record(
            kind=f"incident.{verb}",
            actor=actor,
            subject_type=SUBJECT_TYPE,
            subject_id=incident_id,
            message=reason or f"Incident #{incident_id}: {previous} → {target}.",
            data={"from": previous, "to": target},
        )
        for name, value in fields.items():
            setattr(incident, name, value)
    return incident
