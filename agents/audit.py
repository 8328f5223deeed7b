"""Writing audit events: one call, inside the transaction of the change it records."""

from __future__ import annotations

from typing import Any

from agents.models import AgentRun, AuditEvent, ToolCall


def audit_record(
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
    """Append one audit event. Call it inside the transaction of the change it describes."""
    if run is not None and not subject_type:
        subject_type, subject_id = run.subject_type, run.subject_id
    return AuditEvent.objects.create(
        kind=kind,
        message=message,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        run=run,
        tool_call=tool_call,
        subject_type=subject_type,
        subject_id=str(subject_id),
        data=data or {},
    )
