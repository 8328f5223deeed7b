"""The seed's example end to end: a KeyError incident → Claude's patch → a person → one PR."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import PermissionDenied

from agents.models import AgentRun, ToolCall
from agents.services import InvalidTransition, tool_call_approve
from sre.models import Incident, PatchProposal
from sre.services.patches import patch_approve, patch_reject
from sre.services.publishing import patch_publish
from tests.factories.users import user_create
from tests.sre.agent_steps import (  # noqa: F401
    code_incident,
    proposed_patch,
    start,
    tool_result,
)
from tests.sre.conftest import git

pytestmark = pytest.mark.django_db
P = PatchProposal.Status


def approver():
    return user_create(perms=["sre.approve_patch"])


def test_the_keyerror_incident_ends_in_one_branch_one_pr_and_one_slack_notice(
    fake_anthropic, worker, wired, remote, github_fake, slack_fake, repo
):
    patch = proposed_patch(worker, fake_anthropic)
    incident = patch.incident
    run = AgentRun.objects.get(pk=patch.tool_call.run_id)
    assert run.status == AgentRun.Status.AWAITING_APPROVAL
    assert incident.status == Incident.Status.PATCH_PROPOSED
    assert patch.status == P.PROPOSED and patch.changed_files == ["app/api.py"]
    assert '+    profile = payload.get("user_profile", {})' in patch.diff
    assert all(c["passed"] for c in patch.checks), patch.checks
    assert "Hypothesis: upstream omits user_profile" in patch.scratchpad
    assert patch.branch.startswith(f"sre/incident-{incident.pk}-fix-keyerror")
    # The first message carried the incident as delimited data; the live tree is untouched.
    first = run.messages[0]["content"][0]["text"]
    assert "<incident_data>" in first and "KeyError: 'user_profile'" in first
    assert "GET /api/profile" in first
    assert 'payload["user_profile"]' in (repo / "app" / "api.py").read_text()
    assert github_fake.pulls == [] and slack_fake.messages == []

    github_fake.branches.add(patch.branch)
    fake_anthropic.push_text("The pull request is open for review.")
    with worker.committing():
        patch_approve(patch_id=patch.pk, user=approver())
    worker.drain()

    patch.refresh_from_db()
    assert patch.status == P.PR_OPEN and patch.pr_number == 1
    assert git(remote, "rev-parse", patch.branch).strip() == patch.commit
    assert f"incident #{incident.pk}" in git(remote, "log", "-1", "--format=%s", patch.branch)
    [pull] = github_fake.pulls
    assert pull["head"] == patch.branch and PR_ROOT_CAUSE in pull["body"]
    assert f"/admin/sre/incident/{incident.pk}/" in pull["body"]
    [notice] = slack_fake.messages
    assert f"Incident #{incident.pk}" in notice["text"] and patch.slack_ts == notice["ts"]
    incident.refresh_from_db()
    assert incident.status == Incident.Status.PR_OPEN
    result = tool_result(fake_anthropic, patch.tool_call.tool_use_id)
    assert result["is_error"] is False
    assert json.loads(result["content"])["pull_request"] == patch.pr_url
    assert AgentRun.objects.get(pk=run.pk).status == AgentRun.Status.COMPLETED

    # A retried publish finds the branch, the PR and the notice: nothing new is made.
    PatchProposal.objects.filter(pk=patch.pk).update(status=P.PUBLISHING)
    again = patch_publish(patch_id=patch.pk)
    assert again["commit"] == patch.commit
    assert len(github_fake.pulls) == 1 and len(slack_fake.messages) == 1
    assert len(git(remote, "rev-list", f"main..{patch.branch}").split()) == 1
    assert len([r for r in github_fake.requests if r.method == "POST"]) == 1


PR_ROOT_CAUSE = "The upstream reply no longer always carries user_profile"


def test_without_github_or_slack_the_branch_is_still_made_and_claude_is_told(
    fake_anthropic, worker, sre_settings, repo
):
    patch = proposed_patch(worker, fake_anthropic)
    fake_anthropic.push_text("The branch is ready.")
    with worker.committing():
        patch_approve(patch_id=patch.pk, user=approver())
    worker.drain()
    patch.refresh_from_db()
    assert patch.status == P.PUBLISHED and patch.commit and not patch.pr_url
    content = json.loads(tool_result(fake_anthropic, patch.tool_call.tool_use_id)["content"])
    notes = " ".join(content["notes"])
    assert "local only" in notes and "GitHub is not configured" in notes
    assert "Slack is not configured" in notes
    assert "sre/" not in git(repo, "branch", "--list")  # the live repository is untouched
    assert Incident.objects.get(pk=patch.incident_id).status == Incident.Status.PATCH_PROPOSED


def test_reject_tells_claude_the_reason_and_publishes_nothing(fake_anthropic, worker, sre_settings):
    patch = proposed_patch(worker, fake_anthropic)
    fake_anthropic.push_tool_use(("escalate_to_human", {"reason": "The reviewer wants a person."}))
    with worker.committing():
        patch_reject(patch_id=patch.pk, user=approver(), reason="Validate the payload instead")
    worker.drain()
    patch.refresh_from_db()
    assert patch.status == P.REJECTED and not patch.commit
    result = tool_result(fake_anthropic, patch.tool_call.tool_use_id)
    assert result["is_error"] is True and "Validate the payload instead" in result["content"]
    assert Incident.objects.get(pk=patch.incident_id).status == Incident.Status.ESCALATED


def test_approval_needs_the_patch_permission_and_goes_through_the_patch_service(
    fake_anthropic, worker, sre_settings
):
    patch = proposed_patch(worker, fake_anthropic)
    staff = user_create(perms=["sre.view_patchproposal"])
    with pytest.raises(PermissionDenied):
        patch_approve(patch_id=patch.pk, user=staff)
    with pytest.raises(PermissionDenied):
        patch_reject(patch_id=patch.pk, user=staff, reason="no")
    with pytest.raises(InvalidTransition, match="patch review page"):
        tool_call_approve(tool_call_id=patch.tool_call_id, user=approver())
    assert ToolCall.objects.get(pk=patch.tool_call_id).status == ToolCall.Status.AWAITING_APPROVAL
    with pytest.raises(InvalidTransition, match="reason"):
        patch_reject(patch_id=patch.pk, user=approver(), reason=" ")


@pytest.mark.parametrize("status", [P.BLOCKED, P.REJECTED, P.APPROVED, P.PR_OPEN, P.MERGED])
def test_only_a_proposed_patch_can_be_approved_or_rejected(
    fake_anthropic, worker, sre_settings, status
):
    patch = proposed_patch(worker, fake_anthropic)
    PatchProposal.objects.filter(pk=patch.pk).update(status=status)
    with pytest.raises(InvalidTransition):
        patch_approve(patch_id=patch.pk, user=approver())
    with pytest.raises(InvalidTransition):
        patch_reject(patch_id=patch.pk, user=approver(), reason="no")
    assert PatchProposal.objects.get(pk=patch.pk).status == status


def test_github_down_leaves_the_patch_publishing_until_the_sweep_retries_it(
    fake_anthropic, worker, wired, remote, github_fake, slack_fake
):
    from datetime import timedelta

    from django.utils import timezone

    from agents.services import agents_sweep

    patch = proposed_patch(worker, fake_anthropic)
    github_fake.branches.add(patch.branch)
    github_fake.fail_next = [502] * 8  # more than PyGithub's own retries
    with worker.committing():
        patch_approve(patch_id=patch.pk, user=approver())
    worker.drain()
    patch.refresh_from_db()
    assert patch.status == P.PUBLISHING and patch.commit and not patch.pr_number
    assert ToolCall.objects.get(pk=patch.tool_call_id).status == ToolCall.Status.EXECUTING

    github_fake.fail_next = []
    fake_anthropic.push_text("The pull request is open.")
    with worker.committing():
        agents_sweep(now=timezone.now() + timedelta(hours=1))
    worker.drain()
    patch.refresh_from_db()
    assert patch.status == P.PR_OPEN and patch.attempts == 2
    assert len(github_fake.pulls) == 1 and len(slack_fake.messages) == 1
    assert len(git(remote, "rev-list", f"main..{patch.branch}").split()) == 1


def test_escalation_hands_the_incident_to_a_person_and_tells_slack(
    fake_anthropic, worker, wired, slack_fake
):
    fake_anthropic.push_tool_use(
        ("escalate_to_human", {"reason": "The upstream service is down; not a code bug."})
    )
    incident = code_incident()
    start(worker, incident)
    incident.refresh_from_db()
    assert incident.status == Incident.Status.ESCALATED
    assert "upstream service is down" in incident.status_reason
    [notice] = slack_fake.messages
    assert f"Incident #{incident.pk}" in notice["text"] and "needs a person" in notice["text"]
