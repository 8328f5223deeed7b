"""Shared steps for the console's admin tests: real runs through the wire-level fake."""

from __future__ import annotations

from django.urls import reverse

from agents.models import AgentRun, ToolCall
from agents.services import run_start

SHIP = {"name": "gear", "quantity": 2, "address": "1 Main St"}
THINKING = "<scratchpad>Stock is 10, enough for two. Ship them.</scratchpad>"


def run_awaiting(fake_anthropic, worker, *, subject_id: int = 7) -> tuple[AgentRun, ToolCall]:
    """Start a run that looks up a widget, then proposes a shipment that needs approval."""
    fake_anthropic.push_tool_use(
        ("lookup_widget", {"name": "gear"}), text="<scratchpad>Check stock first.</scratchpad>"
    )
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP), text=THINKING)
    with worker.committing():
        run = run_start(
            toolset="toolbox",
            user_message="Please ship two gears to 1 Main St.",
            subject_type="toolbox.order",
            subject_id=subject_id,
        )
    worker.drain()
    run.refresh_from_db()
    assert run.status == AgentRun.Status.AWAITING_APPROVAL, run.status_reason
    return run, ToolCall.objects.get(tool_use_id=ship_id)


def review_url(call: ToolCall) -> str:
    return reverse("admin:agents_toolcall_review", args=[call.pk])


def page_text(response) -> str:
    return response.content.decode()
