"""Backlog mode: first model calls through the Message Batches API, the real SDK on the wire fake."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.utils import timezone

from agents.models import AgentRun, AuditEvent, BatchRequest, MessageBatch, ModelCall, ToolCall
from agents.pricing import cost_estimate
from agents.services import agents_sweep, proposal_approve, run_cancel, run_start
from agents.services.batches import batch_poll, batches_work, run_batch_hold
from tests.agents.helpers import SHIP, assert_status
from tests.factories.users import user_create
from tests.toolbox.models import Shipment

pytestmark = pytest.mark.django_db
S = AgentRun.Status


@pytest.fixture(autouse=True)
def _batches_on(settings):
    settings.AGENTS_BATCH_ENABLED = True


def start(worker, text: str = "Please ship two gears to 1 Main St.", *, batch: bool = True):
    with worker.committing():
        run = run_start(
            toolset="toolbox", user_message=text, subject_type="toolbox.order", subject_id=7
        )
        if batch:
            assert run_batch_hold(run_id=run.pk)
    return run


def work(worker):
    """One pass of the periodic batches task, as a worker runs it, then whatever it queued."""
    with worker.committing():
        report = batches_work()
    worker.drain()
    return report


def batch_posts(fake):
    return [r for r in fake.batch_requests if r.path.split("?")[0] == "/v1/messages/batches"]


def test_many_runs_go_in_one_batch_and_each_resumes_from_its_own_result(
    fake_anthropic, worker, widgets
):
    for n in range(3):
        fake_anthropic.push_text(f"Reply for run {n}.")
    runs = [start(worker, f"Order number {n}.") for n in range(3)]
    worker.drain()  # each run's first step task comes, finds the run in a batch, does nothing
    assert [assert_status(r, S.BATCHED).step for r in runs] == [0, 0, 0]
    assert fake_anthropic.message_requests == []

    report = work(worker)
    assert report.submitted == 3
    [post] = batch_posts(fake_anthropic)
    assert [r["custom_id"] for r in post.body["requests"]] == [f"run{r.pk}-step0" for r in runs]
    batch = MessageBatch.objects.get()
    assert batch.status == MessageBatch.Status.IN_PROGRESS and batch.batch_id.startswith(
        "msgbatch_"
    )

    work(worker)  # still in progress: nothing moves
    assert all(assert_status(r, S.BATCHED) for r in runs)

    fake_anthropic.batch_end()
    report = work(worker)  # the fake gives the results in reverse order
    assert report.recorded == 3
    for n, run in enumerate(runs):
        run = assert_status(run, S.COMPLETED)
        assert run.messages[-1]["content"][0]["text"] == f"Reply for run {n}."
        [call] = ModelCall.objects.filter(run=run)
        assert call.request_id == batch.batch_id and call.step == 0
    batch.refresh_from_db()
    assert batch.status == MessageBatch.Status.ENDED and batch.request_counts["succeeded"] == 3
    assert fake_anthropic.message_requests == []  # no call went the normal way
    assert set(BatchRequest.objects.values_list("state", flat=True)) == {"recorded"}


def test_a_batch_request_is_exactly_what_the_normal_step_sends(fake_anthropic, worker, widgets):
    fake_anthropic.push_text("Normal.")
    start(worker, batch=False)
    worker.drain()
    fake_anthropic.push_text("Batched.")
    start(worker)
    work(worker)
    [normal] = fake_anthropic.message_requests
    [post] = batch_posts(fake_anthropic)
    assert post.body["requests"][0]["params"] == normal.body


def test_a_proposal_from_a_batch_waits_for_approval_like_any_other(fake_anthropic, worker, widgets):
    fake_anthropic.push_tool_use(("lookup_widget", {"name": "gear"}))
    run = start(worker)
    work(worker)
    fake_anthropic.batch_end()
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    work(worker)  # the lookup runs at once; the next call goes the normal way and proposes

    run = assert_status(run, S.AWAITING_APPROVAL)
    assert len(fake_anthropic.message_requests) == 1
    ship = ToolCall.objects.get(tool_use_id=ship_id)
    assert ship.status == ToolCall.Status.AWAITING_APPROVAL and ship.requires_approval
    # Nothing runs without a person: not the worker, not the sweep, not another poll.
    with worker.committing():
        agents_sweep(now=timezone.now() + timedelta(minutes=30))
    worker.drain()
    work(worker)
    assert Shipment.objects.count() == 0
    assert ToolCall.objects.get(pk=ship.pk).status == ToolCall.Status.AWAITING_APPROVAL

    fake_anthropic.push_text("Shipped.")
    with worker.committing():
        proposal_approve(tool_call_id=ship.pk, user=user_create(perms=["toolbox.approve_shipment"]))
    worker.drain()
    assert_status(run, S.COMPLETED)
    assert Shipment.objects.get().quantity == 2


def test_a_tool_call_straight_from_a_batch_result_waits_for_approval(
    fake_anthropic, worker, widgets
):
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    run = start(worker)
    work(worker)
    fake_anthropic.batch_end()
    work(worker)
    assert_status(run, S.AWAITING_APPROVAL)
    assert ToolCall.objects.get(tool_use_id=ship_id).status == ToolCall.Status.AWAITING_APPROVAL
    assert Shipment.objects.count() == 0 and fake_anthropic.message_requests == []


def test_errored_and_expired_results_go_back_to_the_normal_path(fake_anthropic, worker, widgets):
    fake_anthropic.push_error(529, "overloaded_error", "Overloaded")
    fake_anthropic.push_batch_result("expired")
    errored, expired = start(worker, "Order one."), start(worker, "Order two.")
    work(worker)
    fake_anthropic.batch_end()
    fake_anthropic.push_text("Done the normal way.")
    fake_anthropic.push_text("Done the normal way too.")
    report = work(worker)

    assert report.released == 2
    for run in (errored, expired):
        run = assert_status(run, S.COMPLETED)
        [call] = ModelCall.objects.filter(run=run)
        assert not call.request_id.startswith("msgbatch_")
    assert len(fake_anthropic.message_requests) == 2
    details = dict(BatchRequest.objects.values_list("run_id", "detail"))
    assert "errored" in details[errored.pk] and "overloaded_error" in details[errored.pk]
    assert "expired" in details[expired.pk]
    assert AuditEvent.objects.filter(kind="run.batch_released").count() == 2


def test_results_read_twice_are_recorded_once(fake_anthropic, worker, widgets, monkeypatch):
    fake_anthropic.push_tool_use(("lookup_widget", {"name": "gear"}))
    fake_anthropic.push_text("Second.")
    first, second = start(worker, "One."), start(worker, "Two.")
    work(worker)
    fake_anthropic.batch_end()
    monkeypatch.setattr(fake_anthropic, "duplicate_results", True)  # every line twice
    fake_anthropic.push_text("Stock is 10.")
    work(worker)
    # A poll that died after recording, before the batch was marked ended: the next one reads
    # every result again.
    MessageBatch.objects.update(status=MessageBatch.Status.IN_PROGRESS)
    report = work(worker)

    assert report.recorded == 0
    assert assert_status(first, S.COMPLETED).turns == 2
    assert assert_status(second, S.COMPLETED).turns == 1
    assert ModelCall.objects.filter(request_id__startswith="msgbatch_").count() == 2
    assert ToolCall.objects.filter(run=first).count() == 1
    assert len(fake_anthropic.message_requests) == 1  # only the lookup's follow-up


def test_neither_the_sweep_nor_a_step_task_advances_a_run_in_a_batch(
    fake_anthropic, worker, widgets
):
    fake_anthropic.push_text("From the batch.")
    run = start(worker)
    work(worker)
    with worker.committing():
        report = agents_sweep(now=timezone.now() + timedelta(hours=2))
    assert report.runs_queued == 0 and worker.queued() == []
    # A stray step task (a duplicated delivery) finds nothing to claim.
    with worker.committing():
        from agents.services import run_advance

        run_advance(run_id=run.pk, step=0)
    assert_status(run, S.BATCHED)
    assert fake_anthropic.message_requests == []

    fake_anthropic.batch_end()
    work(worker)
    assert assert_status(run, S.COMPLETED).turns == 1


def test_a_run_its_batch_keeps_too_long_goes_back_and_the_batch_is_cancelled(
    fake_anthropic, worker, widgets, settings
):
    fake_anthropic.push_text("Too late.")
    run = start(worker)
    work(worker)
    with worker.committing():
        report = agents_sweep(
            now=timezone.now() + timedelta(hours=settings.AGENTS_BATCH_TIMEOUT_HOURS + 1)
        )
    assert report.runs_queued == 1
    assert any(r.path.endswith("/cancel") for r in fake_anthropic.batch_requests)
    assert MessageBatch.objects.get().status == MessageBatch.Status.ENDED
    fake_anthropic.push_text("On time, the normal way.")
    worker.drain()
    run = assert_status(run, S.COMPLETED)
    assert run.messages[-1]["content"][0]["text"] == "On time, the normal way."
    assert BatchRequest.objects.get().state == BatchRequest.State.RELEASED
    work(worker)  # nothing left to poll
    assert ModelCall.objects.filter(run=run).count() == 1


def test_a_result_for_a_run_cancelled_meanwhile_is_not_used(fake_anthropic, worker, widgets):
    fake_anthropic.push_text("For the cancelled run.")
    fake_anthropic.push_text("For the other run.")
    cancelled, other = start(worker, "One."), start(worker, "Two.")
    work(worker)
    with worker.committing():
        run_cancel(
            run_id=cancelled.pk, user=user_create(perms=["agents.cancel_agentrun"]), reason="No."
        )
    fake_anthropic.batch_end()
    report = work(worker)
    assert (report.recorded, report.dropped) == (1, 1)
    assert assert_status(cancelled, S.CANCELLED).turns == 0
    assert assert_status(other, S.COMPLETED).turns == 1
    assert BatchRequest.objects.get(run=cancelled).state == BatchRequest.State.DROPPED


def test_a_batch_that_cannot_be_submitted_sends_its_runs_the_normal_way(
    fake_anthropic, worker, widgets, settings
):
    run = start(worker)
    settings.ANTHROPIC_BASE_URL = "http://127.0.0.1:9"  # nothing listens
    settings.ANTHROPIC_MAX_RETRIES = 0
    from agents import llm

    llm._client.cache_clear()
    with worker.committing():
        batches_work()
    assert MessageBatch.objects.get().status == MessageBatch.Status.FAILED
    assert_status(run, S.QUEUED)
    settings.ANTHROPIC_BASE_URL = fake_anthropic.url
    llm._client.cache_clear()
    fake_anthropic.push_text("The normal way.")
    worker.drain()
    assert_status(run, S.COMPLETED)


def test_held_only_in_backlog_mode_and_on_the_anthropic_backend(worker, settings, widgets):
    settings.AGENTS_BATCH_ENABLED = False
    with worker.committing():
        run = run_start(toolset="toolbox", user_message="Hi.")
        assert not run_batch_hold(run_id=run.pk)
    settings.AGENTS_BATCH_ENABLED = True
    settings.AGENTS_LLM_BACKEND = "replay"
    with worker.committing():
        run = run_start(toolset="toolbox", user_message="Hi.")
        assert not run_batch_hold(run_id=run.pk)
    assert not BatchRequest.objects.exists()


def test_a_batch_call_costs_half_of_the_same_call_made_directly():
    full = cost_estimate(
        model="claude-sonnet-4-5", input_tokens=1000, output_tokens=500, cache_read=300,
        cache_write=200,
    )  # fmt: skip
    half = cost_estimate(
        model="claude-sonnet-4-5", input_tokens=1000, output_tokens=500, cache_read=300,
        cache_write=200, batch=True,
    )  # fmt: skip
    assert half == full / 2 and half > 0


def test_a_run_triaged_in_a_batch_is_charged_half(fake_anthropic, worker, widgets):
    fake_anthropic.push_text("Same answer.")
    fake_anthropic.push_text("Same answer.")
    normal = start(worker, "Same question.", batch=False)
    worker.drain()
    batched = start(worker, "Same question.")
    work(worker)
    fake_anthropic.batch_end()
    work(worker)
    normal, batched = assert_status(normal, S.COMPLETED), assert_status(batched, S.COMPLETED)
    one, other = ModelCall.objects.get(run=normal), ModelCall.objects.get(run=batched)
    assert one.output_tokens == other.output_tokens
    assert other.cost_usd == cost_estimate(
        model=other.model,
        input_tokens=other.input_tokens,
        output_tokens=other.output_tokens,
        cache_read=other.cache_read_tokens,
        cache_write=other.cache_write_tokens,
        batch=True,
    )
    assert batched.cost_usd == other.cost_usd and other.cost_usd < one.cost_usd
    assert other.cost_usd > Decimal(0)


@pytest.mark.django_db(transaction=True)
def test_two_pollers_at_once_record_each_result_once(fake_anthropic, worker, widgets):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite lets one writer in at a time; the race needs PostgreSQL")
    for n in range(4):
        fake_anthropic.push_text(f"Reply {n}.")
    runs = [start(worker, f"Order {n}.") for n in range(4)]
    with worker.committing():
        batches_work()
    fake_anthropic.batch_end()
    batch = MessageBatch.objects.get()
    barrier = threading.Barrier(2)
    outcomes = []

    def poll():
        try:
            barrier.wait()
            outcomes.append(batch_poll(batch_pk=batch.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=poll) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(o.recorded for o in outcomes) == 4
    assert ModelCall.objects.count() == 4
    for n, run in enumerate(runs):
        run = assert_status(run, S.COMPLETED)
        assert run.turns == 1 and run.messages[-1]["content"][0]["text"] == f"Reply {n}."
    assert AuditEvent.objects.filter(kind="batch.ended").count() == 1


def test_the_batch_pages_list_and_show_what_a_batch_carried(fake_anthropic, worker, widgets):
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    client = Client()
    client.force_login(user_create(perms=["agents.view_messagebatch"]))
    fake_anthropic.push_text("One.")
    run = start(worker)
    work(worker)
    batch = MessageBatch.objects.get()
    listing = client.get(reverse("admin:agents_messagebatch_changelist"))
    assert listing.status_code == 200 and batch.batch_id in listing.content.decode()
    page = client.get(reverse("admin:agents_messagebatch_change", args=[batch.pk]))
    assert page.status_code == 200 and f"Run #{run.pk}" in page.content.decode()
    fake_anthropic.batch_end()
    work(worker)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("admin:agents_messagebatch_changelist")).status_code == 200
        return len(captured)

    few = queries()
    for n in range(5):
        fake_anthropic.push_text(f"More {n}.")
        start(worker, f"More {n}.")
        work(worker)
    assert MessageBatch.objects.count() == 6
    assert queries() == few
