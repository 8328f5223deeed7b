"""A step that can run at once runs in the same task; the broker's copy of it changes nothing."""

from __future__ import annotations

import pytest

from agents.models import AgentRun, ToolCall
from agents.services import proposal_approve
from tests.agents.helpers import SHIP, start
from tests.factories.users import user_create

pytestmark = pytest.mark.django_db


def test_one_delivery_carries_the_run_through_every_step_that_is_due(
    fake_anthropic, worker, widgets
):
    fake_anthropic.push_tool_use(("lookup_widget", {"name": "gear"}))
    fake_anthropic.push_text("There are 10 gears.")
    run = start(worker, text="How many gears?")
    first = worker.take()
    assert first.func == "agents.tasks.run_advance_task"
    worker.run(first)
    run.refresh_from_db()
    assert run.status == AgentRun.Status.COMPLETED and len(fake_anthropic.message_requests) == 2
    # The steps it took itself were never queued on the broker as well.
    assert worker.drain() == []
    assert run.model_calls.count() == 2


def test_a_task_past_its_deadline_queues_the_step_it_leaves(
    fake_anthropic, worker, widgets, settings
):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 0}  # every step is past it
    fake_anthropic.push_tool_use(("lookup_widget", {"name": "gear"}))
    fake_anthropic.push_text("There are 10 gears.")
    run = start(worker, text="How many gears?")
    worker.run(worker.take())
    run.refresh_from_db()
    assert run.status == AgentRun.Status.QUEUED and run.step == 1
    assert run.claim_token is None  # it claims no step it will not take itself
    [left] = worker.queued()
    assert (left.func, left.args) == ("agents.tasks.run_advance_task", (run.pk, 1))
    worker.drain()
    run.refresh_from_db()
    assert run.status == AgentRun.Status.COMPLETED and len(fake_anthropic.message_requests) == 2


def test_a_step_whose_task_died_before_taking_it_is_taken_back_when_its_claim_is_stale(
    fake_anthropic, worker, widgets, monkeypatch, settings
):
    """The turn of look-ups handed its claim on to the next step, asked its call; the task died.

    Nothing was queued for that step and the run says it is running: the sweep leaves it to its
    task until the claim is stale (as for a task that dies during a model call), then queues
    it. The call asked ahead died with the task, unused: the step asks again, and one reply is
    used per step.
    """
    from datetime import timedelta

    from django.utils import timezone

    from agents.services import agents_sweep, runs

    fake_anthropic.push_tool_use(("lookup_widget", {"name": "gear"}))
    fake_anthropic.push_text("There are 10 gears.")  # to the call asked ahead
    fake_anthropic.push_text("There are 10 gears.")  # to the step taken again
    run = start(worker, text="How many gears?")
    real = runs._advance

    def advance_then_die(**kwargs):
        if kwargs["step"] == 1:
            kwargs["ahead"].result()  # the call asked ahead came back; the task dies now
            raise KeyboardInterrupt("worker killed")
        return real(**kwargs)

    monkeypatch.setattr(runs, "_advance", advance_then_die)
    with pytest.raises(KeyboardInterrupt):
        worker.run(worker.take())
    monkeypatch.undo()
    run.refresh_from_db()
    assert (run.status, run.step) == (AgentRun.Status.RUNNING, 1) and worker.queued() == []
    assert run.claim_token is not None and run.model_calls.count() == 1
    stale = timedelta(seconds=settings.AGENTS_STALE_CLAIM_SECONDS)
    with worker.committing():
        assert agents_sweep(now=timezone.now() + stale / 2).runs_queued == 0  # still its task's
    with worker.committing():
        assert agents_sweep(now=timezone.now() + stale * 2).runs_queued == 1
    AgentRun.objects.filter(pk=run.pk).update(claimed_at=timezone.now() - stale * 2)
    worker.drain()
    run.refresh_from_db()
    assert run.status == AgentRun.Status.COMPLETED and len(fake_anthropic.message_requests) == 3
    assert run.model_calls.count() == 2 and run.turns == 2


def test_a_step_with_a_delay_is_left_to_the_broker(fake_anthropic, worker, widgets):
    fake_anthropic.push_overloaded(times=3)  # the SDK's retries, then the engine's own delay
    run = start(worker, text="How many gears?")
    worker.run(worker.take())
    run.refresh_from_db()
    assert run.status == AgentRun.Status.QUEUED and run.next_attempt_at is not None


def test_the_approvals_task_goes_on_with_the_run_after_the_call_ran(
    fake_anthropic, worker, widgets
):
    [ship] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    run = start(worker)
    worker.drain()
    call = ToolCall.objects.get(tool_use_id=ship)
    fake_anthropic.push_text("Shipped.")
    with worker.committing():
        proposal_approve(tool_call_id=call.pk, user=user_create(perms=["toolbox.approve_shipment"]))
    execute = next(d for d in worker.queued() if d.func == "agents.tasks.tool_call_execute_task")
    worker.run(execute)
    run.refresh_from_db()
    assert run.status == AgentRun.Status.COMPLETED
    worker.drain()
    assert len(fake_anthropic.message_requests) == 2


def test_an_outage_met_by_a_call_asked_ahead_is_the_next_steps_as_if_it_had_called(
    fake_anthropic, worker, widgets, settings
):
    """The call asked while the look-up turn was saved fails: its step waits and asks again."""
    from datetime import timedelta

    from django.utils import timezone

    from agents.models import ModelCall

    settings.ANTHROPIC_MAX_RETRIES = 2
    fake_anthropic.push_tool_use(("lookup_widget", {"name": "gear"}))
    fake_anthropic.push_overloaded(times=3)  # the call asked ahead: the SDK gives up
    run = start(worker, text="How many gears?")
    worker.run(worker.take())
    run.refresh_from_db()
    assert (run.status, run.step, run.turns, run.attempts) == (AgentRun.Status.QUEUED, 1, 1, 1)
    assert run.claim_token is None and run.next_attempt_at > timezone.now() + timedelta(seconds=5)
    failed = ModelCall.objects.get(run=run, step=1)
    assert "529" in failed.error
    fake_anthropic.push_text("There are 10 gears.")
    AgentRun.objects.filter(pk=run.pk).update(next_attempt_at=timezone.now())
    from tests.worker import Delivery

    worker.run(Delivery("agents.tasks.run_advance_task", (run.pk, 1)))  # as the sweep queues it
    run.refresh_from_db()
    assert run.status == AgentRun.Status.COMPLETED and run.turns == 2
    assert len(fake_anthropic.message_requests) == 5
