"""Filters of the review and run pages."""

from __future__ import annotations

import re

from django import template

register = template.Library()

_NOTES = re.compile(r"<scratchpad>(.*?)(?:</scratchpad>|\Z)", re.S)


@register.filter
def notes_split(text: str) -> list[tuple[str, str]]:
    """Claude's text as ("text", …) and ("notes", …) parts: <scratchpad> holds its own notes."""
    parts: list[tuple[str, str]] = []
    at = 0
    for match in _NOTES.finditer(text or ""):
        before = text[at : match.start()].strip("\n")
        if before.strip():
            parts.append(("text", before))
        parts.append(("notes", match.group(1).strip("\n")))
        at = match.end()
    rest = (text or "")[at:].strip("\n")
    if rest.strip() or not parts:
        parts.append(("text", rest))
    return parts


@register.filter
def has_notes(text: str) -> bool:
    return "<scratchpad>" in (text or "")
