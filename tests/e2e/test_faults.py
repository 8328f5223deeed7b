"""Faults on what production runs: PostgreSQL, Redis and real qcluster processes.

SIGKILL at step boundaries, two clusters on one queue, tasks delivered twice, a 529 storm,
Stripe 500s and dropped answers, GitHub 502s, Slack down: every run completes or ends clearly
failed, every effect happens once, and what went wrong is visible. (The kills between an
effect and its record — refund, push, pull request, Slack, mail — are tests/e2e/test_exactly_once.py,
which runs on this database and Redis too.)
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import needs_postgresql_and_redis
from tests.e2e.test_exactly_once import ship_proposed

pytestmark = [pytest.mark.e2e, needs_postgresql_and_redis]
BROKER = "redis"


def shipments(world) -> int:
    return world.site.query("SELECT count(*) FROM toolbox_shipment")[0][0]


def sweep_until(world, check, timeout: float = 120) -> None:
    """Run the sweep (as its schedule would) until `check()` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the sweep never got it there"
        world.site.sweep(minutes_later=0)
        time.sleep(0.5)


def test_a_worker_killed_with_the_model_call_in_flight_resumes_and_ships_once(
    world, fake_anthropic
):
    site = world.site
    before = shipments(world)
    hold = fake_anthropic.push_hold()
    ship = ship_proposed(world, fake_anthropic)  # answered only on the second try
    worker = site.worker_start()
    hold.wait_arrived()
    site.worker_kill(worker)
    hold.release()

    time.sleep(6)  # the killed worker's claim on the run goes stale (AGENTS_STALE_CLAIM_SECONDS)
    site.sweep()
    site.worker_start()
    world.wait_call(ship, "awaiting_approval")
    fake_anthropic.push_text("Two gears are on their way.")
    world.approve(ship, "toolbox.approve_shipment")
    world.wait_run(world.run_of(ship), "completed")
    assert shipments(world) == before + 1


def test_a_worker_killed_just_after_the_reply_was_saved_resumes_and_ships_once(
    world, fake_anthropic
):
    site = world.site
    before = shipments(world)
    ship = ship_proposed(world, fake_anthropic)
    worker = site.worker_start()
    site.wait_for("SELECT count(*) FROM agents_modelcall WHERE error = ''", lambda n: n > 0)
    site.wait_for(f"SELECT count(*) FROM agents_toolcall WHERE tool_use_id = '{ship}'", 1)
    site.worker_kill(worker)  # wherever it was: dispatching the call, checking it, notifying

    # The sweep on the real clock: the claim is stale after a few seconds. (One dated minutes
    # ahead would also find a call killed mid-check overdue and fail it: right at that hour,
    # not what this test is about.)
    time.sleep(6)
    site.worker_start()
    sweep_until(world, lambda: world.call(ship)[1] == "awaiting_approval")
    fake_anthropic.push_text("Two gears are on their way.")
    world.approve(ship, "toolbox.approve_shipment")
    world.wait_run(world.run_of(ship), "completed")
    assert shipments(world) == before + 1


def test_two_clusters_on_one_queue_and_every_task_delivered_twice_ship_once(world, fake_anthropic):
    site = world.site
    before = shipments(world)
    ship = ship_proposed(world, fake_anthropic)
    site.worker_start()
    site.worker_start()  # a second cluster on the same Redis queue
    world.wait_call(ship, "awaiting_approval")
    call_id, run_id = world.call(ship)[0], world.run_of(ship)
    fake_anthropic.push_text("Two gears are on their way.")
    world.approve(ship, "toolbox.approve_shipment")
    # The broker delivers the execution and the run's next step again, several times.
    [(step,)] = site.query(f"SELECT step FROM agents_agentrun WHERE id = {run_id}")
    site.python(
        "from django_q.tasks import async_task\n"
        "for _ in range(3):\n"
        f"    async_task('agents.tasks.tool_call_execute_task', {call_id})\n"
        f"    async_task('agents.tasks.run_advance_task', {run_id}, {step})\n"
        f"    async_task('agents.tasks.proposal_notices_task', {call_id})"
    )
    world.wait_run(run_id, "completed")
    time.sleep(2)  # let the duplicates drain
    assert shipments(world) == before + 1
    assert world.call(ship)[1] == "succeeded"
    assert len(world.slack_posts(f"proposal:{call_id}:slack")) == 1
    assert len(fake_anthropic.message_requests) == 2


