"""GitHub through PyGithub: the only module that imports it.

Opening a pull request is idempotent: an open or closed pull request for the same head branch
is found and returned instead of a second one being made. The client retries a POST that met a
5xx itself (GithubRetry), so a pull request whose first answer was lost is refused the second
time ("A pull request already exists"): that refusal, too, is answered by looking it up.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import github
from github import Auth, GithubException
from github.GithubRetry import GithubRetry
from github.Repository import Repository


class GitHubError(Exception):
    """GitHub refused or could not be reached; the message says which and why."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class WebhookRejected(Exception):
    """A GitHub webhook whose signature does not verify."""


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    state: str
    merged: bool
    head: str
    created: bool  # False when it already existed


def _client(*, token: str, api_url: str) -> github.Github:
    return github.Github(
        auth=Auth.Token(token),
        base_url=api_url.rstrip("/") or "https://api.github.com",
        timeout=30,
        retry=GithubRetry(total=3, backoff_factor=0.2),
        seconds_between_requests=None,
        seconds_between_writes=None,
    )


def _error(error: Exception, doing: str) -> GitHubError:
    if isinstance(error, GithubException):
        detail = error.data.get("message") if isinstance(error.data, dict) else str(error.data)
        errors = error.data.get("errors") if isinstance(error.data, dict) else None
        if errors:
            detail = f"{detail}: {errors}"
        return GitHubError(
            f"GitHub refused to {doing}: {error.status} {detail}",
            status=error.status,
            retryable=error.status is not None and (error.status >= 500 or error.status == 429),
        )
    return GitHubError(f"GitHub could not be reached to {doing}: {error}", retryable=True)


def pull_request_open(
    *, token: str, api_url: str, repository: str, head: str, base: str, title: str, body: str
) -> PullRequest:
    """Open a pull request from `head` into `base`, or return the one already open for `head`."""
    try:
        repo = _client(token=token, api_url=api_url).get_repo(repository)
        found = _pull_for(repo, repository=repository, head=head)
        if found is not None:
            return found
        try:
            created = repo.create_pull(base=base, head=head, title=title, body=body)
        except GithubException as error:
            # A 422 may be our own earlier POST, made before its answer was lost.
            found = (
                _pull_for(repo, repository=repository, head=head) if error.status == 422 else None
            )
            if found is None:
                raise
            return found
        return PullRequest(created.number, created.html_url, created.state, False, head, True)
    except (GithubException, OSError) as error:
        raise _error(error, "open the pull request") from error


def _pull_for(repo: Repository, *, repository: str, head: str) -> PullRequest | None:
    owner = repository.split("/", 1)[0]
    for existing in repo.get_pulls(state="all", head=f"{owner}:{head}"):
        return PullRequest(
            existing.number, existing.html_url, existing.state, existing.merged, head, False
        )
    return None


def webhook_verify(*, body: bytes, signature: str, secret: str) -> None:
    """Check X-Hub-Signature-256 (HMAC-SHA256 of the raw body) in constant time."""
    if not secret:
        raise WebhookRejected(
            "GITHUB_WEBHOOK_SECRET is not set, so every GitHub webhook is refused."
        )
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature or ""):
        raise WebhookRejected("The GitHub webhook signature does not match.")
