"""Every refused call leaves its own audit event, and no input can make a step crash on storing."""

from __future__ import annotations

import pytest

from agents.models import AgentRun, AuditEvent, ModelCall, ToolCall
from tests.agents.helpers import assert_status, start

pytestmark = pytest.mark.django_db


def test_unknown_tools_invalid_input_and_a_tools_refusal_are_each_audited(
    fake_anthropic, worker, widgets
):
    fake_anthropic.push_tool_use(
        ("drop_database", {}),
        ("lookup_widget", {"name": 7, "extra": "x"}),
        ("lookup_widget", {"name": "no-such-widget"}),
    )
    fake_anthropic.push_text("Done.")
    run = start(worker)
    worker.drain()
    assert_status(run, AgentRun.Status.COMPLETED)
    events = {
        e.tool_call.tool_name + ":" + e.kind: e
        for e in AuditEvent.objects.filter(tool_call__isnull=False).select_related("tool_call")
    }
    assert events["drop_database:tool.refused"].data["reason"] == "unknown tool"
    assert events["lookup_widget:tool.refused"].data["reason"] == "invalid"
    assert "No widget named" in events["lookup_widget:tool.failed"].message


def test_a_nul_in_claudes_tool_input_is_stored_and_refused_not_a_crash(
    fake_anthropic, worker, widgets
):
    """PostgreSQL's jsonb refuses \\u0000: the step used to raise and leave the run running."""
    fake_anthropic.push_tool_use(("lookup_widget", {"name": "gear\x00; DROP TABLE"}))
    fake_anthropic.push_text("Done.")
    run = start(worker)
    worker.drain()
    assert_status(run, AgentRun.Status.COMPLETED)
    call = ToolCall.objects.get(run=run)
    assert call.input_proposed["name"] == "gear\ufffd; DROP TABLE"
    assert call.is_error and "No widget named" in call.result
    assert "\ufffd" in str(ModelCall.objects.filter(run=run).order_by("step").first().response)
