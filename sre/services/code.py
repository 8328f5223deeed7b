"""The configured repository, an incident's scratch copy of it, and redaction by settings."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from agents.registry import ToolError
from sre.workspace import ScratchCopy, redact, scratch_create


def repo_root() -> Path:
    """The deployed repository (SRE_REPO_ROOT); a ToolError when none is configured."""
    if not settings.SRE_REPO_ROOT:
        raise ToolError("No repository is configured (SRE_REPO_ROOT is empty): no code to read.")
    root = Path(settings.SRE_REPO_ROOT)
    if not (root / ".git").exists():
        raise ToolError("The configured repository (SRE_REPO_ROOT) is not a git checkout.")
    return root


def deny_paths() -> tuple[str, ...]:
    return tuple(settings.SRE_DENY_PATHS)


def incident_scratch(*, incident_id: int) -> ScratchCopy:
    """The incident's scratch copy at the deployed commit (made on first use, then reused)."""
    return scratch_create(
        source=repo_root(),
        base_dir=Path(settings.SRE_SCRATCH_DIR),
        name=f"incident-{incident_id}",
        deny=deny_paths(),
    )


def text_redact(text: str) -> str:
    """Mask secrets by pattern and the values of SRE_REDACT_ENV; for all text sent to Claude."""
    return redact(text or "", env_names=settings.SRE_REDACT_ENV)
