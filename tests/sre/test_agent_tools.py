"""The SRE agent's tools: refusals come back as is_error, secrets never reach Claude."""

from __future__ import annotations

import pytest

from agents.models import AgentRun, ToolCall
from agents.selectors import proposal_inbox
from sre.models import Incident, PatchProposal
from tests.sre.agent_steps import (  # noqa: F401
    FIX,
    PR,
    code_incident,
    start,
    tool_result,
)
from tests.sre.conftest import git

pytestmark = pytest.mark.django_db


def test_reads_outside_the_root_and_of_secrets_are_refused_as_errors(
    fake_anthropic, worker, sre_settings
):
    ids = fake_anthropic.push_tool_use(
        ("read_file", {"path": "../../etc/passwd"}),
        ("read_file", {"path": "/etc/passwd"}),
        ("read_file", {"path": ".env"}),
        ("read_file", {"path": "deploy.pem"}),
        ("read_file", {"path": "app/api.py", "start_line": 5, "end_line": 6}),
    )
    fake_anthropic.push_tool_use(("escalate_to_human", {"reason": "Nothing to fix here."}))
    start(worker, code_incident())
    outside, absolute, env, pem, good = (tool_result(fake_anthropic, i) for i in ids)
    assert outside["is_error"] and "outside the repository" in outside["content"]
    assert absolute["is_error"] and "outside the repository" in absolute["content"]
    assert env["is_error"] and "secrets" in env["content"]
    assert "hunter2" not in str(fake_anthropic.message_requests[-1].body)
    assert pem["is_error"] and "secrets" in pem["content"]
    assert good["is_error"] is False and 'payload["user_profile"]' in good["content"]
    assert good["content"].splitlines()[0].lstrip().startswith("5 |")
    incident = Incident.objects.get()
    assert incident.status == Incident.Status.ESCALATED
    assert AgentRun.objects.get().status == AgentRun.Status.ESCALATED


def test_an_edit_with_no_match_or_several_is_refused_and_changes_nothing(
    fake_anthropic, worker, sre_settings, repo
):
    ids = fake_anthropic.push_tool_use(
        ("edit_file", {"path": "app/api.py", "search": "no such text", "replace": "x"}),
        ("edit_file", {"path": "app/util.py", "search": "return x * 2", "replace": "x"}),
        ("edit_file", {"path": ".env", "search": "DATABASE", "replace": "x"}),
        ("search_code", {"query": "user_profile"}),
    )
    fake_anthropic.push_text("I could not make the change.")
    start(worker, code_incident())
    missing, several, secret, search = (tool_result(fake_anthropic, i) for i in ids)
    assert missing["is_error"] and "does not occur" in missing["content"]
    assert several["is_error"] and "occurs 2 times" in several["content"]
    assert secret["is_error"]
    assert search["is_error"] is False and search["content"].startswith("app/api.py:6:")
    # A run that ends without a patch hands the incident to a person.
    assert Incident.objects.get().status == Incident.Status.ESCALATED
    assert git(repo, "status", "--porcelain").strip() == "?? .env"


def test_a_proposal_with_no_diff_is_blocked_and_claude_is_told(
    fake_anthropic, worker, sre_settings
):
    [pr_id] = fake_anthropic.push_tool_use(("create_pull_request", PR))
    fake_anthropic.push_text("There was nothing to propose.")
    start(worker, code_incident())
    patch = PatchProposal.objects.get()
    assert patch.status == PatchProposal.Status.BLOCKED and patch.diff == ""
    call = ToolCall.objects.get(tool_use_id=pr_id)
    assert call.status == ToolCall.Status.BLOCKED and call.decision == ToolCall.Decision.BLOCKED
    assert not proposal_inbox().exists()  # nobody is asked to approve it
    result = tool_result(fake_anthropic, pr_id)
    assert result["is_error"] and "no changes" in result["content"]


def test_a_patch_that_does_not_compile_is_blocked(fake_anthropic, worker, sre_settings):
    bad = {**FIX, "replace": "profile = payload.get(("}
    fake_anthropic.push_tool_use(("edit_file", bad))
    [pr_id] = fake_anthropic.push_tool_use(("create_pull_request", PR))
    fake_anthropic.push_text("Blocked.")
    start(worker, code_incident())
    patch = PatchProposal.objects.get()
    assert patch.status == PatchProposal.Status.BLOCKED and not proposal_inbox().exists()
    assert [c["passed"] for c in patch.checks] == [True, False]
    assert patch.proposal.checked_in == "proposal"
    assert "app/api.py compiles" in tool_result(fake_anthropic, pr_id)["content"]


def test_the_check_command_runs_in_the_scratch_copy_and_its_result_is_kept(
    fake_anthropic, worker, sre_settings
):
    sre_settings.SRE_CHECK_COMMAND = "git diff --quiet"  # fails: the copy has changes
    sre_settings.SRE_CHECK_TIMEOUT = 30
    fake_anthropic.push_tool_use(("edit_file", FIX))
    fake_anthropic.push_tool_use(("create_pull_request", PR))
    start(worker, code_incident())
    patch = PatchProposal.objects.get()
    check = patch.checks[-1]
    assert check["name"] == "check: git diff --quiet" and check["passed"] is False
    assert not check["hard"] and patch.status == PatchProposal.Status.PROPOSED
    # A failed soft check warns the reviewer; the patch still waits in the inbox.
    assert list(proposal_inbox().values_list("pk", flat=True)) == [patch.tool_call_id]


def test_secrets_in_code_and_logs_are_redacted_before_they_reach_the_model(
    fake_anthropic, worker, sre_settings, repo, monkeypatch
):
    token = "ghp_" + "A1b2C3d4" * 5
    monkeypatch.setenv("SERVICE_API_SECRET", "plain-value-9876")
    sre_settings.SRE_REDACT_ENV = ["SERVICE_API_SECRET"]
    api = repo / "app" / "api.py"
    api.write_text(api.read_text() + f'\nGITHUB = "{token}"\nOTHER = "plain-value-9876"\n')
    git(repo, "commit", "-qam", "oops, a token")
    ids = fake_anthropic.push_tool_use(
        ("read_file", {"path": "app/api.py"}), ("search_code", {"query": "GITHUB"})
    )
    fake_anthropic.push_text("Done.")
    start(worker, code_incident(sample_text="KeyError: 'user_profile' key=plain-value-9876"))
    sent = str([r.body for r in fake_anthropic.message_requests])
    assert token not in sent and "plain-value-9876" not in sent
    assert "[REDACTED]" in tool_result(fake_anthropic, ids[0])["content"]
    assert "[REDACTED]" in tool_result(fake_anthropic, ids[1])["content"]
    assert (
        "[REDACTED]" in fake_anthropic.message_requests[0].body["messages"][0]["content"][0]["text"]
    )