def test_a_529_storm_is_waited_out_and_each_failure_is_recorded(world, fake_anthropic):
    site = world.site
    fake_anthropic.push_overloaded(times=6)  # the SDK's tries, then the run's own
    ship = ship_proposed(world, fake_anthropic)
    site.worker_start()
    run_started = site.query("SELECT max(id) FROM agents_agentrun")[0][0]
    sweep_until(
        world,
        lambda: (
            site.query(f"SELECT count(*) FROM agents_toolcall WHERE tool_use_id = '{ship}'")[0][0]
            == 1
        ),
    )
    errors = site.query(
        f"SELECT count(*) FROM agents_modelcall WHERE run_id = {run_started} AND error <> ''"
    )[0][0]
    assert errors >= 1  # visible: each failed model call is a row with its error
    world.wait_call(ship, "awaiting_approval")
    fake_anthropic.push_text("Shipped.")
    world.approve(ship, "toolbox.approve_shipment")
    world.wait_run(world.run_of(ship), "completed")


def test_stripe_500s_and_a_dropped_answer_refund_once(world, fake_anthropic):
    site = world.site
    bob = world.customer_writes(fake_anthropic)
    site.worker_start()
    world.wait_call(bob.tool_use, "awaiting_approval")
    # Two 500s use up the SDK's try and retry; the engine tries later; that answer is lost
    # after Stripe acted, and the SDK's retry with the same key gets Stripe's replay.
    world.stripe.fail_next("500", times=2, path="/v1/refunds")
    world.stripe.fail_next("drop_after", path="/v1/refunds")
    fake_anthropic.push_text("Refunded.")
    world.approve(bob.tool_use, "support.approve_refund")
    sweep_until(world, lambda: world.call(bob.tool_use)[1] == "succeeded")
    world.wait_run(world.run_of(bob.tool_use), "completed")

    assert len(world.stripe.refunds_on(bob.charge)) == 1
    assert (
        site.query(
            "SELECT count(*) FROM agents_auditevent WHERE kind = 'refund.submit_retry' "
            f"AND subject_id = '{bob.ticket}'"
        )[0][0]
        >= 1
    )


def test_a_github_502_after_the_pull_request_was_made_opens_it_once(world, fake_anthropic):
    site = world.site
    pr_use = world.incident_opens(fake_anthropic)
    site.worker_start()
    world.wait_call(pr_use, "awaiting_approval")
    world.github.fail_after_next.append(502)  # made, then the proxy answers 502; PyGithub retries
    fake_anthropic.push_text("The pull request is open.")
    world.approve(pr_use, "sre.approve_patch")
    world.wait_run(world.run_of(pr_use), "completed")

    branch, _, pr_number, _ = world.patch_of(pr_use)
    assert [p["number"] for p in world.github.pulls if p["head"] == branch] == [pr_number]
    assert world.call(pr_use)[1] == "succeeded"


def test_slack_down_leaves_the_notice_visibly_unposted_then_posts_it_once(world, fake_anthropic):
    site = world.site
    world.slack.fail_next("chat.postMessage", status=503)
    ship = ship_proposed(world, fake_anthropic)
    site.worker_start()
    world.wait_call(ship, "awaiting_approval")
    key = f"proposal:{world.call(ship)[0]}:slack"
    site.wait_for(f"SELECT error FROM agents_notice WHERE key = '{key}'", lambda e: "503" in e)
    assert world.notice(key)[0] == "posting" and world.slack_posts(key) == []

    fake_anthropic.push_text("Two gears are on their way.")
    world.approve(ship, "toolbox.approve_shipment")  # the next sync looks, then posts
    world.wait_run(world.run_of(ship), "completed")
    site.wait_for(
        f"SELECT shown FROM agents_notice WHERE key = '{key}'", lambda s: s.startswith("done")
    )
    assert len(world.slack_posts(key)) == 1 and world.notice(key)[0] == "posted"
