"""Publishing an approved patch: branch, commit, push, pull request — each once.

The handler of create_pull_request calls `patch_publish` in a worker, outside any transaction,
inside its tool call's execution: the engine claimed the call (`executing`) after a person's
approval and checked the patch once more. Each step first looks for what an earlier attempt
already made (the branch, the remote ref, the pull request for the head branch) and records
what it did in its own transaction, so a retried task makes no second branch, commit or pull
request. The proposal's notice (agents.notices) tells Slack what came of it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from agents.models import ToolCall
from agents.registry import RetryLater, ToolError
from sre.integrations.github import GitHubError, pull_request_open
from sre.models import Incident, PatchProposal
from sre.services.code import incident_scratch
from sre.services.incidents import incident_open_pr
from sre.services.patches import patch_audit
from sre.workspace import PublishError, branch_publish

PR = PatchProposal.PullRequest


def incident_url(incident_id: int) -> str:
    path = reverse("admin:sre_incident_change", args=[incident_id])
    return settings.CONSOLE_URL.rstrip("/") + path


def github_configured() -> bool:
    return bool(settings.GITHUB_TOKEN and settings.GITHUB_REPOSITORY)


def _save(patch_id: int, **fields: Any) -> None:
    with transaction.atomic():
        PatchProposal.objects.filter(pk=patch_id).update(**fields, updated_at=timezone.now())


def _fail(patch: PatchProposal, message: str) -> None:
    with transaction.atomic():
        PatchProposal.objects.filter(pk=patch.pk).update(notes=message, updated_at=timezone.now())
        patch.refresh_from_db()
        patch_audit(patch, "publish_failed", message=message)


def patch_publish(*, patch_id: int) -> dict[str, Any]:
    """Make the approved patch's branch, push it and open its pull request."""
    patch = PatchProposal.objects.select_related("tool_call__run", "incident").get(pk=patch_id)
    call = patch.tool_call
    if call.status != ToolCall.Status.EXECUTING or call.decided_by_id is None:
        raise ToolError(
            f"Patch #{patch.pk} stands at “{patch.get_state_display()}”: not published."
        )
    approver = call.decided_by
    incident = patch.incident
    notes: list[str] = []
    # 1. Branch and commit in the scratch copy, then push (each skipped when already done).
    try:
        scratch = incident_scratch(incident_id=incident.pk)
    except ToolError as error:
        _fail(patch, str(error))
        raise
    if not patch.commit and scratch.diff() != patch.diff:
        _fail(patch, "The scratch copy changed after review; the reviewed diff was not published.")
        raise ToolError("The code changed after the review, so nothing was published.")
    try:
        published = branch_publish(
            scratch,
            branch=patch.branch,
            message=f"Fix incident #{incident.pk}: {patch.title}\n\n{patch.root_cause}\n\n"
            f"Incident: {incident_url(incident.pk)}",
            remote_url=settings.SRE_GIT_REMOTE,
        )
    except (PublishError, RuntimeError) as error:  # RuntimeError: a git command failed
        _fail(patch, str(error))
        raise ToolError(f"The branch could not be published: {error}") from error
    _save(patch.pk, commit=published.commit, pushed=bool(settings.SRE_GIT_REMOTE))
    notes.append(f"Branch {patch.branch} at {published.commit[:12]}.")
    if not settings.SRE_GIT_REMOTE:
        notes.append("No git remote is configured (SRE_GIT_REMOTE): the branch is local only.")
    # 2. The pull request (PyGithub finds the one already open for the head branch).
    pr_number, pr_url = patch.pr_number, patch.pr_url
    if github_configured() and settings.SRE_GIT_REMOTE and not pr_number:
        try:
            pull = pull_request_open(
                token=settings.GITHUB_TOKEN,
                api_url=settings.GITHUB_API_URL,
                repository=settings.GITHUB_REPOSITORY,
                head=patch.branch,
                base=settings.SRE_BASE_BRANCH,
                title=patch.title,
                body=f"Fixes incident #{incident.pk}: {incident.title}\n\n"
                f"## Root cause\n\n{patch.root_cause}\n\n"
                f"Proposed by the SRE agent, approved by {approver}.\n\n"
                f"Incident: {incident_url(incident.pk)}",
            )
        except GitHubError as error:
            if error.retryable:
                raise RetryLater(str(error)) from error
            _fail(patch, str(error))
            raise ToolError(f"The branch was pushed but no pull request opened: {error}") from error
        pr_number, pr_url = pull.number, pull.url
        _save(patch.pk, pr_number=pr_number, pr_url=pr_url, pr_state=PR.OPEN)
    elif not github_configured():
        notes.append("GitHub is not configured (GITHUB_TOKEN, GITHUB_REPOSITORY): no pull request.")
    elif not settings.SRE_GIT_REMOTE:
        notes.append("No pull request without a pushed branch.")
    if pr_url:
        notes.append(f"Pull request #{pr_number}: {pr_url}")
    # 3. Record the outcome.
    with transaction.atomic():
        if PatchProposal.objects.filter(pk=patch.pk, published_at__isnull=True).update(
            notes=" ".join(notes), published_at=timezone.now(), updated_at=timezone.now()
        ):
            patch.refresh_from_db()
            patch_audit(patch, "published", message=" ".join(notes))
            if (
                pr_number
                and Incident.objects.filter(
                    pk=incident.pk, status=Incident.Status.PATCH_PROPOSED
                ).exists()
            ):
                incident_open_pr(incident_id=incident.pk, reason=f"Pull request #{pr_number}.")
    return {
        "branch": patch.branch,
        "commit": published.commit,
        "pushed": bool(settings.SRE_GIT_REMOTE),
        "pull_request": pr_url or None,
        "notes": notes,
        "approved_by_a_person": True,
    }
