"""Writing audit events: one call, inside the transaction of the change it records."""

from __future__ import annotations

from typing import Any

from agents.models import AgentRun, AuditEvent, ToolCall


def nul_free(value: Any) -> Any:
    """`value` with every NUL in its strings replaced by U+FFFD, recursively.

    PostgreSQL's text and jsonb cannot hold NUL, which Claude's tool input, a tool's output or a
    hostile mail can carry; SQLite can. Stored the same on both, the row is never refused.
    """
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, list):
        return [nul_free(v) for v in value]
    if isinstance(value, dict):
        return {nul_free(k): nul_free(v) for k, v in value.items()}
    return value


def audit_event(
    *,
    kind: str,
    message: str = "",
    actor: Any = None,
    run: AgentRun | None = None,
    tool_call: ToolCall | None = None,
    subject_type: str = "",
    subject_id: str | int = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """An audit event not yet saved: for a change that saves its events together (bulk)."""
    if run is not None and not subject_type:
        subject_type, subject_id = run.subject_type, run.subject_id
    return AuditEvent(
        kind=kind,
        message=nul_free(message),
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        run=run,
        tool_call=tool_call,
        subject_type=subject_type,
        subject_id=str(subject_id),
        data=nul_free(data or {}),
    )


def audit_record(**fields: Any) -> AuditEvent:
    """Append one audit event (`audit_event`'s fields), inside the transaction of its change."""
    event = audit_event(**fields)
    event.save(force_insert=True)
    return event
