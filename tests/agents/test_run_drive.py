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
    # The copies queued on commit for each step find their step moved on: nothing happens.
    copies = worker.drain()
    assert copies and all(d.func == "agents.tasks.run_advance_task" for d in copies)
    assert len(fake_anthropic.message_requests) == 2
    assert run.model_calls.count() == 2


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
