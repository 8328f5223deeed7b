"""The seed's example end to end: a KeyError incident → Claude's patch → a person → one PR.

A patch is a proposal of the engine's: it is decided through `agents.services` (the patch
services are thin names for it), checked again at approval and before publishing, and every
way its call closes closes the patch with it.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from agents.models import AgentRun, Notice, ToolCall
from agents.selectors import proposal_inbox
from agents.services import (
    InvalidTransition,
    ProposalBlocked,
    agents_sweep,
    proposal_approve,
    proposal_reject,
    run_cancel,
)
from sre.models import Incident, PatchProposal
from sre.services.patches import patch_approve, patch_reject
from tests.factories.users import user_create
from tests.sre.agent_steps import (  # noqa: F401
    PR,
    code_incident,
    proposed_patch,
    start,
    tool_result,
)
from tests.sre.conftest import git

pytestmark = pytest.mark.django_db
P = PatchProposal.Status
TC = ToolCall.Status
PR_ROOT_CAUSE = "The upstream reply no longer always carries user_profile"


def approver():
    return user_create(perms=["sre.approve_patch"])


def fresh(patch: PatchProposal) -> PatchProposal:
    """The patch as stored now, with its call and proposal read again (they hold its status)."""
    return PatchProposal.objects.select_related("tool_call__proposal").get(pk=patch.pk)


def remote_branches(remote) -> str:
    return git(remote, "branch", "--list", "sre/*")


def waiting(patch: PatchProposal) -> bool:
    return proposal_inbox().filter(pk=patch.tool_call_id).exists()


def test_the_keyerror_incident_ends_in_one_branch_one_pr_and_one_slack_notice(
    fake_anthropic, worker, wired, remote, github_fake, slack_fake, repo
):
    patch = proposed_patch(worker, fake_anthropic)
    incident = patch.incident
    run = AgentRun.objects.get(pk=patch.tool_call.run_id)
    assert run.status == AgentRun.Status.AWAITING_APPROVAL
    assert incident.status == Incident.Status.PATCH_PROPOSED
    assert patch.status == P.PROPOSED and patch.changed_files == ["app/api.py"]
    assert patch.title == PR["title"] and patch.root_cause == PR["root_cause"]
    assert '+    profile = payload.get("user_profile", {})' in patch.diff
    assert all(c["passed"] for c in patch.checks), patch.checks
    assert "Hypothesis: upstream omits user_profile" in patch.scratchpad
    assert patch.branch.startswith(f"sre/incident-{incident.pk}-fix-keyerror")
    assert waiting(patch)
    # The first message carried the incident as delimited data; the live tree is untouched.
    first = run.messages[0]["content"][0]["text"]
    assert "<incident_data>" in first and "KeyError: 'user_profile'" in first
    assert "GET /api/profile" in first
    assert 'payload["user_profile"]' in (repo / "app" / "api.py").read_text()
    assert github_fake.pulls == [] and remote_branches(remote) == ""
    # Waiting for a person: one message in the channel, linking to the one review page.
    [posted] = slack_fake.channel_messages("ops")
    assert f"incident #{incident.pk}" in posted["text"] and "app/api.py" in posted["text"]
    assert f"/admin/agents/toolcall/{patch.tool_call_id}/review/" in json.dumps(posted["blocks"])

    github_fake.branches.add(patch.branch)
    fake_anthropic.push_text("The pull request is open for review.")
    with worker.committing():
        patch_approve(patch_id=patch.pk, user=approver())
    worker.drain()

    patch = fresh(patch)
    assert patch.status == P.PR_OPEN and patch.pr_number == 1 and patch.published_at
    assert git(remote, "rev-parse", patch.branch).strip() == patch.commit
    assert len(git(remote, "rev-list", f"main..{patch.branch}").split()) == 1
    assert f"incident #{incident.pk}" in git(remote, "log", "-1", "--format=%s", patch.branch)
    assert remote_branches(remote).split() == [patch.branch]
    [pull] = github_fake.pulls
    assert pull["head"] == patch.branch and PR_ROOT_CAUSE in pull["body"]
    assert f"/admin/sre/incident/{incident.pk}/" in pull["body"]
    assert len([r for r in github_fake.requests if r.method == "POST"]) == 1
    # Still one message: the same one was updated to say what came of it, not posted again.
    [message] = slack_fake.messages
    assert message["ts"] == posted["ts"]
    assert slack_fake.updates and all(u["ts"] == posted["ts"] for u in slack_fake.updates)
    assert patch.pr_url in slack_fake.updates[-1]["text"]
    assert "pull request" in message["text"] and patch.pr_url in message["text"]
    assert Notice.objects.get(proposal_id=patch.tool_call_id).ts == posted["ts"]
    incident.refresh_from_db()
    assert incident.status == Incident.Status.PR_OPEN
    assert not waiting(patch)
    result = tool_result(fake_anthropic, patch.tool_call.tool_use_id)
    assert result["is_error"] is False
    assert json.loads(result["content"])["pull_request"] == patch.pr_url
    assert AgentRun.objects.get(pk=run.pk).status == AgentRun.Status.COMPLETED


class WorkerDied(BaseException):
    """The worker process stops: not an error the engine catches and records."""


def test_a_publish_the_worker_lost_is_run_again_by_the_sweep_and_makes_nothing_new(
    fake_anthropic, worker, wired, remote, github_fake, slack_fake, monkeypatch
):
    import sre.tools

    patch = proposed_patch(worker, fake_anthropic)
    github_fake.branches.add(patch.branch)
    publish = sre.tools.patch_publish

    def publish_then_die(**kwargs):
        publish(**kwargs)  # the branch, the commit, the pull request: all made
        raise WorkerDied  # ...and the worker dies before the call's outcome is recorded

    monkeypatch.setattr(sre.tools, "patch_publish", publish_then_die)
    with worker.committing():
        patch_approve(patch_id=patch.pk, user=approver())
    with pytest.raises(WorkerDied):
        worker.drain()
    patch = fresh(patch)
    assert patch.tool_call.status == TC.EXECUTING and patch.status == P.PUBLISHING
    assert len(github_fake.pulls) == 1

    monkeypatch.setattr(sre.tools, "patch_publish", publish)
    fake_anthropic.push_text("The pull request is open.")
    later = timezone.now() + timedelta(seconds=settings.AGENTS_STALE_CLAIM_SECONDS + 60)
    with worker.committing():
        assert agents_sweep(now=later).calls_interrupted == 1
    worker.drain()
    patch = fresh(patch)
    assert patch.status == P.PR_OPEN and patch.tool_call.attempts == 2
    # The retry found the branch, the commit, the pull request and the message.
    assert len(github_fake.pulls) == 1
    assert len([r for r in github_fake.requests if r.method == "POST"]) == 1
    assert len(git(remote, "rev-list", f"main..{patch.branch}").split()) == 1
    assert len(slack_fake.messages) == 1 and patch.pr_url in slack_fake.messages[0]["text"]
    result = tool_result(fake_anthropic, patch.tool_call.tool_use_id)
    assert result["is_error"] is False
    assert json.loads(result["content"])["pull_request"] == patch.pr_url


def test_without_github_or_slack_the_branch_is_still_made_and_claude_is_told(
    fake_anthropic, worker, sre_settings, repo
):
    patch = proposed_patch(worker, fake_anthropic)
    fake_anthropic.push_text("The branch is ready.")
    with worker.committing():
        patch_approve(patch_id=patch.pk, user=approver())
    worker.drain()
    patch = fresh(patch)
    assert patch.status == P.PUBLISHED and patch.commit and not patch.pr_url
    content = json.loads(tool_result(fake_anthropic, patch.tool_call.tool_use_id)["content"])
    notes = " ".join(content["notes"])
    assert "local only" in notes and "GitHub is not configured" in notes
    assert patch.notes == notes
    # Slack is the engine's notices' business, not publishing's; with neither Slack nor mail
    # configured there is no notice at all.
    assert "Slack" not in notes and not Notice.objects.exists()
    assert "sre/" not in git(repo, "branch", "--list")  # the live repository is untouched
    assert Incident.objects.get(pk=patch.incident_id).status == Incident.Status.BRANCH_MADE


def test_reject_tells_claude_the_reason_and_publishes_nothing(fake_anthropic, worker, sre_settings):
    patch = proposed_patch(worker, fake_anthropic)
    fake_anthropic.push_tool_use(("escalate_to_human", {"reason": "The reviewer wants a person."}))
    reviewer = approver()
    with worker.committing():
        patch_reject(patch_id=patch.pk, user=reviewer, reason="Validate the payload instead")
    worker.drain()
    patch = fresh(patch)
    assert patch.status == P.REJECTED and not patch.commit
    call = patch.tool_call
    assert call.decided_by == reviewer and call.decision_reason == "Validate the payload instead"
    result = tool_result(fake_anthropic, call.tool_use_id)
    assert result["is_error"] is True and "Validate the payload instead" in result["content"]
    assert Incident.objects.get(pk=patch.incident_id).status == Incident.Status.ESCALATED


def test_approval_needs_the_patch_permission_and_goes_through_the_engine(
    fake_anthropic, worker, sre_settings
):
    patch = proposed_patch(worker, fake_anthropic)
    staff = user_create(perms=["sre.view_patchproposal", "agents.view_toolcall"])
    with pytest.raises(PermissionDenied):
        patch_approve(patch_id=patch.pk, user=staff)
    with pytest.raises(PermissionDenied):
        patch_reject(patch_id=patch.pk, user=staff, reason="no")
    # The engine's own services are the same door: the same permission, the same rules.
    with pytest.raises(PermissionDenied):
        proposal_approve(tool_call_id=patch.tool_call_id, user=staff)
    with pytest.raises(InvalidTransition, match="reason"):
        patch_reject(patch_id=patch.pk, user=approver(), reason=" ")
    with pytest.raises(InvalidTransition, match="reason"):
        proposal_reject(tool_call_id=patch.tool_call_id, user=approver(), reason="")
    # A patch is approved as proposed: an edited input is refused and nothing changes.
    with pytest.raises(InvalidTransition, match="approved as proposed"):
        proposal_approve(
            tool_call_id=patch.tool_call_id,
            user=approver(),
            edited_input={**PR, "title": "Something else entirely"},
        )
    assert fresh(patch).tool_call.status == TC.AWAITING_APPROVAL
    assert fresh(patch).status == P.PROPOSED and waiting(patch)

    proposal_approve(tool_call_id=patch.tool_call_id, user=approver())
    patch = fresh(patch)
    assert patch.tool_call.status == TC.QUEUED and patch.status == P.APPROVED


# --- a second decision on a decided patch is refused, whatever state it is in ----------------


def _blocked(worker, fake_anthropic) -> PatchProposal:
    """Claude proposes without an edit: the checks block it before anyone can decide."""
    fake_anthropic.push_tool_use(("create_pull_request", PR))
    fake_anthropic.push_text("There was nothing to propose.")
    start(worker, code_incident())
    return PatchProposal.objects.get()


def _rejected(worker, fake_anthropic) -> PatchProposal:
    patch = proposed_patch(worker, fake_anthropic)
    fake_anthropic.push_text("Understood.")
    with worker.committing():
        patch_reject(patch_id=patch.pk, user=approver(), reason="Not this way")
    worker.drain()
    return patch


def _approved(worker, fake_anthropic) -> PatchProposal:
    """Approved and queued; the worker has not published it yet."""
    patch = proposed_patch(worker, fake_anthropic)
    patch_approve(patch_id=patch.pk, user=approver())
    return patch


def _published(worker, fake_anthropic) -> PatchProposal:
    patch = proposed_patch(worker, fake_anthropic)
    fake_anthropic.push_text("The branch is ready.")
    with worker.committing():
        patch_approve(patch_id=patch.pk, user=approver())
    worker.drain()
    return patch


@pytest.mark.parametrize(
    ("arrange", "status"),
    [
        (_blocked, P.BLOCKED),
        (_rejected, P.REJECTED),
        (_approved, P.APPROVED),
        (_published, P.PUBLISHED),
    ],
    ids=["blocked", "rejected", "approved", "published"],
)
def test_the_engine_refuses_a_second_decision_on_a_decided_patch(
    fake_anthropic, worker, sre_settings, arrange, status
):
    patch = fresh(arrange(worker, fake_anthropic))
    assert patch.status == status
    before = (patch.tool_call.status, patch.tool_call.decided_by_id, patch.commit)
    with pytest.raises(InvalidTransition, match="not awaiting approval"):
        patch_approve(patch_id=patch.pk, user=approver())
    with pytest.raises(InvalidTransition, match="not awaiting approval"):
        patch_reject(patch_id=patch.pk, user=approver(), reason="no")
    with pytest.raises(InvalidTransition):
        proposal_approve(tool_call_id=patch.tool_call_id, user=approver())
    worker.drain()  # whatever was queued runs; nothing more is published
    patch = fresh(patch)
    assert patch.tool_call.decided_by_id == before[1] and not waiting(patch)
    if status != P.APPROVED:
        assert (patch.tool_call.status, patch.commit) == (before[0], before[2])
        assert patch.status == status


# --- every way a patch's call closes closes the patch ---------------------------------------


def _reject(patch: PatchProposal, fake_anthropic) -> str:
    fake_anthropic.push_text("Understood; I will look again.")
    patch_reject(patch_id=patch.pk, user=approver(), reason="Validate the payload instead")
    return "Validate the payload instead"


def _expire(patch: PatchProposal, fake_anthropic) -> str:
    fake_anthropic.push_text("Nobody reviewed it; I stop here.")
    hours = settings.AGENTS_APPROVAL_TTL_HOURS
    assert agents_sweep(now=timezone.now() + timedelta(hours=hours - 1)).calls_expired == 0
    assert agents_sweep(now=timezone.now() + timedelta(hours=hours + 1)).calls_expired == 1
    return f"within {hours:g} hours"


def _cancel(patch: PatchProposal, fake_anthropic) -> str:
    operator = user_create(perms=["agents.cancel_agentrun"])
    run_cancel(run_id=patch.tool_call.run_id, user=operator, reason="Fixed by hand.")
    return ""  # the run ended: Claude is not asked again


@pytest.mark.parametrize(
    ("close", "status"),
    [(_reject, P.REJECTED), (_expire, P.EXPIRED), (_cancel, P.CANCELLED)],
    ids=["rejected", "expired", "run-cancelled"],
)
def test_every_closing_path_closes_the_patch(
    fake_anthropic, worker, wired, remote, github_fake, slack_fake, close, status
):
    patch = proposed_patch(worker, fake_anthropic)
    github_fake.branches.add(patch.branch)
    assert waiting(patch) and len(slack_fake.messages) == 1
    with worker.committing():
        told = close(patch, fake_anthropic)
    worker.drain()

    patch = fresh(patch)
    assert patch.status == status and not patch.is_open
    assert patch.tool_call.status == status  # the patch's words are its call's here
    incident = Incident.objects.get(pk=patch.incident_id)
    assert incident.status not in (Incident.Status.PATCH_PROPOSED, Incident.Status.PR_OPEN)
    assert not waiting(patch)
    if told:
        result = tool_result(fake_anthropic, patch.tool_call.tool_use_id)
        assert result["is_error"] is True and told in result["content"]
    # The one message says so: updated, not posted again.
    [message] = slack_fake.messages
    assert slack_fake.updates and slack_fake.updates[-1]["ts"] == message["ts"]
    assert patch.get_state_display().lower() in message["text"].lower()

    with pytest.raises(InvalidTransition):
        patch_approve(patch_id=patch.pk, user=approver())
    worker.drain()
    patch = fresh(patch)
    assert patch.status == status
    assert not patch.commit and not patch.published_at and patch.pr_number is None
    assert github_fake.pulls == [] and remote_branches(remote) == ""


def test_approval_checks_again_and_blocks_a_patch_the_live_tree_no_longer_takes(
    fake_anthropic, worker, wired, remote, github_fake, slack_fake, repo
):
    patch = proposed_patch(worker, fake_anthropic)
    assert all(c["passed"] for c in patch.checks)
    # Someone changes the same line on the live tree after the proposal.
    api = repo / "app" / "api.py"
    api.write_text(api.read_text().replace('payload["user_profile"]', 'payload["profile"]'))
    git(repo, "commit", "-qam", "hotfix by hand")

    fake_anthropic.push_text("The code moved under me; I will look again.")
    with worker.committing(), pytest.raises(ProposalBlocked, match="patch applies"):
        patch_approve(patch_id=patch.pk, user=approver())
    worker.drain()

    patch = fresh(patch)
    assert patch.status == P.BLOCKED and patch.tool_call.status == TC.BLOCKED
    applies = next(c for c in patch.checks if c["name"] == "patch applies to the live tree")
    assert applies["passed"] is False and applies["hard"]
    assert patch.proposal.checked_in == "approval"
    result = tool_result(fake_anthropic, patch.tool_call.tool_use_id)
    assert result["is_error"] is True and "patch applies to the live tree" in result["content"]
    assert Incident.objects.get(pk=patch.incident_id).status != Incident.Status.PATCH_PROPOSED
    assert not waiting(patch)
    assert not patch.commit and github_fake.pulls == [] and remote_branches(remote) == ""
    [message] = slack_fake.messages
    assert "blocked" in message["text"].lower()


def test_github_down_queues_the_publish_again_until_the_sweep_retries_it(
    fake_anthropic, worker, wired, remote, github_fake, slack_fake
):
    patch = proposed_patch(worker, fake_anthropic)
    github_fake.branches.add(patch.branch)
    github_fake.fail_next = [502] * 8  # more than PyGithub's own retries
    with worker.committing():
        patch_approve(patch_id=patch.pk, user=approver())
    worker.drain()
    patch = fresh(patch)
    call = patch.tool_call
    # The branch is pushed; the pull request waits for GitHub: queued again, with a delay.
    assert patch.commit and not patch.pr_number and not patch.published_at
    assert call.status == TC.QUEUED and call.next_attempt_at > timezone.now()
    assert call.attempts == 1 and patch.status == P.APPROVED
    assert github_fake.pulls == []

    github_fake.fail_next = []
    with worker.committing():
        agents_sweep()  # not due yet: nothing is tried
    worker.drain()
    assert fresh(patch).tool_call.status == TC.QUEUED and github_fake.pulls == []

    fake_anthropic.push_text("The pull request is open.")
    with worker.committing():
        agents_sweep(now=call.next_attempt_at + timedelta(seconds=1))
    worker.drain()
    patch = fresh(patch)
    assert patch.status == P.PR_OPEN and patch.tool_call.attempts == 2
    assert patch.tool_call.next_attempt_at is None
    assert len(github_fake.pulls) == 1 and len(slack_fake.messages) == 1
    assert len(git(remote, "rev-list", f"main..{patch.branch}").split()) == 1
    result = tool_result(fake_anthropic, patch.tool_call.tool_use_id)
    assert result["is_error"] is False


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
    [notice] = slack_fake.channel_messages("ops")
    assert f"Incident #{incident.pk}" in notice["text"] and "needs a person" in notice["text"]
    assert f"/admin/sre/incident/{incident.pk}/" in notice["text"]
    assert slack_fake.messages == [notice]
