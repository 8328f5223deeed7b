"""Deciding from Slack: signed button presses go through the console's own services.

Invariant: a Slack interaction changes something only when it is signed by Slack, fresh, seen
for the first time, from a Slack user linked to a Countersign user who holds the permission,
for a tool allowed in Slack and under its threshold; the two-person rule and the checks apply
as in the console, and the approval records that it came from Slack.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from agents.models import Approval, AuditEvent, SlackIdentity, SlackInteraction, ToolCall
from agents.registry import toolset_get
from tests.agents.helpers import SHIP, start
from tests.agents.slack_steps import button, interaction_post, reason_form
from tests.factories.users import user_create
from tests.toolbox.models import Shipment

pytestmark = pytest.mark.django_db
TC = ToolCall.Status


@pytest.fixture
def allowed(settings):
    settings.SLACK_DECISION_TOOLS = ["ship_widget"]


def waiting(fake_anthropic, worker) -> ToolCall:
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    start(worker)
    worker.drain()
    return ToolCall.objects.get(tool_use_id=ship_id)


def linked(slack_user: str = "U1", perms=("toolbox.approve_shipment",)):
    user = user_create(perms=list(perms))
    SlackIdentity.objects.create(slack_user_id=slack_user, user=user)
    return user


def answers(slack) -> list[str]:
    return [body.get("text", "") for _, body in slack.responses]


def test_the_notice_offers_buttons_only_for_allowed_tools(
    fake_anthropic, worker, widgets, slack_fake, allowed
):
    waiting(fake_anthropic, worker)
    [actions] = [b for b in slack_fake.messages[0]["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == ["open", "approve", "reject"]


def test_a_valid_approval_from_slack_runs_once_and_records_the_channel(
    client, fake_anthropic, worker, widgets, slack_fake, allowed
):
    call = waiting(fake_anthropic, worker)
    ann = linked()
    fake_anthropic.push_text("Shipped.")
    respond = slack_fake.response_url("a")
    with worker.committing():
        response = interaction_post(client, button(call.pk, "approve", respond=respond))
    assert response.status_code == 200
    worker.drain()
    call.refresh_from_db()
    assert call.status == TC.SUCCEEDED and call.decided_by == ann
    assert Shipment.objects.count() == 1
    [approval] = Approval.objects.all()
    assert approval.channel == "slack" and approval.user == ann
    event = AuditEvent.objects.get(kind="tool.approved")
    assert event.data["channel"] == "slack" and event.actor == ann
    assert any("Approved" in text for text in answers(slack_fake))
    assert "approved by" in slack_fake.messages[0]["text"]  # the notice was updated


def test_a_forged_or_stale_request_changes_nothing(
    client, fake_anthropic, worker, widgets, slack_fake, allowed
):
    call = waiting(fake_anthropic, worker)
    linked()
    forged = interaction_post(client, button(call.pk, "approve"), secret="not-the-secret")
    assert forged.status_code == 401 and "not signed by Slack" in forged.json()["text"]
    stale = interaction_post(client, button(call.pk, "approve"), timestamp=int(time.time()) - 600)
    assert stale.status_code == 401 and "stale" in stale.json()["text"]
    unsigned = interaction_post(client, button(call.pk, "approve"), headers={})
    assert unsigned.status_code == 401
    worker.drain()
    call.refresh_from_db()
    assert call.status == TC.AWAITING_APPROVAL and not SlackInteraction.objects.exists()


def test_a_replayed_request_changes_nothing_and_says_so(
    client, fake_anthropic, worker, widgets, slack_fake, allowed, settings
):
    call = waiting(fake_anthropic, worker)
    linked()
    # Two approvals needed, so a replay that counted would be the (forbidden) second one.
    tools = toolset_get("toolbox").tools
    real = tools["ship_widget"]
    tools["ship_widget"] = replace(real, proposal=replace(real.proposal, approvals=lambda c: 2))
    try:
        payload = button(call.pk, "approve")
        with worker.committing():
            assert interaction_post(client, payload).status_code == 200
        again = interaction_post(client, payload)
        assert again.status_code == 200 and "received already" in again.json()["text"]
        worker.drain()
    finally:
        tools["ship_widget"] = real
    assert Approval.objects.count() == 1 and SlackInteraction.objects.count() == 1
    call.refresh_from_db()
    assert call.status == TC.AWAITING_APPROVAL


def test_an_unlinked_slack_user_changes_nothing(
    client, fake_anthropic, worker, widgets, slack_fake, allowed
):
    call = waiting(fake_anthropic, worker)
    slack_fake.user_add("U404", "nobody@example.com")
    with worker.committing():
        interaction_post(
            client, button(call.pk, "approve", user="U404", respond=slack_fake.response_url("x"))
        )
    worker.drain()
    assert "not linked" in answers(slack_fake)[-1]
    call.refresh_from_db()
    assert call.status == TC.AWAITING_APPROVAL and not Approval.objects.exists()


def test_a_slack_user_is_found_by_their_profile_email(
    client, fake_anthropic, worker, widgets, slack_fake, allowed
):
    call = waiting(fake_anthropic, worker)
    ann = user_create(perms=["toolbox.approve_shipment"])
    ann.email = "ann@shop.example"
    ann.save()
    slack_fake.user_add("U7", "Ann@Shop.example")
    fake_anthropic.push_text("Shipped.")
    with worker.committing():
        interaction_post(client, button(call.pk, "approve", user="U7"))
    worker.drain()
    call.refresh_from_db()
    assert call.decided_by == ann


def test_a_user_without_the_permission_changes_nothing(
    client, fake_anthropic, worker, widgets, slack_fake, allowed
):
    call = waiting(fake_anthropic, worker)
    linked(perms=["agents.view_toolcall"])
    with worker.committing():
        interaction_post(client, button(call.pk, "approve", respond=slack_fake.response_url("p")))
    worker.drain()
    assert "You may not decide" in answers(slack_fake)[-1]
    call.refresh_from_db()
    assert call.status == TC.AWAITING_APPROVAL


def test_over_the_threshold_slack_offers_only_the_console(
    client, fake_anthropic, worker, widgets, slack_fake, allowed, monkeypatch
):
    tools = toolset_get("toolbox").tools
    real = tools["ship_widget"]
    monkeypatch.setitem(
        tools,
        "ship_widget",
        replace(real, proposal=replace(real.proposal, slack_decidable=lambda record: False)),
    )
    call = waiting(fake_anthropic, worker)
    [actions] = [b for b in slack_fake.messages[0]["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == ["open"]
    linked()
    with worker.committing():  # a press Slack never offered, signed all the same
        interaction_post(client, button(call.pk, "approve", respond=slack_fake.response_url("t")))
    worker.drain()
    assert "console only" in answers(slack_fake)[-1]
    call.refresh_from_db()
    assert call.status == TC.AWAITING_APPROVAL


def test_a_tool_not_allowed_in_slack_is_refused(
    client, fake_anthropic, worker, widgets, slack_fake
):
    call = waiting(fake_anthropic, worker)
    linked()
    with worker.committing():
        interaction_post(client, button(call.pk, "approve", respond=slack_fake.response_url("n")))
    worker.drain()
    assert "console only" in answers(slack_fake)[-1]
    assert ToolCall.objects.get(pk=call.pk).status == TC.AWAITING_APPROVAL


def test_reject_asks_for_a_reason_then_tells_claude(
    client, fake_anthropic, worker, widgets, slack_fake, allowed
):
    call = waiting(fake_anthropic, worker)
    ann = linked()
    response = interaction_post(client, button(call.pk, "reject"))
    assert response.status_code == 200
    [opened] = slack_fake.views_opened
    assert opened["view"]["private_metadata"] == str(call.pk)
    empty = interaction_post(client, reason_form(call.pk, "  ", trigger="T2"))
    assert empty.json()["response_action"] == "errors"
    fake_anthropic.push_text("Not shipping.")
    with worker.committing():
        interaction_post(client, reason_form(call.pk, "The address is a PO box"))
    worker.drain()
    call.refresh_from_db()
    assert call.status == TC.REJECTED and call.decided_by == ann
    assert call.decision_reason == "The address is a PO box"
    last = fake_anthropic.message_requests[-1].body["messages"][-1]["content"][0]
    assert last["is_error"] and "PO box" in last["content"]
    assert AuditEvent.objects.get(kind="proposal.rejected").data["channel"] == "slack"


def test_the_two_person_rule_holds_from_slack(
    client, fake_anthropic, worker, widgets, slack_fake, allowed, monkeypatch
):
    tools = toolset_get("toolbox").tools
    real = tools["ship_widget"]
    monkeypatch.setitem(
        tools, "ship_widget", replace(real, proposal=replace(real.proposal, approvals=lambda c: 2))
    )
    call = waiting(fake_anthropic, worker)
    linked("U1")
    linked("U2")
    with worker.committing():
        interaction_post(client, button(call.pk, "approve", user="U1", trigger="A1"))
        interaction_post(
            client,
            button(
                call.pk,
                "approve",
                user="U1",
                trigger="A2",
                respond=slack_fake.response_url("again"),
            ),
        )
    worker.drain()
    assert "different person" in answers(slack_fake)[-1]
    assert ToolCall.objects.get(pk=call.pk).status == TC.AWAITING_APPROVAL
    fake_anthropic.push_text("Shipped.")
    with worker.committing():
        interaction_post(client, button(call.pk, "approve", user="U2", trigger="A3"))
    worker.drain()
    assert ToolCall.objects.get(pk=call.pk).status == TC.SUCCEEDED
    assert Shipment.objects.count() == 1 and Approval.objects.count() == 2


def test_without_a_signing_secret_slack_is_refused(client, settings):
    settings.SLACK_SIGNING_SECRET = ""
    response = interaction_post(client, button(1, "approve"), secret="x")
    assert response.status_code == 403 and "not configured" in response.json()["text"]
