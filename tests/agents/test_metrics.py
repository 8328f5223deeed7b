"""The operator's figures: their values on a seeded database, /metrics' guard and its cost."""

from __future__ import annotations

import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ, Task
from prometheus_client.parser import text_string_to_metric_families

from agents.metrics import operations_get
from agents.models import AgentRun, Proposal, ToolCall
from tests.factories.users import user_create
from tests.support.console_steps import refund_waiting

pytestmark = pytest.mark.django_db

METRICS = reverse("metrics")
TOKEN = "scrape-token-0123456789abcdef"
OPERATOR = ["agents.view_agentrun", "django_q.view_failure"]


def run_make(*, status: str, ago: timedelta = timedelta(0)) -> AgentRun:
    run = AgentRun.objects.create(
        toolset="support",
        prompt_name="support",
        prompt_version=1,
        system="",
        model="claude-sonnet-4-5",
        backend="replay",
        max_tokens=1024,
        status=status,
    )
    if ago:
        AgentRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - ago)
    return run


def task_make(*, success: bool, ago: timedelta, name: str = "") -> Task:
    stopped = timezone.now() - ago
    return Task.objects.create(
        id=uuid.uuid4().hex,
        name=name or f"run_advance_task:{uuid.uuid4().hex[:6]}",
        func="agents.tasks.run_advance_task",
        started=stopped - timedelta(seconds=1),
        stopped=stopped,
        success=success,
        result="Traceback ... secret-looking detail",
    )


def queued_make(*, taken: bool = False) -> OrmQ:
    # A task a cluster has taken is locked until its retry time; one waiting is not.
    lock = timezone.now() + (timedelta(minutes=5) if taken else -timedelta(seconds=1))
    return OrmQ.objects.create(key=Conf.CLUSTER_NAME, payload="x", lock=lock)


def seed(n: int) -> None:
    """n of everything the figures count, and as much that they must not count."""
    for i in range(n):
        refund_waiting(amount=1000 + i)
        refund_waiting(call_status=ToolCall.Status.SUCCEEDED)  # decided: not waiting
        run_make(status=AgentRun.Status.RUNNING)
        run_make(status=AgentRun.Status.COMPLETED)
        run_make(status=AgentRun.Status.COMPLETED, ago=timedelta(days=2))
        task_make(success=False, ago=timedelta(minutes=10 + i))
        task_make(success=False, ago=timedelta(days=3))  # too old to count
        task_make(success=True, ago=timedelta(minutes=1))
        queued_make()
        queued_make(taken=True)


