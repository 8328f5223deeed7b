"""The configured repository, an incident's scratch copy of it, and masking what it holds."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from agents.redaction import mask
from agents.registry import ToolError
from sre.workspace import ScratchCopy, scratch_create


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
    """Text with its secrets masked: what the SRE tools keep and show (the engine masks again)."""
    return mask(text or "")
