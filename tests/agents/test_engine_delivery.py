"""At-least-once delivery, outages, crashes and the sweep that recovers from them."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import AgentRun, ModelCall, ToolCall
from agents.registry import RetryLater, Tool, toolset_get
from agents.services import (
    InvalidTransition,
    agents_sweep,
    proposal_approve,
    run_cancel,
)
from tests.agents.helpers import SHIP, assert_status, start
from tests.factories.users import user_create
from tests.toolbox.models import Shipment
from tests.toolbox.tools import ShipWidget

pytestmark = pytest.mark.django_db
S = AgentRun.Status


def sweep(worker):
    with worker.committing():
        return agents_sweep()


def test_a_step_task_delivered_twice_makes_one_model_call(fake_anthropic, worker, widgets):
    fake_anthropic.push_text("Done.")
    run = start(worker)
    task = worker.take()
    worker.run(task)
    worker.run(task)  # the broker delivers the same task again
    assert len(fake_anthropic.message_requests) == 1
    assert ModelCall.objects.filter(run=run).count() == 1
    assert_status(run, S.COMPLETED)


def test_a_step_task_for_an_old_step_does_nothing(fake_anthropic, worker, widgets):
    fake_anthropic.push_tool_use(("lookup_widget", {"name": "gear"}))
    fake_anthropic.push_text("Done.")
    run = start(worker)
    first = worker.take()
    worker.run(first)
    worker.drain()
    worker.run(first)  # a very late duplicate of step 0
    assert len(fake_anthropic.message_requests) == 2
    assert_status(run, S.COMPLETED)


def test_an_execute_task_delivered_twice_ships_once(fake_anthropic, worker, widgets):
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    start(worker)
    worker.drain()
    call = ToolCall.objects.get(tool_use_id=ship_id)
    with worker.committing():
        proposal_approve(tool_call_id=call.pk, user=user_create(perms=["toolbox.approve_shipment"]))
    execute = worker.take()
    assert execute.func == "agents.tasks.tool_call_execute_task"
    fake_anthropic.push_text("Shipped.")
    worker.run(execute)
    worker.run(execute)
    worker.drain()
    assert Shipment.objects.count() == 1
    call.refresh_from_db()
    assert call.attempts == 1


def test_an_outage_is_retried_by_the_sdk_then_by_the_task_until_it_passes(
    fake_anthropic, worker, widgets, settings
):
    settings.ANTHROPIC_MAX_RETRIES = 2
    fake_anthropic.push_overloaded(times=3)  # the SDK tries three times, then gives up
    run = start(worker)
    worker.drain()
    run = assert_status(run, S.QUEUED)
    assert run.attempts == 1 and "Model unavailable" in run.status_reason
    assert run.next_attempt_at > timezone.now() + timedelta(seconds=10)
    [failed] = ModelCall.objects.filter(run=run)
    assert "529" in failed.error and failed.request_id.startswith("req_fake")

    # Not yet due: the sweep leaves it alone.
    assert sweep(worker).runs_queued == 0
    AgentRun.objects.filter(pk=run.pk).update(next_attempt_at=timezone.now())
    fake_anthropic.push_overloaded(times=2)
    fake_anthropic.push_error(429, "rate_limit_error", "slow down", retry_after=0.01)
    fake_anthropic.push_overloaded(times=2)
    fake_anthropic.push_text("Back again.")
    assert sweep(worker).runs_queued == 1
    worker.drain()
    run = assert_status(run, S.QUEUED)
    assert run.attempts == 2
    AgentRun.objects.filter(pk=run.pk).update(next_attempt_at=timezone.now())
    sweep(worker)
    worker.drain()
    run = assert_status(run, S.COMPLETED)
    assert run.attempts == 0 and len(fake_anthropic.message_requests) == 9


def test_a_long_retry_after_is_respected(fake_anthropic, worker, widgets, settings):
    settings.ANTHROPIC_MAX_RETRIES = 0
    fake_anthropic.push_error(529, "overloaded_error", "Overloaded", retry_after=3600)
    run = start(worker)
    worker.drain()
    run.refresh_from_db()
    assert run.next_attempt_at > timezone.now() + timedelta(minutes=59)


def test_a_rejected_request_fails_the_run_with_the_api_message(
    fake_anthropic, worker, widgets, settings
):
    fake_anthropic.push_error(401, "authentication_error", "invalid x-api-key")
    run = start(worker)
    worker.drain()
    run = assert_status(run, S.FAILED)
    assert "invalid x-api-key" in run.status_reason


def test_a_worker_dying_after_the_reply_was_saved_resumes_without_a_new_model_call(
    fake_anthropic, worker, widgets, monkeypatch, settings
):
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    run = start(worker)

    def crash(**kwargs):
        raise KeyboardInterrupt("worker killed")

    monkeypatch.setattr("agents.services.runs.turn_dispatch", crash)
    with pytest.raises(KeyboardInterrupt):
        worker.run(worker.take())
    monkeypatch.undo()
    run = assert_status(run, S.RUNNING)
    assert ToolCall.objects.get(run=run).status == ToolCall.Status.PREPARING

    # Until the claim is stale the sweep leaves the run to its worker.
    assert sweep(worker).runs_queued == 0
    AgentRun.objects.filter(pk=run.pk).update(claimed_at=timezone.now() - timedelta(hours=1))
    sweep(worker)
    worker.drain()
    assert_status(run, S.AWAITING_APPROVAL)
    assert ToolCall.objects.get(tool_use_id=ship_id).status == ToolCall.Status.AWAITING_APPROVAL
    assert len(fake_anthropic.message_requests) == 1  # the saved reply, not asked again


def test_a_worker_dying_inside_a_look_up_saves_nothing_and_the_turn_is_taken_again(
    fake_anthropic, worker, widgets, monkeypatch
):
    """A turn of look-ups is saved with its results; a death before that leaves no half."""
    fake_anthropic.push_tool_use(("lookup_widget", {"name": "gear"}))
    run = start(worker)
    tool = toolset_get("toolbox").get("lookup_widget")

    def crash(context, value):
        raise KeyboardInterrupt("worker killed")

    monkeypatch.setitem(toolset_get("toolbox").tools, "lookup_widget", replace(tool, handler=crash))
    with pytest.raises(KeyboardInterrupt):
        worker.run(worker.take())
    monkeypatch.undo()
    run = assert_status(run, S.RUNNING)
    assert not ToolCall.objects.filter(run=run).exists()
    assert not ModelCall.objects.filter(run=run).exists()
    assert run.messages[-1]["role"] == "user"

    AgentRun.objects.filter(pk=run.pk).update(claimed_at=timezone.now() - timedelta(hours=1))
    fake_anthropic.push_tool_use(("lookup_widget", {"name": "gear"}))
    fake_anthropic.push_text("Done.")
    sweep(worker)
    worker.drain()
    run = assert_status(run, S.COMPLETED)
    assert ToolCall.objects.filter(run=run, status=ToolCall.Status.SUCCEEDED).count() == 1
    assert len(fake_anthropic.message_requests) == 3  # the lost turn once more, then the end


def test_an_approved_call_whose_task_was_lost_is_queued_again(fake_anthropic, worker, widgets):
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    start(worker)
    worker.drain()
    call = ToolCall.objects.get(tool_use_id=ship_id)
    with worker.committing():
        proposal_approve(tool_call_id=call.pk, user=user_create(perms=["toolbox.approve_shipment"]))
    worker.take()  # the broker loses it
    assert sweep(worker).calls_queued == 0  # too recent to call lost
    fake_anthropic.push_text("Shipped.")
    with worker.committing():
        report = agents_sweep(now=timezone.now() + timedelta(minutes=5))
    assert report.calls_queued == 1
    worker.drain()
    assert Shipment.objects.count() == 1


def test_an_interrupted_idempotent_call_runs_again_with_the_same_key(
    fake_anthropic, worker, widgets, settings
):
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    start(worker)
    worker.drain()
    call = ToolCall.objects.get(tool_use_id=ship_id)
    with worker.committing():
        proposal_approve(tool_call_id=call.pk, user=user_create(perms=["toolbox.approve_shipment"]))
    worker.take()
    # A worker claimed it and died before recording anything.
    ToolCall.objects.filter(pk=call.pk).update(
        status=ToolCall.Status.EXECUTING,
        started_at=timezone.now() - timedelta(hours=1),
        claimed_at=timezone.now() - timedelta(hours=1),
    )
    fake_anthropic.push_text("Shipped.")
    assert sweep(worker).calls_interrupted == 1
    worker.drain()
    call.refresh_from_db()
    assert call.status == ToolCall.Status.SUCCEEDED
    assert Shipment.objects.get().idempotency_key == call.idempotency_key


def test_an_interrupted_call_that_is_not_safe_to_repeat_is_escalated(
    fake_anthropic, worker, widgets, monkeypatch
):
    toolset = toolset_get("toolbox")
    unsafe = replace(toolset.tools["ship_widget"], idempotent=False)
    assert isinstance(unsafe, Tool) and unsafe.input_model is ShipWidget
    monkeypatch.setitem(toolset.tools, "ship_widget", unsafe)
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    run = start(worker)
    worker.drain()
    call = ToolCall.objects.get(tool_use_id=ship_id)
    with worker.committing():
        proposal_approve(tool_call_id=call.pk, user=user_create(perms=["toolbox.approve_shipment"]))
    worker.take()
    ToolCall.objects.filter(pk=call.pk).update(
        status=ToolCall.Status.EXECUTING,
        started_at=timezone.now() - timedelta(hours=1),
        claimed_at=timezone.now() - timedelta(hours=1),
    )
    sweep(worker)
    worker.drain()
    run = assert_status(run, S.ESCALATED)
    call.refresh_from_db()
    assert call.status == ToolCall.Status.FAILED and "not safe to run again" in call.result
    assert Shipment.objects.count() == 0


def test_an_approval_nobody_gives_expires_and_claude_is_told(
    fake_anthropic, worker, widgets, settings
):
    settings.AGENTS_APPROVAL_TTL_HOURS = 0.000001
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    run = start(worker)
    worker.drain()
    time.sleep(0.01)
    fake_anthropic.push_text("Nobody approved; I will tell the customer.")
    assert sweep(worker).calls_expired == 1
    worker.drain()
    assert_status(run, S.COMPLETED)
    call = ToolCall.objects.get(tool_use_id=ship_id)
    assert call.status == ToolCall.Status.EXPIRED and call.decision == ToolCall.Decision.EXPIRED
    result = fake_anthropic.message_requests[-1].body["messages"][-1]["content"][0]
    assert result["is_error"] is True and "did not run" in result["content"]


def test_cancel_closes_the_run_and_its_pending_calls(fake_anthropic, worker, widgets):
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    run = start(worker)
    worker.drain()
    operator = user_create(perms=["agents.cancel_agentrun", "toolbox.approve_shipment"])
    with worker.committing():
        run_cancel(run_id=run.pk, user=operator, reason="Duplicate order")
    run = assert_status(run, S.CANCELLED)
    call = ToolCall.objects.get(tool_use_id=ship_id)
    assert call.status == ToolCall.Status.CANCELLED
    with pytest.raises(InvalidTransition):
        proposal_approve(tool_call_id=call.pk, user=operator)
    with pytest.raises(InvalidTransition):
        run_cancel(run_id=run.pk, user=operator, reason="again")
    assert worker.drain() == []


def test_a_handler_that_cannot_know_the_outcome_is_retried_with_the_same_key(
    fake_anthropic, worker, widgets, monkeypatch
):
    toolset = toolset_get("toolbox")
    real = toolset.tools["ship_widget"]
    keys = []

    def flaky(context, value):
        keys.append(context.idempotency_key)
        if len(keys) == 1:
            raise RetryLater("the carrier timed out after we sent the order")
        return real.handler(context, value)

    monkeypatch.setitem(toolset.tools, "ship_widget", replace(real, handler=flaky))
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    start(worker)
    worker.drain()
    call = ToolCall.objects.get(tool_use_id=ship_id)
    with worker.committing():
        proposal_approve(tool_call_id=call.pk, user=user_create(perms=["toolbox.approve_shipment"]))
    worker.drain()
    call.refresh_from_db()
    # Queued again with a delay, never run twice at once: the next try waits for its time.
    assert call.status == ToolCall.Status.QUEUED and call.result is None
    assert call.next_attempt_at > timezone.now() and call.attempts == 1
    assert sweep(worker).calls_queued == 0

    fake_anthropic.push_text("Shipped.")
    with worker.committing():
        agents_sweep(now=timezone.now() + timedelta(hours=1))
    worker.drain()
    call.refresh_from_db()
    assert call.status == ToolCall.Status.SUCCEEDED and call.attempts == 2
    assert keys == [call.idempotency_key, call.idempotency_key]
    assert Shipment.objects.count() == 1


@pytest.mark.parametrize(
    "replies, cancelled_at",
    [
        pytest.param(["lookup", "end"], 0, id="a turn of look-ups"),
        pytest.param(["end"], 0, id="the last turn"),
        pytest.param(["lookup", "end"], 1, id="the turn after look-ups, asked ahead"),
    ],
)
def test_a_run_cancelled_while_its_model_call_is_out_uses_nothing_of_the_reply(
    fake_anthropic, worker, widgets, monkeypatch, client, replies, cancelled_at
):
    """Invariant: a step uses its reply only while it holds its claim; a cancel takes it away.

    The quick paths (a turn of look-ups, the end of a run, a step whose call was asked while
    the turn before it was saved) save without locking the run first: their save is the
    compare-and-set on the claim. A cancel that lands while the model is thinking leaves the
    run cancelled; the reply that comes back is recorded as a model call that was not used, and
    nothing of it reaches the run, its tool calls or the next turn.
    """
    from agents.services import runs

    for reply in replies:
        if reply == "lookup":
            fake_anthropic.push_tool_use(("lookup_widget", {"name": "gear"}))
        else:
            fake_anthropic.push_text("There are 10 gears.")
    run = start(worker, text="How many gears?")
    operator = user_create(perms=["agents.cancel_agentrun"])
    real_turn, real_end = runs._turn_save, runs._end_at_once

    def cancel_first(real, **kwargs):
        step = kwargs["run"].step
        if step == cancelled_at:
            run_cancel(run_id=kwargs["run"].pk, user=operator, reason="The customer wrote again.")
        return real(**kwargs)

    monkeypatch.setattr(runs, "_turn_save", lambda **kw: cancel_first(real_turn, **kw))
    monkeypatch.setattr(runs, "_end_at_once", lambda **kw: cancel_first(real_end, **kw))
    worker.run(worker.take())
    run = assert_status(run, S.CANCELLED)
    assert run.status_reason == "The customer wrote again."
    # Every reply that came back is a model call on record; the used ones are on the run.
    assert len(fake_anthropic.message_requests) == len(replies)
    assert run.model_calls.count() == len(replies)
    unused = run.model_calls.filter(error=runs.DROPPED)
    assert unused.count() == len(replies) - cancelled_at
    assert (run.turns, len(run.messages)) == (cancelled_at, 1 + 2 * cancelled_at)
    assert run.tool_calls.count() == cancelled_at
    kinds = list(run.events.values_list("kind", flat=True).order_by("pk"))
    assert kinds[0] == "run.started" and kinds[-1] == "run.cancelled"
    assert "run.completed" not in kinds
    assert worker.drain() == []
    # The run's page shows the unused call as such, not as a failed one.
    from django.urls import reverse

    from tests.agents.admin_steps import page_text

    client.force_login(user_create(perms=["agents.view_agentrun"]))
    page = page_text(client.get(reverse("admin:agents_agentrun_change", args=[run.pk])))
    assert page.count("not used") == len(replies) - cancelled_at and "failed" not in page


def test_a_reply_that_lost_its_claim_to_another_worker_is_on_record_at_its_own_step(
    fake_anthropic, worker, widgets, monkeypatch
):
    """The claim went stale while the call was out; another worker took the run further."""
    import uuid

    from agents.services import runs

    fake_anthropic.push_tool_use(("ship_widget", SHIP))  # the general path: needs a person
    run = start(worker)
    real = runs.run_model_request

    def taken_over_meanwhile(claimed):
        request = real(claimed)
        AgentRun.objects.filter(pk=claimed.pk).update(claim_token=uuid.uuid4(), step=3)
        return request

    monkeypatch.setattr(runs, "run_model_request", taken_over_meanwhile)
    worker.run(worker.take())
    run.refresh_from_db()
    assert (run.status, run.step, run.turns) == (S.RUNNING, 3, 0)
    [call] = run.model_calls.all()
    assert (call.step, call.error) == (0, runs.DROPPED)
    assert not run.tool_calls.exists()
