"""An incident's status follows what happened to its patch and its run, on every path."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import AgentRun, AuditEvent
from agents.services import InvalidTransition, agents_sweep
from sre.models import Incident
from sre.services import incident_resolve
from sre.services.patches import patch_approve, patch_reject
from tests.factories.users import user_create
from tests.sre.agent_steps import proposed_patch

pytestmark = pytest.mark.django_db
S = Incident.Status


def approver():
    return user_create(perms=["sre.approve_patch"])


def steps(incident_id: int) -> list[tuple[str, str]]:
    """The incident's transitions, oldest first: (status it went to, why)."""
    events = AuditEvent.objects.filter(
        subject_type="sre.incident", subject_id=str(incident_id), kind__startswith="incident."
    ).order_by("id")
    return [(e.data["to"], e.message) for e in events if "to" in (e.data or {})]


def status(patch) -> Incident:
    return Incident.objects.get(pk=patch.incident_id)


def test_patch_proposed(fake_anthropic, worker, sre_settings):
    patch = proposed_patch(worker, fake_anthropic)
    assert status(patch).status == S.PATCH_PROPOSED
    assert status(patch).status_reason == f"Patch #{patch.pk} waits for review."


def test_branch_made_without_a_pull_request(fake_anthropic, worker, sre_settings):
    patch = proposed_patch(worker, fake_anthropic)
    fake_anthropic.push_text("The branch is made.")
    with worker.committing():
        patch_approve(patch_id=patch.pk, user=approver())
    worker.drain()
    patch.refresh_from_db()
    incident = status(patch)
    assert incident.status == S.BRANCH_MADE and incident.get_status_display() == "Fix on a branch"
    assert patch.branch in incident.status_reason and "no pull request" in incident.status_reason
    # The run ended with the fix on a branch: nobody needs to be handed the incident.
    assert AgentRun.objects.get(pk=patch.tool_call.run_id).status == "completed"
    # From a branch it may still be resolved, or go back to work.
    incident_resolve(incident_id=incident.pk, reason="Deployed by hand.")
    assert status(patch).status == S.RESOLVED


def test_pull_request_opened(fake_anthropic, worker, wired, github_fake):
    patch = proposed_patch(worker, fake_anthropic)
    github_fake.branches.add(patch.branch)
    fake_anthropic.push_text("The pull request is open.")
    with worker.committing():
        patch_approve(patch_id=patch.pk, user=approver())
    worker.drain()
    assert status(patch).status == S.PR_OPEN
    assert [s for s, _ in steps(patch.incident_id)] == [
        "investigating",
        "patch_proposed",
        "pr_open",
    ]


def test_rejected_then_claude_ends_its_turn_hands_it_to_a_person(
    fake_anthropic, worker, sre_settings
):
    patch = proposed_patch(worker, fake_anthropic)
    fake_anthropic.push_text("Understood.")
    with worker.committing():
        patch_reject(patch_id=patch.pk, user=approver(), reason="Validate the payload instead")
    worker.drain()
    went = steps(patch.incident_id)
    assert went[-2][0] == "investigating"
    assert went[-2][1].startswith(f"Patch #{patch.pk} was rejected by user")
    assert went[-2][1].endswith(": Validate the payload instead")
    assert status(patch).status == S.ESCALATED


def test_expired_goes_back_to_investigating(fake_anthropic, worker, sre_settings):
    patch = proposed_patch(worker, fake_anthropic)
    fake_anthropic.push_text("Nobody decided.")
    with worker.committing():
        assert agents_sweep(now=timezone.now() + timedelta(days=30)).calls_expired == 1
    worker.drain()
    went = steps(patch.incident_id)
    assert went[-2][0] == "investigating" and "expired undecided" in went[-2][1]
    assert status(patch).status == S.ESCALATED


def test_a_branch_made_is_not_escalated_again(fake_anthropic, worker, sre_settings):
    patch = proposed_patch(worker, fake_anthropic)
    fake_anthropic.push_text("Done.")
    with worker.committing():
        patch_approve(patch_id=patch.pk, user=approver())
    worker.drain()
    with pytest.raises(InvalidTransition, match="stands at “Fix on a branch”"):
        from sre.services import incident_propose_patch

        incident_propose_patch(incident_id=patch.incident_id)
