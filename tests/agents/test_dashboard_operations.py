"""The dashboard's Operations panel: the queue, the oldest wait, failed tasks, live runs."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from agents.groups import AUDITORS
from agents.models import AgentRun, Proposal
from tests.agents.test_dashboard import page, panel, squash
from tests.agents.test_metrics import OPERATOR, queued_make, run_make, seed, task_make
from tests.factories.users import user_create
from tests.support.console_steps import refund_waiting

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = user_create(perms=OPERATOR)
    client.force_login(user)
    return user


def test_the_panel_shows_the_queue_the_oldest_wait_and_the_failed_tasks(client, operator):
    seed(2)
    Proposal.objects.filter(tool_call__status="awaiting_approval").update(
        waiting_since=timezone.now() - timedelta(hours=2, minutes=5)
    )
    failed = task_make(success=False, ago=timedelta(minutes=3), name="run_advance_task:41:2")
    run_make(status=AgentRun.Status.QUEUED)
    html = panel(page(client), "operations")
    text = squash(html)
    assert "2 tasks waiting in the queue" in text
    assert "2 h 5 min oldest wait on a person (2 waiting)" in text
    assert "3 failed tasks, last 24 h" in text
    assert 'class="cs-figure cs-alarm" id="cs-ops-failed"' in html
    assert "ORM broker (the database) · 2 tasks taken, not yet done" in text
    assert "Queued 1" in text and "Running 2" in text
    # The latest failure first, linked to django-q2's own page for it, which opens.
    url = reverse("admin:django_q_failure_change", args=[failed.id])
    assert html.index(f'id="cs-failure-{failed.id}"') < html.index("cs-failure-", html.index(url))
    assert f'href="{url}"' in html and "3 minutes ago" in text
    assert client.get(url).status_code == 200
    assert client.get(reverse("admin:django_q_failure_changelist")).status_code == 200
    # Only names and when: a failure's traceback stays on its own page.
    assert "secret-looking detail" not in html


def test_a_quiet_site_shows_zeros_and_no_alarm(client, operator):
    text = squash(panel(page(client), "operations"))
    assert "0 tasks waiting in the queue" in text
    assert "— oldest wait on a person (0 waiting)" in text
    assert "0 failed tasks" in text and "cs-alarm" not in panel(page(client), "operations")


def test_redis_says_how_many_clusters_report_and_a_silent_broker_is_an_alarm(client, operator):
    with mock.patch("agents.metrics._broker_figures", return_value=("redis", True, 7, None, 2)):
        text = squash(panel(page(client), "operations"))
    assert "7 tasks waiting in the queue" in text and "Redis broker · 2 qclusters reporting" in text
    with mock.patch(
        "agents.metrics._broker_figures", return_value=("redis", False, None, None, None)
    ):
        html = panel(page(client), "operations")
    assert "The task broker (REDIS) did not answer." in squash(html)
    assert '<span class="cs-alarm">—</span>' in html


def test_only_staff_who_may_see_runs_and_failed_tasks_see_it(client):
    for perms, shown in (
        ([], False),
        (["agents.view_agentrun"], False),
        (["django_q.view_failure"], False),
        (OPERATOR, True),
    ):
        client.force_login(user_create(perms=perms))
        assert ('id="cs-panel-operations"' in page(client)) is shown, perms
    client.force_login(user_create(groups=[AUDITORS]))
    assert 'id="cs-panel-operations"' in page(client)


def test_the_panel_costs_the_same_queries_for_5_and_50_rows_of_each(client, operator):
    seed(5)
    refund_waiting()
    with CaptureQueriesContext(connection) as few:
        assert "6 waiting" in squash(panel(page(client), "operations"))
    seed(45)
    queued_make()
    with CaptureQueriesContext(connection) as many:
        assert "51 waiting" in squash(panel(page(client), "operations"))
    assert len(many) == len(few), "\n".join(q["sql"][:200] for q in many.captured_queries)
