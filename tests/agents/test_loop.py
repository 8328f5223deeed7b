"""Whole tool-use loops through the real anthropic SDK and the wire-level fake."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import PermissionDenied

from agents import llm
from agents.models import AgentRun, AuditEvent, ModelCall, ToolCall
from agents.services import (
    InvalidToolInput,
    InvalidTransition,
    proposal_approve,
    proposal_reject,
)
from tests.agents.helpers import SHIP, assert_status, start, tool_results
from tests.factories.users import user_create
from tests.toolbox.models import Shipment, Widget

pytestmark = pytest.mark.django_db


def test_approval_gated_tool_waits_then_runs_once_approved(fake_anthropic, worker, widgets):
    fake_anthropic.push_tool_use(
        ("lookup_widget", {"name": "gear"}), text="<scratchpad>check</scratchpad>"
    )
    fake_anthropic.push_tool_use(("ship_widget", SHIP))
    run = start(worker)
    worker.drain()

    assert_status(run, AgentRun.Status.AWAITING_APPROVAL)
    assert worker.queued() == []  # nothing is held: no task, no process waits
    lookup, ship = ToolCall.objects.filter(run=run).order_by("turn")
    assert lookup.status == ToolCall.Status.SUCCEEDED
    assert json.loads(lookup.result) == {"name": "gear", "stock": 10}
    assert ship.status == ToolCall.Status.AWAITING_APPROVAL and ship.requires_approval
    assert Shipment.objects.count() == 0

    # The first result went back to Claude as a tool_result for the right id.
    second = fake_anthropic.message_requests[1]
    assert tool_results(second) == [
        {
            "type": "tool_result",
            "tool_use_id": lookup.tool_use_id,
            "content": lookup.result,
            "is_error": False,
            "cache_control": {"type": "ephemeral"},  # the newest turn is a cache breakpoint
        }
    ]

    # Every in-process cache is dropped, as if every process restarted; the run lives in the DB.
    llm._client.cache_clear()
    approver = user_create(perms=["toolbox.approve_shipment"])
    with worker.committing():
        proposal_approve(tool_call_id=ship.pk, user=approver)
    fake_anthropic.push_text("Shipped two gears.")
    worker.drain()

    run.refresh_from_db()
    ship.refresh_from_db()
    assert run.status == AgentRun.Status.COMPLETED
    assert ship.decision == ToolCall.Decision.APPROVED and ship.decided_by == approver
    assert Shipment.objects.get().quantity == 2
    assert Widget.objects.get(name="gear").stock == 8
    last = fake_anthropic.message_requests[-1]
    [result] = tool_results(last)
    assert result["tool_use_id"] == ship.tool_use_id and result["is_error"] is False
    assert json.loads(result["content"])["quantity"] == 2
    assert run.turns == 3 and ModelCall.objects.filter(run=run).count() == 3
    assert run.messages[-1]["role"] == "assistant"
    assert [m["role"] for m in run.messages] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    # With the newest turn a cache breakpoint, new input is written to the cache, not sent plain.
    assert run.cache_write_tokens > 0 and run.cache_read_tokens > 0 and run.cost_usd > 0
    kinds = list(AuditEvent.objects.filter(run=run).order_by("id").values_list("kind", flat=True))
    assert kinds[0] == "run.started" and "tool.approved" in kinds and kinds[-1] == "run.completed"


def test_requests_mark_system_and_tools_for_caching(fake_anthropic, worker, widgets):
    fake_anthropic.push_text("Nothing to do.")
    start(worker)
    worker.drain()
    body = fake_anthropic.message_requests[0].body
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert "<role>" in body["system"][0]["text"] and "<scratchpad>" in body["system"][0]["text"]
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    ship = next(t for t in body["tools"] if t["name"] == "ship_widget")
    assert ship["input_schema"]["properties"]["quantity"]["exclusiveMinimum"] == 0
    assert ship["input_schema"]["required"] == ["name", "quantity", "address"]


def test_reject_sends_the_reason_back_as_an_error(fake_anthropic, worker, widgets):
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    run = start(worker)
    worker.drain()
    call = ToolCall.objects.get(tool_use_id=ship_id)
    reviewer = user_create(perms=["toolbox.approve_shipment"])
    fake_anthropic.push_text("Understood, not shipping.")
    with worker.committing():
        proposal_reject(tool_call_id=call.pk, user=reviewer, reason="Customer asked to wait")
    worker.drain()
    run.refresh_from_db()
    call.refresh_from_db()
    assert run.status == AgentRun.Status.COMPLETED
    assert (
        call.status == ToolCall.Status.REJECTED and call.decision_reason == "Customer asked to wait"
    )
    [result] = tool_results(fake_anthropic.message_requests[-1])
    assert result["is_error"] is True and "Customer asked to wait" in result["content"]
    assert Shipment.objects.count() == 0


def test_reject_needs_a_reason(fake_anthropic, worker, widgets):
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    start(worker)
    worker.drain()
    call = ToolCall.objects.get(tool_use_id=ship_id)
    with pytest.raises(InvalidTransition):
        proposal_reject(
            tool_call_id=call.pk, user=user_create(perms=["toolbox.approve_shipment"]), reason=" "
        )
    call.refresh_from_db()
    assert call.status == ToolCall.Status.AWAITING_APPROVAL


def test_edit_then_approve_runs_the_edit_and_says_so(fake_anthropic, worker, widgets):
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    run = start(worker)
    worker.drain()
    call = ToolCall.objects.get(tool_use_id=ship_id)
    reviewer = user_create(perms=["toolbox.approve_shipment"])
    with pytest.raises(InvalidToolInput):
        proposal_approve(tool_call_id=call.pk, user=reviewer, edited_input={**SHIP, "quantity": 0})
    call.refresh_from_db()
    assert call.status == ToolCall.Status.AWAITING_APPROVAL and call.input_executed is None

    with worker.committing():
        proposal_approve(tool_call_id=call.pk, user=reviewer, edited_input={**SHIP, "quantity": 1})
    fake_anthropic.push_text("Shipped one.")
    worker.drain()
    call.refresh_from_db()
    assert_status(run, AgentRun.Status.COMPLETED)
    assert call.input_proposed == SHIP and call.input_executed == {**SHIP, "quantity": 1}
    assert Shipment.objects.get().quantity == 1
    [result] = tool_results(fake_anthropic.message_requests[-1])
    assert "edited your input" in result["content"] and '"quantity": 1' in result["content"]


def test_invalid_input_is_answered_with_an_error_and_the_run_goes_on(
    fake_anthropic, worker, widgets
):
    [bad_id] = fake_anthropic.push_tool_use(("ship_widget", {"name": "gear", "quantity": "lots"}))
    [good_id] = fake_anthropic.push_tool_use(("lookup_widget", {"name": "gear"}))
    fake_anthropic.push_text("Done.")
    run = start(worker)
    worker.drain()
    run.refresh_from_db()
    bad = ToolCall.objects.get(tool_use_id=bad_id)
    assert run.status == AgentRun.Status.COMPLETED
    assert bad.status == ToolCall.Status.INVALID and bad.is_error
    assert {e["loc"][0] for e in bad.validation_errors} == {"quantity", "address"}
    [result] = tool_results(fake_anthropic.message_requests[1])
    assert result["tool_use_id"] == bad_id and result["is_error"] is True
    assert "quantity" in result["content"] and "address" in result["content"]
    assert ToolCall.objects.get(tool_use_id=good_id).status == ToolCall.Status.SUCCEEDED


def test_unknown_tool_is_answered_with_an_error(fake_anthropic, worker, widgets):
    [call_id] = fake_anthropic.push_tool_use(("rm_rf", {"path": "/"}))
    fake_anthropic.push_text("Sorry.")
    start(worker)
    worker.drain()
    call = ToolCall.objects.get(tool_use_id=call_id)
    assert call.status == ToolCall.Status.INVALID
    assert "no tool named 'rm_rf'" in call.result


def test_two_tool_uses_in_one_reply_are_answered_together_in_order(fake_anthropic, worker, widgets):
    ids = fake_anthropic.push_tool_use(
        ("ship_widget", SHIP), ("lookup_widget", {"name": "sprocket"})
    )
    run = start(worker)
    worker.drain()
    run.refresh_from_db()
    # The lookup ran at once, but nothing goes back until the shipment is decided.
    assert run.status == AgentRun.Status.AWAITING_APPROVAL
    assert ToolCall.objects.get(tool_use_id=ids[1]).status == ToolCall.Status.SUCCEEDED
    assert len(fake_anthropic.message_requests) == 1

    fake_anthropic.push_text("All done.")
    with worker.committing():
        proposal_approve(
            tool_call_id=ToolCall.objects.get(tool_use_id=ids[0]).pk,
            user=user_create(perms=["toolbox.approve_shipment"]),
        )
    worker.drain()
    results = tool_results(fake_anthropic.message_requests[-1])
    assert [r["tool_use_id"] for r in results] == ids
    assert all(r["is_error"] is False for r in results)
    assert_status(run, AgentRun.Status.COMPLETED)


def test_approving_needs_the_tools_own_permission_not_staff(fake_anthropic, worker, widgets):
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    start(worker)
    worker.drain()
    call = ToolCall.objects.get(tool_use_id=ship_id)
    staff = user_create(perms=["agents.view_toolcall", "agents.change_agentrun"])
    with pytest.raises(PermissionDenied):
        proposal_approve(tool_call_id=call.pk, user=staff)
    with pytest.raises(PermissionDenied):
        proposal_reject(tool_call_id=call.pk, user=staff, reason="no")
    call.refresh_from_db()
    assert call.status == ToolCall.Status.AWAITING_APPROVAL and call.decision is None


def test_the_same_approval_twice_runs_once(fake_anthropic, worker, widgets):
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    start(worker)
    worker.drain()
    call = ToolCall.objects.get(tool_use_id=ship_id)
    approver = user_create(perms=["toolbox.approve_shipment"])
    with worker.committing():
        proposal_approve(tool_call_id=call.pk, user=approver)
    with pytest.raises(InvalidTransition):
        proposal_approve(tool_call_id=call.pk, user=approver)
    fake_anthropic.push_text("ok")
    worker.drain()
    assert Shipment.objects.count() == 1
    assert AuditEvent.objects.filter(kind="tool.approved").count() == 1
