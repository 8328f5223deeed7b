"""What the patch review page needs beyond its context: the diff by file, and where it goes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django import template
from django.conf import settings

from sre.diffs import DiffFile, diff_files
from sre.services.publishing import github_configured

register = template.Library()


@register.filter(name="diff_files")
def diff_files_filter(diff: str) -> list[DiffFile]:
    """The diff per file, with line numbers and folded context (sre.diffs.diff_files)."""
    return diff_files(diff or "")


@register.simple_tag
def patch_publish_plan(patch: Any) -> dict[str, Any]:
    """What approving this patch really does, with the settings as they are now."""
    remote = bool(settings.SRE_GIT_REMOTE)
    pull_request = remote and github_configured()
    scratch = Path(settings.SRE_SCRATCH_DIR) / f"incident-{patch.incident_id}"
    if pull_request:
        label = "Approve: push the branch and open the pull request"
    elif remote:
        label = "Approve: push the branch (no pull request: GitHub is not configured)"
    else:
        label = "Approve: make the branch locally (no push, no pull request)"
    return {
        "remote": remote,
        "github": github_configured(),
        "repository": settings.GITHUB_REPOSITORY,
        "pull_request": pull_request,
        "scratch": str(scratch),
        "label": label,
    }