def families(body: bytes) -> dict[str, dict[tuple, float]]:
    """{metric name: {label values: value}} from a Prometheus text exposition."""
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def scrape(client, **headers) -> dict[str, dict[tuple, float]]:
    response = client.get(METRICS, **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return families(response.content)


# --- the values -------------------------------------------------------------------------------


def test_the_figures_count_the_queue_the_waiting_the_failed_and_the_runs():
    seed(3)
    oldest = refund_waiting(amount=999)
    Proposal.objects.filter(pk=oldest.tool_call_id).update(
        waiting_since=timezone.now() - timedelta(hours=5, minutes=3)
    )
    latest = task_make(success=False, ago=timedelta(minutes=1), name="tool_call_execute_task:7")
    run_make(status=AgentRun.Status.QUEUED, ago=timedelta(days=30))  # unfinished, however old

    ops = operations_get()
    assert ops.broker == "orm" and ops.broker_up
    assert ops.queue_depth == 3 and ops.in_flight == 3 and ops.clusters is None
    assert ops.approvals_waiting == 4
    assert timedelta(hours=5, minutes=3) <= ops.oldest_approval_age < timedelta(hours=5, minutes=4)
    assert ops.tasks_failed == 4
    assert ops.last_failure_at == latest.stopped
    assert ops.failures[0].name == "tool_call_execute_task:7" and len(ops.failures) == 4
    # The refunds' own runs wait on their approvals.
    awaiting = AgentRun.objects.filter(status="awaiting_approval").count()
    assert awaiting >= 4
    assert ops.runs_active == {"queued": 1, "running": 3, "awaiting_approval": awaiting}
    # Started in the last 24 hours: the seeded runs (the refunds' own runs, waiting or done,
    # included), not the ones from two days or a month ago.
    recent = AgentRun.objects.filter(created_at__gte=timezone.now() - timedelta(hours=24))
    assert sum(ops.runs_recent.values()) == recent.count()
    assert ops.runs_recent["running"] == 3
    assert ops.runs_recent["completed"] == recent.filter(status="completed").count() >= 3


def test_the_endpoint_serves_the_same_figures_to_the_token(client, settings):
    settings.METRICS_TOKEN = TOKEN
    seed(2)
    Proposal.objects.filter(tool_call__status="awaiting_approval").update(
        waiting_since=timezone.now() - timedelta(minutes=30)
    )
    got = scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert got["countersign_broker_up"] == {(("broker", "orm"),): 1.0}
    assert got["countersign_task_queue_depth"] == {(): 2.0}
    assert got["countersign_task_queue_in_flight"] == {(): 2.0}
    assert "countersign_qcluster_clusters" not in got  # the ORM broker cannot tell
    assert got["countersign_approvals_waiting"] == {(): 2.0}
    [age] = got["countersign_approval_oldest_wait_seconds"].values()
    assert 1800 <= age < 1900
    assert got["countersign_tasks_failed_last_24h"] == {(): 2.0}
    assert "countersign_task_last_failure_timestamp_seconds" in got
    assert got["countersign_runs_active"][(("status", "running"),)] == 2.0
    assert got["countersign_runs_active"][(("status", "queued"),)] == 0.0
    assert set(got["countersign_runs_started_last_24h"]) == {
        (("status", value),) for value, _ in AgentRun.Status.choices
    }


def test_an_empty_site_reports_zeros_not_gaps(client, settings):
    settings.METRICS_TOKEN = TOKEN
    got = scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert got["countersign_approval_oldest_wait_seconds"] == {(): 0.0}
    assert got["countersign_task_queue_depth"] == {(): 0.0}
    assert "countersign_task_last_failure_timestamp_seconds" not in got


def test_a_broker_that_does_not_answer_is_reported_down_not_an_error(client, settings):
    settings.METRICS_TOKEN = TOKEN
    with mock.patch("django_q.brokers.orm.ORM.queue_size", side_effect=ConnectionError("gone")):
        got = scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert got["countersign_broker_up"] == {(("broker", "orm"),): 0.0}
    assert "countersign_task_queue_depth" not in got


# --- who may read it ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer ", f"Bearer {TOKEN}x", TOKEN],
)
def test_the_endpoint_refuses_without_the_token(client, settings, header):
    settings.METRICS_TOKEN = TOKEN
    refund_waiting()
    extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    response = client.get(METRICS, **extra)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"countersign_" not in response.content


def test_no_token_configured_means_no_token_is_accepted(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get(METRICS, HTTP_AUTHORIZATION="Bearer ").status_code == 401
    assert client.get(METRICS, HTTP_AUTHORIZATION="Bearer anything").status_code == 401


def test_staff_who_may_see_runs_and_failed_tasks_read_it_logged_in(client, settings):
    settings.METRICS_TOKEN = ""
    client.force_login(user_create(perms=OPERATOR))
    assert "countersign_approvals_waiting" in scrape(client)
    for perms, staff in ((OPERATOR[:1], True), (OPERATOR[1:], True), (OPERATOR, False)):
        client.force_login(user_create(perms=perms, staff=staff))
        assert client.get(METRICS).status_code == 401


def test_only_get_is_served(client, settings):
    settings.METRICS_TOKEN = TOKEN
    response = client.post(METRICS, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 405


# --- what it costs -----------------------------------------------------------------------------


def test_a_scrape_costs_the_same_queries_for_5_and_50_rows_of_each(client, settings):
    settings.METRICS_TOKEN = TOKEN
    seed(5)
    with CaptureQueriesContext(connection) as few:
        assert scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")[
            "countersign_approvals_waiting"
        ] == {(): 5.0}
    seed(45)
    with CaptureQueriesContext(connection) as many:
        assert scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")[
            "countersign_approvals_waiting"
        ] == {(): 50.0}
    assert len(many) == len(few), "\n".join(q["sql"][:200] for q in many.captured_queries)
    assert len(few) <= 8
