"""Branch, commit, push, pull request and Slack notice: each once, through real git and the SDKs."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
from pathlib import Path

import pytest

from sre.integrations.github import (
    GitHubError,
    WebhookRejected,
    pull_request_open,
    webhook_verify,
)
from sre.workspace import PublishError, branch_publish, scratch_create
from tests.fakes.github import FakeGitHub
from tests.sre.conftest import git


@pytest.fixture
def remote(tmp_path: Path, repo: Path) -> Path:
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    git(repo, "push", "-q", str(bare), "main")
    return bare


@pytest.fixture
def scratch(tmp_path: Path, repo: Path):
    copy = scratch_create(source=repo, base_dir=tmp_path / "scratch", name="incident-7")
    copy.edit("app/api.py", 'payload["user_profile"]', 'payload.get("user_profile", {})')
    return copy


def test_a_branch_is_committed_and_pushed_once(scratch, remote):
    first = branch_publish(
        scratch, branch="sre/incident-7-keyerror", message="Fix incident #7", remote_url=str(remote)
    )
    assert first.committed and first.pushed
    again = branch_publish(
        scratch, branch="sre/incident-7-keyerror", message="Fix incident #7", remote_url=str(remote)
    )
    assert (again.commit, again.committed, again.pushed) == (first.commit, False, False)
    assert git(remote, "rev-parse", "sre/incident-7-keyerror").strip() == first.commit
    assert (
        git(remote, "log", "--format=%s", "-1", "sre/incident-7-keyerror").strip()
        == "Fix incident #7"
    )
    assert len(git(remote, "rev-list", "main..sre/incident-7-keyerror").split()) == 1


@pytest.mark.parametrize("staged", [False, True])
def test_a_try_that_died_after_making_the_branch_and_before_committing_is_finished(
    scratch, remote, staged
):
    """The branch exists at the base commit: the retry commits on it, never pushes the base."""
    git(scratch.path, "checkout", "--quiet", "-b", "sre/incident-7-keyerror")
    if staged:
        git(scratch.path, "add", "--all")
    published = branch_publish(
        scratch, branch="sre/incident-7-keyerror", message="Fix incident #7", remote_url=str(remote)
    )
    assert published.committed and published.pushed and published.commit != scratch.commit
    assert len(git(remote, "rev-list", "main..sre/incident-7-keyerror").split()) == 1
    shown = git(remote, "show", "--format=", "sre/incident-7-keyerror")
    assert 'payload.get("user_profile", {})' in shown


def test_without_a_remote_the_branch_is_local_only(scratch):
    published = branch_publish(scratch, branch="sre/incident-7", message="Fix")
    assert published.committed and not published.pushed


def test_a_different_branch_of_the_same_name_on_the_remote_is_never_overwritten(
    scratch,
    remote,
    repo,
    tmp_path,
):
    other = scratch_create(source=repo, base_dir=tmp_path / "other", name="x")
    other.edit("app/util.py", "def twice(x):", "def twice(y):")
    branch_publish(other, branch="sre/incident-7", message="Someone else", remote_url=str(remote))
    with pytest.raises(PublishError, match="never overwritten"):
        branch_publish(scratch, branch="sre/incident-7", message="Fix", remote_url=str(remote))


def test_nothing_to_commit_is_refused(repo, tmp_path):
    empty = scratch_create(source=repo, base_dir=tmp_path / "s", name="empty")
    with pytest.raises(PublishError, match="no changes"):
        branch_publish(empty, branch="sre/x", message="Fix")


@pytest.fixture
def github_fake():
    server = FakeGitHub().start()
    server.branches.add("sre/incident-7")
    yield server
    server.stop()


def open_pr(github_fake, **overrides):
    params = dict(
        token=github_fake.token,
        api_url=github_fake.url,
        repository=github_fake.repository,
        head="sre/incident-7",
        base="main",
        title="Fix KeyError: 'user_profile' in api.handler",
        body="Root cause: the upstream API stopped sending user_profile.",
    )
    return pull_request_open(**{**params, **overrides})


def test_a_pull_request_is_opened_once(github_fake):
    first = open_pr(github_fake)
    assert first.created and first.number == 1 and first.url.endswith("/pull/1")
    again = open_pr(github_fake)
    assert not again.created and again.number == 1
    assert len(github_fake.pulls) == 1


def test_github_errors_become_clear_project_errors(github_fake):
    with pytest.raises(GitHubError, match="401"):
        open_pr(github_fake, token="ghp_wrong")
    with pytest.raises(GitHubError, match="422"):
        open_pr(github_fake, head="sre/never-pushed")


def test_github_webhook_signatures():
    body = b'{"action":"closed"}'
    good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    webhook_verify(body=body, signature=good, secret="s3cret")
    with pytest.raises(WebhookRejected):
        webhook_verify(body=body, signature=good.replace("a", "b"), secret="s3cret")
    with pytest.raises(WebhookRejected, match="not set"):
        webhook_verify(body=body, signature=good, secret="")
