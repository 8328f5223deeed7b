"""The approvals queue and review page, end to end: a person's POST decides, a worker runs it."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from agents.models import AgentRun, AuditEvent, ToolCall
from agents.services import run_start
from tests.agents.admin_steps import SHIP, THINKING, page_text, review_url, run_awaiting
from tests.factories.users import user_create
from tests.toolbox.models import Shipment, Widget

pytestmark = pytest.mark.django_db

APPROVER = ["toolbox.approve_shipment", "agents.view_toolcall"]
QUEUE = "admin:agents_toolcall_approvals"


@pytest.fixture
def awaiting(fake_anthropic, worker, widgets) -> tuple[AgentRun, ToolCall]:
    return run_awaiting(fake_anthropic, worker)


def _status(call: ToolCall) -> str:
    call.refresh_from_db()
    return call.status


def test_queue_lists_waiting_calls_oldest_first(client, fake_anthropic, worker, widgets):
    first_run, first = run_awaiting(fake_anthropic, worker, subject_id=1)
    second_run, second = run_awaiting(fake_anthropic, worker, subject_id=2)
    client.force_login(user_create(perms=APPROVER))
    response = client.get(reverse(QUEUE))
    assert response.status_code == 200
    rows = response.context["rows"]
    assert [row["call"].pk for row in rows] == [first.pk, second.pk]
    assert rows[0]["agent"] == "Warehouse" and rows[0]["can_decide"]
    assert rows[0]["age"].total_seconds() >= 0
    text = page_text(response)
    assert f"run #{first_run.pk}" in text and "2 × gear to 1 Main St" in text
    assert "2 waiting for a person" in text


def test_an_approver_without_the_log_permission_sees_only_their_calls(client, awaiting):
    _, ship = awaiting
    client.force_login(user_create(perms=["toolbox.approve_shipment"]))
    assert [row["call"] for row in client.get(reverse(QUEUE)).context["rows"]] == [ship]
    assert client.get(review_url(ship)).status_code == 200
    assert client.get(reverse("admin:agents_toolcall_changelist")).status_code == 403
    client.force_login(user_create(perms=[]))
    assert client.get(reverse(QUEUE)).status_code == 403
    assert client.get(review_url(ship)).status_code == 403


def test_review_page_shows_the_context_the_call_and_its_validation(client, awaiting):
    run, ship = awaiting
    client.force_login(user_create(perms=APPROVER))
    response = client.get(review_url(ship))
    text = page_text(response)
    assert "&lt;scratchpad&gt;Stock is 10, enough for two. Ship them.&lt;/scratchpad&gt;" in text
    assert "Please ship two gears to 1 Main St." in text
    assert "the call under review" in text
    assert json.loads(response.context["input_json"]) == SHIP
    assert response.context["validation"].valid
    assert [m.role for m in response.context["conversation"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    for button in ("Approve as proposed", "Approve with this input", 'value="Reject"'):
        assert button in text
    assert THINKING.replace("<", "&lt;").replace(">", "&gt;") in text


def test_approve_through_the_page_then_the_call_runs(client, fake_anthropic, worker, awaiting):
    run, ship = awaiting
    approver = user_create(perms=APPROVER)
    client.force_login(approver)
    with worker.committing():
        response = client.post(review_url(ship), {"action": "approve", "note": "ok"})
    assert response.status_code == 302 and response["Location"] == reverse(QUEUE)
    assert _status(ship) == ToolCall.Status.QUEUED and ship.decided_by == approver
    fake_anthropic.push_text("Shipped two gears.")
    worker.drain()
    assert _status(ship) == ToolCall.Status.SUCCEEDED
    assert Shipment.objects.get().quantity == 2 and Widget.objects.get(name="gear").stock == 8
    run.refresh_from_db()
    assert run.status == AgentRun.Status.COMPLETED
    followed = client.get(reverse(QUEUE))
    assert "Approved ship_widget as proposed" in page_text(followed)
    assert "Nothing is waiting for approval." in page_text(followed)


def test_edit_then_approve_checks_json_and_the_tool_model(client, fake_anthropic, worker, awaiting):
    _, ship = awaiting
    client.force_login(user_create(perms=APPROVER))
    events = AuditEvent.objects.count()

    response = client.post(review_url(ship), {"action": "edit", "edited_input": "{not json"})
    assert response.status_code == 200
    assert "This is not valid JSON" in page_text(response)
    assert "{not json" in page_text(response)  # the reviewer's text is kept to fix

    response = client.post(review_url(ship), {"action": "edit", "edited_input": "[1, 2]"})
    assert "must be a JSON object" in page_text(response)

    bad = json.dumps({**SHIP, "quantity": 0})
    response = client.post(review_url(ship), {"action": "edit", "edited_input": bad})
    assert response.status_code == 200
    assert "The edited input is not valid" in page_text(response)
    assert "quantity: Input should be greater than 0" in page_text(response)
    assert _status(ship) == ToolCall.Status.AWAITING_APPROVAL and ship.input_executed is None
    assert AuditEvent.objects.count() == events  # nothing was written

    good = json.dumps({**SHIP, "quantity": 1})
    with worker.committing():
        response = client.post(review_url(ship), {"action": "edit", "edited_input": good})
    assert response.status_code == 302
    fake_anthropic.push_text("Shipped one.")
    worker.drain()
    assert _status(ship) == ToolCall.Status.SUCCEEDED
    assert ship.input_executed == {**SHIP, "quantity": 1} and ship.input_proposed == SHIP
    assert Shipment.objects.get().quantity == 1
    assert AuditEvent.objects.filter(kind="tool.approved_with_edit").count() == 1


def test_reject_needs_a_reason_and_tells_claude(client, fake_anthropic, worker, awaiting):
    run, ship = awaiting
    client.force_login(user_create(perms=APPROVER))
    response = client.post(review_url(ship), {"action": "reject", "reason": "  "})
    assert response.status_code == 200 and "A rejection needs a reason" in page_text(response)
    assert _status(ship) == ToolCall.Status.AWAITING_APPROVAL

    fake_anthropic.push_text("Understood, not shipping.")
    with worker.committing():
        response = client.post(
            review_url(ship), {"action": "reject", "reason": "Address is a PO box"}
        )
    assert response.status_code == 302
    worker.drain()
    assert (
        _status(ship) == ToolCall.Status.REJECTED and ship.decision_reason == "Address is a PO box"
    )
    last = fake_anthropic.message_requests[-1].body["messages"][-1]["content"][0]
    assert last["is_error"] is True and "Address is a PO box" in last["content"]
    assert Shipment.objects.count() == 0
    run.refresh_from_db()
    assert run.status == AgentRun.Status.COMPLETED


def test_staff_without_the_tools_permission_sees_no_buttons_and_gets_403(client, awaiting):
    _, ship = awaiting
    client.force_login(user_create(perms=["agents.view_toolcall", "agents.view_agentrun"]))
    text = page_text(client.get(review_url(ship)))
    assert "Approve as proposed" not in text and 'value="Reject"' not in text
    assert "needs the permission <code>toolbox.approve_shipment</code>" in text
    for data in (
        {"action": "approve"},
        {"action": "edit", "edited_input": json.dumps(SHIP)},
        {"action": "reject", "reason": "no"},
    ):
        assert client.post(review_url(ship), data).status_code == 403
    assert _status(ship) == ToolCall.Status.AWAITING_APPROVAL and ship.decision is None


def test_double_approve_shows_a_message_and_runs_once(client, fake_anthropic, worker, awaiting):
    _, ship = awaiting
    client.force_login(user_create(perms=APPROVER))
    with worker.committing():
        first = client.post(review_url(ship), {"action": "approve"})
        second = client.post(review_url(ship), {"action": "approve"}, follow=True)
    assert first.status_code == 302
    assert second.status_code == 200
    text = page_text(second)
    assert "Nothing was changed" in text and "not awaiting approval" in text
    assert "Approve as proposed" not in text  # the page now shows the decided call
    fake_anthropic.push_text("Shipped.")
    worker.drain()
    assert Shipment.objects.count() == 1
    assert AuditEvent.objects.filter(kind="tool.approved").count() == 1


def test_decisions_need_the_csrf_token(awaiting):
    _, ship = awaiting
    client = Client(enforce_csrf_checks=True)
    client.force_login(user_create(perms=APPROVER))
    assert client.post(review_url(ship), {"action": "approve"}).status_code == 403
    assert _status(ship) == ToolCall.Status.AWAITING_APPROVAL


def test_a_cancelled_run_cannot_be_approved(client, awaiting):
    run, ship = awaiting
    user = user_create(perms=[*APPROVER, "agents.cancel_agentrun", "agents.view_agentrun"])
    client.force_login(user)
    run_page = page_text(client.get(reverse("admin:agents_agentrun_change", args=[run.pk])))
    assert "Cancel run" in run_page
    cancel = reverse("admin:agents_agentrun_cancel", args=[run.pk])
    assert client.get(cancel).status_code == 405
    response = client.post(cancel, {"reason": "Order withdrawn"}, follow=True)
    assert "is cancelled" in page_text(response)
    run.refresh_from_db()
    assert run.status == AgentRun.Status.CANCELLED and "Order withdrawn" in run.status_reason
    assert _status(ship) == ToolCall.Status.CANCELLED
    assert "Cancel run" not in page_text(response)

    response = client.post(review_url(ship), {"action": "approve"}, follow=True)
    assert "Nothing was changed" in page_text(response)
    response = client.post(cancel, {"reason": "again"}, follow=True)
    assert "already cancelled" in page_text(response)


def test_cancel_needs_its_permission(client, awaiting):
    run, _ = awaiting
    client.force_login(user_create(perms=["agents.view_agentrun"]))
    assert "Cancel run" not in page_text(
        client.get(reverse("admin:agents_agentrun_change", args=[run.pk]))
    )
    response = client.post(reverse("admin:agents_agentrun_cancel", args=[run.pk]), {"reason": "x"})
    assert response.status_code == 403
    run.refresh_from_db()
    assert run.status == AgentRun.Status.AWAITING_APPROVAL


def test_review_page_shows_the_policy_checks_and_their_note(client, awaiting):
    _, ship = awaiting
    client.force_login(user_create(perms=APPROVER))
    response = client.get(review_url(ship))
    checks = response.context["checks"]
    assert checks.ran and [c["name"] for c in checks.items] == [
        "widget exists",
        "in stock",
        "small order",
    ]
    assert checks.failed == [] and checks.note == "10 gear in stock before this shipment."
    text = page_text(response)
    assert "10 in stock" in text and "10 gear in stock before this shipment." in text
    queue = client.get(reverse(QUEUE))
    assert "checks passed" in page_text(queue)
    assert "when it was proposed" in text  # the page says when the checks last ran


def test_the_tools_own_rule_refuses_an_edit_in_place(client, awaiting):
    _, ship = awaiting
    client.force_login(user_create(perms=APPROVER))
    events = AuditEvent.objects.count()
    raised = json.dumps({**SHIP, "quantity": 3})
    response = client.post(review_url(ship), {"action": "edit", "edited_input": raised})
    assert response.status_code == 200
    text = page_text(response)
    assert "may lower the quantity Claude proposed, not raise it" in text
    assert "&quot;quantity&quot;: 3" in text  # the edit is kept to correct
    assert _status(ship) == ToolCall.Status.AWAITING_APPROVAL
    assert AuditEvent.objects.count() == events


def test_a_blocked_call_has_nothing_to_decide(client, fake_anthropic, worker, widgets):
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", {**SHIP, "name": "sprocket"}))
    fake_anthropic.push_text("Only one sprocket; asking the customer.")
    with worker.committing():
        run_start(toolset="toolbox", user_message="Ship two sprockets.")
    worker.drain()
    call = ToolCall.objects.get(tool_use_id=ship_id)
    assert call.status == ToolCall.Status.BLOCKED
    client.force_login(user_create(perms=APPROVER))
    assert client.get(reverse(QUEUE)).context["rows"] == []
    text = page_text(client.get(review_url(call)))
    assert "Blocked by its checks" in text and "Approve as proposed" not in text
    assert "1 in stock" in text


def test_cancel_selected_runs_from_the_list(client, fake_anthropic, worker, widgets):
    first, _ = run_awaiting(fake_anthropic, worker, subject_id=1)
    second, _ = run_awaiting(fake_anthropic, worker, subject_id=2)
    url = reverse("admin:agents_agentrun_changelist")
    client.force_login(user_create(perms=["agents.view_agentrun"]))
    assert "cancel_selected" not in page_text(client.get(url))
    client.force_login(user_create(perms=["agents.view_agentrun", "agents.cancel_agentrun"]))
    assert "cancel_selected" in page_text(client.get(url))
    response = client.post(
        url, {"action": "cancel_selected", "_selected_action": [first.pk]}, follow=True
    )
    assert "1 run(s) cancelled; 0 already finished." in page_text(response)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == AgentRun.Status.CANCELLED
    assert second.status == AgentRun.Status.AWAITING_APPROVAL
