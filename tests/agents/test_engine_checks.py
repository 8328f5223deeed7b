"""Policy checks run before review (`prepare`) and the domain's own approval rules (`authorize`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import AgentRun, AuditEvent, ToolCall
from agents.registry import toolset_get
from agents.services import InvalidTransition, agents_sweep, tool_call_approve
from tests.agents.helpers import SHIP, assert_status, start, tool_results
from tests.factories.users import user_create
from tests.toolbox.models import Shipment

pytestmark = pytest.mark.django_db
TC = ToolCall.Status


def approver():
    return user_create(perms=["toolbox.approve_shipment"])


def test_checks_run_before_review_and_are_recorded(fake_anthropic, worker, widgets):
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", {**SHIP, "quantity": 6}))
    run = start(worker)
    worker.drain()
    assert_status(run, AgentRun.Status.AWAITING_APPROVAL)
    call = ToolCall.objects.get(tool_use_id=ship_id)
    assert call.status == TC.AWAITING_APPROVAL
    assert [(c["name"], c["passed"], c["hard"]) for c in call.checks] == [
        ("widget exists", True, True),
        ("in stock", True, True),
        ("small order", False, False),  # a soft failure: shown to the reviewer, not blocking
    ]
    event = AuditEvent.objects.get(tool_call=call, kind="tool.checked")
    assert event.message == "10 gear in stock before this shipment."


def test_a_hard_failure_blocks_the_call_and_claude_is_told(fake_anthropic, worker, widgets):
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", {**SHIP, "name": "sprocket"}))
    fake_anthropic.push_text("Only one sprocket is in stock; I will ask the customer.")
    run = start(worker)
    worker.drain()
    assert_status(run, AgentRun.Status.COMPLETED)
    call = ToolCall.objects.get(tool_use_id=ship_id)
    assert call.status == TC.BLOCKED and call.decision == ToolCall.Decision.BLOCKED
    [result] = tool_results(fake_anthropic.message_requests[-1])
    assert result["is_error"] is True
    assert "cannot be approved" in result["content"] and "in stock: 1 in stock" in result["content"]
    with pytest.raises(InvalidTransition):
        tool_call_approve(tool_call_id=call.pk, user=approver())
    assert Shipment.objects.count() == 0


def test_authorize_applies_the_domains_rule_on_every_approval(fake_anthropic, worker, widgets):
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    start(worker)
    worker.drain()
    call = ToolCall.objects.get(tool_use_id=ship_id)
    with pytest.raises(InvalidTransition, match="not raise it"):
        tool_call_approve(
            tool_call_id=call.pk, user=approver(), edited_input={**SHIP, "quantity": 3}
        )
    call.refresh_from_db()
    assert call.status == TC.AWAITING_APPROVAL and call.decision is None


def test_checks_that_cannot_run_are_retried_and_nobody_approves_meanwhile(
    fake_anthropic, worker, widgets, monkeypatch
):
    toolset = toolset_get("toolbox")
    real = toolset.tools["ship_widget"]

    def unreachable(context, value):
        raise ConnectionError("inventory service is down")

    monkeypatch.setitem(toolset.tools, "ship_widget", replace(real, prepare=unreachable))
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    run = start(worker)
    worker.drain()
    assert_status(run, AgentRun.Status.AWAITING_APPROVAL)
    call = ToolCall.objects.get(tool_use_id=ship_id)
    assert call.status == TC.PREPARING and call.checks is None
    with pytest.raises(InvalidTransition):
        tool_call_approve(tool_call_id=call.pk, user=approver())

    monkeypatch.setitem(toolset.tools, "ship_widget", real)  # the service is back
    with worker.committing():
        report = agents_sweep(now=timezone.now() + timedelta(minutes=5))
    assert report.calls_queued == 1
    worker.drain()
    call.refresh_from_db()
    assert call.status == TC.AWAITING_APPROVAL and call.checks
