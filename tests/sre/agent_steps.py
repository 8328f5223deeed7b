"""Steps shared by the SRE agent tests: a code incident, a scripted Claude, the fakes wired in."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agents.models import ToolCall
from sre.agent import incident_agent_start
from sre.models import ErrorRequest, Incident, PatchProposal
from tests.fakes.github import FakeGitHub
from tests.fakes.slack import FakeSlack

W = datetime(2025, 3, 14, 9, 25, tzinfo=UTC)
TRACEBACK = """Internal Server Error: /api/profile
Traceback (most recent call last):
  File "/srv/service/app/api.py", line 6, in handler
    profile = payload["user_profile"]
KeyError: 'user_profile'"""
FIX = {
    "path": "app/api.py",
    "search": 'profile = payload["user_profile"]',
    "replace": 'profile = payload.get("user_profile", {})',
}
PR = {
    "title": "Fix KeyError: 'user_profile' in app/api.py",
    "root_cause": "The upstream reply no longer always carries user_profile; read it with .get.",
}


@pytest.fixture
def github_fake():
    server = FakeGitHub().start()
    yield server
    server.stop()


@pytest.fixture
def slack_fake():
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def remote(tmp_path: Path, repo: Path) -> Path:
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    subprocess.run(["git", "-C", str(repo), "push", "-q", str(bare), "main"], check=True)
    return bare


@pytest.fixture
def sre_settings(settings, tmp_path, repo):
    settings.SRE_REPO_ROOT = str(repo)
    settings.SRE_SCRATCH_DIR = str(tmp_path / "scratch")
    settings.SRE_DENY_PATHS = []
    settings.SRE_CHECK_COMMAND = ""
    settings.SRE_GIT_REMOTE = ""
    settings.GITHUB_TOKEN = ""
    settings.GITHUB_REPOSITORY = ""
    settings.SLACK_BOT_TOKEN = ""
    settings.SLACK_CHANNEL = ""
    settings.SLACK_CHANNELS = {}
    settings.GITHUB_WEBHOOK_SECRET = "s3cret"
    return settings


@pytest.fixture
def wired(sre_settings, remote, github_fake, slack_fake):
    """Remote, GitHub and Slack all configured, each a local fake.

    With Slack configured the engine's notices post when a proposal starts waiting and update
    that message as it is decided; SLACK_CHANNEL is a channel ID, as the lookups need.
    """
    sre_settings.SRE_GIT_REMOTE = str(remote)
    sre_settings.GITHUB_TOKEN = github_fake.token
    sre_settings.GITHUB_REPOSITORY = github_fake.repository
    sre_settings.GITHUB_API_URL = github_fake.url
    sre_settings.SLACK_BOT_TOKEN = slack_fake.token
    sre_settings.SLACK_API_URL = slack_fake.url
    sre_settings.SLACK_CHANNEL = slack_fake.channel_id("ops")
    return sre_settings


def code_incident(**extra) -> Incident:
    incident = Incident.objects.create(
        fingerprint=f"tb1:{Incident.objects.count()}",
        fingerprint_version=1,
        category="code",
        title="KeyError: 'user_profile' (app/api.py in handler)",
        culprit="app/api.py in handler",
        exception_type="KeyError",
        exception_message="'user_profile'",
        request_path="/api/profile",
        sample_text=extra.pop("sample_text", TRACEBACK),
        first_seen_at=W,
        last_seen_at=W,
        occurrences=12,
        **extra,
    )
    ErrorRequest.objects.create(
        incident=incident,
        occurred_at=W,
        status=500,
        method="GET",
        path="/api/profile",
        line='10.0.0.7 - - [14/Mar/2025:09:25:01 +0000] "GET /api/profile HTTP/1.1" 500 145',
    )
    return incident


def start(worker, incident: Incident) -> None:
    with worker.committing():
        incident_agent_start(incident.pk)
    worker.drain()


def script_until_pull_request(fake_anthropic, *, fix: dict | None = None) -> str:
    """Claude reads api.py, edits it and proposes the pull request; returns that tool_use id."""
    fake_anthropic.push_tool_use(
        ("read_file", {"path": "app/api.py"}),
        text="<scratchpad>The traceback points at app/api.py line 6.</scratchpad>",
    )
    fake_anthropic.push_tool_use(("edit_file", fix or FIX))
    [pr_id] = fake_anthropic.push_tool_use(
        ("create_pull_request", PR),
        text="<scratchpad>Hypothesis: upstream omits user_profile; .get fixes it.</scratchpad>",
    )
    return pr_id


def proposed_patch(worker, fake_anthropic, **kwargs) -> PatchProposal:
    pr_id = script_until_pull_request(fake_anthropic, **kwargs)
    start(worker, code_incident())
    return PatchProposal.objects.get(tool_call__tool_use_id=pr_id)


def tool_result(fake_anthropic, tool_use_id: str) -> dict:
    for request in reversed(fake_anthropic.message_requests):
        for block in request.body["messages"][-1]["content"]:
            if block.get("type") == "tool_result" and block["tool_use_id"] == tool_use_id:
                return block
    raise AssertionError(f"no tool_result for {tool_use_id}")


def call_status(patch: PatchProposal) -> str:
    return ToolCall.objects.get(pk=patch.tool_call_id).status
