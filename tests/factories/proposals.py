"""Proposals as the engine leaves them, without a model in the loop: for list and page tests."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.utils import timezone

from agents.models import AgentRun, Approval, Proposal, ToolCall


def proposal_waiting(
    *,
    toolset: str,
    tool_name: str,
    permission: str,
    input: dict[str, Any],
    summary: str = "",
    checks: list[dict[str, Any]] = (),
    hours: float = 0,
    subject: tuple[str, Any] = ("", ""),
    call_status: str = ToolCall.Status.AWAITING_APPROVAL,
    approved_by: Any = None,
    **fields: Any,
) -> Proposal:
    """A run, its consequential call and the call's proposal, checked `hours` ago.

    `approved_by` gives it a first approval (and a need for two); `fields` go to the Proposal.
    """
    run = AgentRun.objects.create(
        toolset=toolset,
        prompt_name=toolset,
        prompt_version=1,
        system="",
        model="replay",
        backend="replay",
        max_tokens=1024,
        status=AgentRun.Status.AWAITING_APPROVAL,
        subject_type=subject[0],
        subject_id=str(subject[1]),
    )
    call = ToolCall.objects.create(
        run=run,
        tool_use_id=f"toolu_{uuid.uuid4().hex[:12]}",
        turn=1,
        position=0,
        tool_name=tool_name,
        input_proposed=input,
        requires_approval=True,
        approval_permission=permission,
        status=call_status,
        checks=list(checks),
    )
    since = timezone.now() - timedelta(hours=hours)
    if approved_by is not None:
        fields.setdefault("approvals_required", 2)
    proposal = Proposal.objects.create(
        tool_call=call,
        toolset=toolset,
        tool_name=tool_name,
        summary=summary,
        checks=list(checks),
        checked_at=since,
        checked_in="proposal",
        waiting_since=since,
        **fields,
    )
    if approved_by is not None:
        Approval.objects.create(proposal=proposal, user=approved_by)
    return proposal
