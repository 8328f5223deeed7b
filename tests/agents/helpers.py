"""Shared steps for the engine's tests."""

from __future__ import annotations

from agents.models import AgentRun
from agents.services import run_start

SHIP = {"name": "gear", "quantity": 2, "address": "1 Main St"}


def start(worker, text: str = "Please ship two gears to 1 Main St.") -> AgentRun:
    with worker.committing():
        return run_start(
            toolset="toolbox", user_message=text, subject_type="toolbox.order", subject_id=7
        )


def assert_status(run: AgentRun, status: str) -> AgentRun:
    run.refresh_from_db()
    assert run.status == status, f"{run.status}: {run.status_reason}"
    return run


def tool_results(request) -> list[dict]:
    return [b for b in request.body["messages"][-1]["content"] if b.get("type") == "tool_result"]
