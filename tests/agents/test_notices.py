"""Notices: one Slack message per proposal, updated as it is decided; mail without Slack.

Invariant: a proposal's notice is posted once, whatever retries or crashes happen between
posting and recording, and the message always ends up saying how the proposal closed.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from agents.integrations.slack import SlackError
from agents.models import Notice, ToolCall
from agents.notices import proposal_notices_sync
from agents.services import agents_sweep, proposal_approve, proposal_reject, run_cancel
from tests.agents.helpers import SHIP, start
from tests.factories.users import user_create

pytestmark = pytest.mark.django_db


def approver(**kwargs):
    return user_create(perms=["toolbox.approve_shipment"], **kwargs)


def waiting(fake_anthropic, worker) -> ToolCall:
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    start(worker)
    worker.drain()
    return ToolCall.objects.get(tool_use_id=ship_id)


def texts(slack) -> list[str]:
    return [m["text"] for m in slack.messages]


def test_a_waiting_proposal_is_posted_once_and_updated_as_it_closes(
    fake_anthropic, worker, widgets, slack_fake
):
    call = waiting(fake_anthropic, worker)
    [message] = slack_fake.messages
    assert "2 × gear to 1 Main St" in message["text"] and "Waiting for approval" in message["text"]
    assert message["metadata"]["event_payload"]["key"] == f"proposal:{call.pk}:slack"
    blob = str(message["blocks"])
    assert f"https://console.example/admin/agents/toolcall/{call.pk}/review/" in blob
    notice = Notice.objects.get()
    assert (notice.state, notice.ts) == (Notice.State.POSTED, message["ts"])

    person = approver()
    fake_anthropic.push_text("Shipped.")
    with worker.committing():
        proposal_approve(tool_call_id=call.pk, user=person)
    worker.drain()
    assert len(slack_fake.messages) == 1  # updated, never posted again
    final = slack_fake.messages[0]["text"]
    assert f"approved by {person.get_username()}" in final and "Done" in final
    actions = [b for b in slack_fake.messages[0]["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in actions[0]["elements"]] == ["open"]


@pytest.mark.parametrize("how", ["reject", "expire", "cancel"])
def test_every_way_a_proposal_closes_updates_its_message(
    fake_anthropic, worker, widgets, slack_fake, how
):
    call = waiting(fake_anthropic, worker)
    person = user_create(perms=["toolbox.approve_shipment", "agents.cancel_agentrun"])
    fake_anthropic.push_text("Understood.")
    with worker.committing():
        if how == "reject":
            proposal_reject(tool_call_id=call.pk, user=person, reason="Wrong address")
        elif how == "expire":
            agents_sweep(now=timezone.now() + timedelta(days=4))
        else:
            fake_anthropic._script.clear()
            run_cancel(run_id=call.run_id, user=person, reason="Customer withdrew")
    worker.drain()
    [message] = slack_fake.messages
    expected = {"reject": "Wrong address", "expire": "Expired", "cancel": "Customer withdrew"}
    assert expected[how] in message["text"], message["text"]
    assert "Waiting for approval" not in message["text"]


def test_a_post_whose_answer_was_lost_is_found_not_posted_again(
    fake_anthropic, worker, widgets, slack_fake
):
    slack_fake.fail_next("chat.postMessage", status=500, after_effect=True)
    with pytest.raises(SlackError):
        waiting(fake_anthropic, worker)  # the notice task dies after Slack posted it
    call = ToolCall.objects.get(tool_name="ship_widget")
    notice = Notice.objects.get()
    assert notice.state == Notice.State.POSTING and len(slack_fake.messages) == 1
    proposal_notices_sync(tool_call_id=call.pk)  # the task, delivered again
    notice.refresh_from_db()
    assert notice.state == Notice.State.POSTED and notice.ts == slack_fake.messages[0]["ts"]
    assert len(slack_fake.messages) == 1
    # What the found message shows is not known: it is brought up to date once.
    assert len(slack_fake.updates) == 1 and notice.shown
    proposal_notices_sync(tool_call_id=call.pk)  # and again: nothing new
    assert len(slack_fake.messages) == 1 and len(slack_fake.updates) == 1


def test_a_post_that_never_reached_slack_is_posted_on_retry(
    fake_anthropic, worker, widgets, slack_fake
):
    slack_fake.fail_next("chat.postMessage", status=503)
    with pytest.raises(SlackError):
        waiting(fake_anthropic, worker)
    assert slack_fake.messages == []
    proposal_notices_sync(tool_call_id=ToolCall.objects.get(tool_name="ship_widget").pk)
    assert len(slack_fake.messages) == 1


def test_a_channel_per_kind(fake_anthropic, worker, widgets, slack_fake, settings):
    settings.SLACK_CHANNELS = {"ship_widget": slack_fake.channel_id("#warehouse")}
    waiting(fake_anthropic, worker)
    assert len(slack_fake.channel_messages("#warehouse")) == 1
    assert slack_fake.channel_messages("#ops") == []


def test_without_slack_the_approvers_are_mailed_once(fake_anthropic, worker, widgets, settings):
    settings.AGENTS_NOTICE_EMAIL = True
    settings.SLACK_BOT_TOKEN = ""
    ann = approver()
    ann.email = "ann@shop.example"
    ann.save()
    call = waiting(fake_anthropic, worker)
    [sent] = mail.outbox
    assert sent.to == ["ann@shop.example"] and "2 × gear to 1 Main St" in sent.subject
    assert f"/admin/agents/toolcall/{call.pk}/review/" in sent.body
    proposal_notices_sync(tool_call_id=call.pk)
    assert len(mail.outbox) == 1
    assert Notice.objects.get().medium == Notice.Medium.EMAIL


def test_a_proposal_blocked_before_anyone_saw_it_posts_nothing(
    fake_anthropic, worker, widgets, slack_fake
):
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", {**SHIP, "name": "sprocket"}))
    fake_anthropic.push_text("Only one in stock.")
    start(worker)
    worker.drain()
    assert ToolCall.objects.get(tool_use_id=ship_id).status == ToolCall.Status.BLOCKED
    assert slack_fake.messages == [] and not Notice.objects.exists()


def test_the_sweep_posts_a_notice_whose_task_died_with_slack_down(
    fake_anthropic, worker, widgets, slack_fake
):
    slack_fake.fail_next("chat.postMessage", status=503)
    with pytest.raises(SlackError):
        waiting(fake_anthropic, worker)  # the task dies; nothing delivers it again
    assert slack_fake.messages == [] and Notice.objects.get().state == Notice.State.POSTING
    with worker.committing():
        agents_sweep(now=timezone.now())  # too soon: the task may still be on its way
    worker.drain()
    assert slack_fake.messages == []
    with worker.committing():
        report = agents_sweep(now=timezone.now() + timedelta(minutes=5))
    worker.drain()
    assert report.notices_queued == 1 and len(slack_fake.messages) == 1
    assert Notice.objects.get().state == Notice.State.POSTED


def test_the_sweep_brings_up_to_date_a_message_whose_last_update_was_lost(
    fake_anthropic, worker, widgets, slack_fake
):
    call = waiting(fake_anthropic, worker)
    slack_fake.fail_next("chat.update", status=500, times=10)
    fake_anthropic.push_text("Shipped.")
    with worker.committing():
        proposal_approve(tool_call_id=call.pk, user=approver())
    for _ in range(5):  # every update fails and its task dies; the call runs regardless
        try:
            worker.drain()
            break
        except SlackError:
            continue
    assert ToolCall.objects.get(pk=call.pk).status == ToolCall.Status.SUCCEEDED
    assert "Waiting for approval" in slack_fake.messages[0]["text"]
    slack_fake.failures_clear()
    with worker.committing():
        report = agents_sweep(now=timezone.now() + timedelta(minutes=5))
    worker.drain()
    assert report.notices_queued == 1
    assert "Done" in slack_fake.messages[0]["text"] and len(slack_fake.messages) == 1
    with worker.committing():
        assert agents_sweep(now=timezone.now() + timedelta(minutes=10)).notices_queued == 0
