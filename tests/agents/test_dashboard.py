"""The console's home page: the dashboard's numbers, who sees which panel, what it costs."""

from __future__ import annotations

import itertools
import re
import uuid
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from agents.dashboard import Periods, panel_list
from agents.dashboard.charts import bar_chart, series_fill
from agents.models import AgentRun, ModelCall, Proposal, ToolCall
from sre.models import Incident, IncidentWindow, Spike, TrafficWindow
from sre.services.windows import window_start
from support.models import Ticket
from tests.factories.users import user_create
from tests.support.console_steps import refund_waiting, reply_waiting

pytestmark = pytest.mark.django_db

INDEX = reverse("admin:index")
INBOX = reverse("admin:agents_toolcall_approvals")
_numbers = itertools.count(1)


@pytest.fixture
def root(client) -> User:
    user = User.objects.create_superuser(username="root", password="pw")
    client.force_login(user)
    return user


def page(client) -> str:
    response = client.get(INDEX)
    assert response.status_code == 200
    return response.content.decode()


def panel(body: str, name: str) -> str:
    """The HTML of one panel of the dashboard (empty when it is not shown)."""
    match = re.search(rf'<section [^>]*id="cs-panel-{name}">(.*?)</section>', body, re.S)
    return match.group(1) if match else ""


def squash(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- rows --------------------------------------------------------------------------------------


def run_make(*, status: str = AgentRun.Status.COMPLETED, **fields) -> AgentRun:
    return AgentRun.objects.create(
        toolset="support",
        prompt_name="support",
        prompt_version=fields.pop("prompt_version", 1),
        system="",
        model="claude-sonnet-4-5",
        backend="replay",
        max_tokens=1024,
        status=status,
        **fields,
    )


def decided_call(
    *, run: AgentRun, decision: str, minutes: float, edited: bool = False, by=None
) -> ToolCall:
    """A consequential call Claude proposed and a person (or the sweep) decided."""
    proposed = {"amount": 4000, "customer_email": "a@test.com", "reason": "broken"}
    call = ToolCall.objects.create(
        run=run,
        tool_use_id=f"toolu_{uuid.uuid4().hex[:12]}",
        turn=1,
        position=0,
        tool_name="process_refund",
        input_proposed=proposed,
        requires_approval=True,
        approval_permission="support.approve_refund",
        status={
            ToolCall.Decision.APPROVED: ToolCall.Status.SUCCEEDED,
            ToolCall.Decision.REJECTED: ToolCall.Status.REJECTED,
            ToolCall.Decision.EXPIRED: ToolCall.Status.EXPIRED,
        }[decision],
        input_executed={**proposed, "amount": 2000} if edited else None,
    )
    ToolCall.objects.filter(pk=call.pk).update(
        decision=decision,
        decided_by=by,
        decided_at=call.created_at + timedelta(minutes=minutes),
    )
    return call


def refund_sent(*, amount: int, at) -> None:
    refund = refund_waiting(amount=amount, call_status=ToolCall.Status.SUCCEEDED)
    ToolCall.objects.filter(pk=refund.tool_call_id).update(finished_at=at)


def incident_make(*, status: str = Incident.Status.OPEN, windows: int = 0) -> Incident:
    now = timezone.now()
    incident = Incident.objects.create(
        fingerprint=f"tb1:{next(_numbers)}",
        fingerprint_version=1,
        category="code",
        title="KeyError: 'user_profile'",
        status=status,
        first_seen_at=now - timedelta(hours=3),
        last_seen_at=now,
        occurrences=windows,
    )
    start = window_start(now)
    IncidentWindow.objects.bulk_create(
        IncidentWindow(incident=incident, window_start=start - timedelta(minutes=5 * i), count=i)
        for i in range(1, windows + 1)
    )
    return incident


def world(n: int, *, approver: User) -> None:
    """n of each: waiting refunds, runs, decided calls, sent refunds, incidents, windows."""
    now = timezone.now()
    base = window_start(now) - timedelta(hours=12)
    offset = TrafficWindow.objects.count()
    for i in range(n):
        refund_waiting(amount=1000 + i, approved_by=approver if i % 3 == 0 else None)
        run = run_make(
            status=AgentRun.Status.FAILED if i % 4 == 0 else AgentRun.Status.COMPLETED,
            status_reason="The model kept failing.",
            prompt_version=1 + i % 2,
        )
        decided_call(
            run=run,
            decision=[ToolCall.Decision.APPROVED, ToolCall.Decision.REJECTED][i % 2],
            minutes=i,
            edited=i % 5 == 0,
            by=approver,
        )
        ModelCall.objects.create(run=run, step=1, backend="replay", model="m", cost_usd="0.01")
        refund_sent(amount=500, at=now)
        incident_make(windows=3)
        start = base + timedelta(minutes=5 * (offset + i))
        TrafficWindow.objects.create(window_start=start, requests=100, server_errors=i % 7)
        if i % 10 == 0:
            Spike.objects.create(window_start=start, server_errors=30, baseline=1, threshold=10)


# --- what it costs ---------------------------------------------------------------------------


def test_the_dashboard_costs_the_same_queries_for_5_and_50_rows_of_each(client, root):
    approver = user_create(perms=["support.approve_refund"])
    world(5, approver=approver)
    with CaptureQueriesContext(connection) as few:
        body = page(client)
    assert "<strong>5</strong> pending" in body
    world(45, approver=approver)
    with CaptureQueriesContext(connection) as many:
        body = page(client)
    assert "<strong>50</strong> pending" in body
    # A spike every 10 windows of a batch, drawn on the desk's chart and the phone's.
    assert body.count('class="cs-marker"') == 2 * (1 + 5)
    assert len(many) == len(few), "\n".join(q["sql"][:200] for q in many.captured_queries)
    print(f"dashboard queries: {len(few)} at 5 rows, {len(many)} at 50")
    assert len(few) <= 40


# --- the numbers -------------------------------------------------------------------------------


def test_each_waiting_refund_is_counted_once_with_its_age_and_total(client, root):
    first, second = user_create(), user_create()
    refund_waiting(amount=1500)
    # Two approvals needed, one given: still one refund waiting, not two.
    refund_waiting(amount=25000, approved_by=first)
    old = refund_waiting(amount=4000, approved_by=second)
    Proposal.objects.filter(pk=old.tool_call_id).update(  # the oldest
        waiting_since=timezone.now() - timedelta(hours=5, minutes=3)
    )
    refund_waiting(call_status=ToolCall.Status.REJECTED)  # decided: not waiting
    waiting = panel(page(client), "waiting")
    row = squash(re.search(r'<tr id="cs-waiting-process_refund">.*?</tr>', waiting, re.S)[0])
    assert "<strong>3</strong> pending" in waiting
    assert row.split() == ["Process", "refund", "3", "5", "h", "3", "min", "$305.00"]
    assert f'href="{INBOX}?kind=process_refund"' in waiting


def test_an_edited_refund_totals_its_edited_amount(client, root):
    refund = refund_waiting(amount=4000, approved_by=user_create())
    ToolCall.objects.filter(pk=refund.tool_call_id).update(
        input_executed={**refund.tool_call.input_proposed, "amount": 2500}
    )
    assert "$25.00" in panel(page(client), "waiting")


def test_refunds_sent_today_and_this_week(client, root):
    periods = Periods.at()
    refund_sent(amount=4000, at=periods.now)
    refund_sent(amount=1250, at=periods.now)
    refund_sent(amount=10000, at=periods.day - timedelta(seconds=1))  # before today
    refund_sent(amount=99900, at=periods.week - timedelta(seconds=1))  # last week
    failed = refund_waiting(amount=7000, call_status=ToolCall.Status.SUCCEEDED)
    failed.provider_status = "failed"
    failed.save(update_fields=["provider_status"])
    ToolCall.objects.filter(pk=failed.tool_call_id).update(finished_at=periods.now)
    refund_waiting(amount=3000)  # waiting, not sent
    refunds = squash(panel(page(client), "refunds"))
    today_has_yesterday = periods.day == periods.week  # on a Monday, yesterday is last week
    assert "$52.50 today · 2 refunds" in refunds
    week = "$52.50" if today_has_yesterday else "$152.50"
    count = 2 if today_has_yesterday else 3
    assert f"{week} this week (since Monday) · {count} refunds" in refunds


def test_runs_by_status_list_the_failed_and_escalated_ones(client, root):
    failed = run_make(status=AgentRun.Status.FAILED, status_reason="Over the cost cap.")
    escalated = run_make(status=AgentRun.Status.ESCALATED, status_reason="Needs a person.")
    done = run_make()
    old = run_make(status=AgentRun.Status.FAILED)
    AgentRun.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=8))
    runs = panel(page(client), "runs")
    for run in (failed, escalated):
        assert f'href="{reverse("admin:agents_agentrun_change", args=[run.pk])}"' in runs
    assert "Over the cost cap." in runs and "Needs a person." in runs
    assert f'id="cs-run-{done.pk}"' not in runs and f'id="cs-run-{old.pk}"' not in runs
    text = squash(runs)
    assert "3 started" in text and "2 failed or escalated" in text
    assert "Failed 1" in text and "Escalated 1" in text and "Completed 1" in text


def test_spend_today_and_this_week_against_the_per_run_cap(client, root, settings):
    settings.AGENTS_MAX_COST_USD = 2.0
    periods = Periods.at()
    run = run_make()
    for cost in ("0.25", "0.50"):
        ModelCall.objects.create(run=run, step=1, backend="replay", model="m", cost_usd=cost)
    # Model calls are append-only: this one is made "yesterday" rather than moved there.
    with mock.patch("django.utils.timezone.now", return_value=periods.day - timedelta(seconds=1)):
        ModelCall.objects.create(run=run, step=2, backend="replay", model="m", cost_usd="1")
    AgentRun.objects.filter(pk=run.pk).update(cost_usd=Decimal("1.75"))
    spend = squash(panel(page(client), "spend"))
    week = "$0.75" if periods.day == periods.week else "$1.75"
    assert "$0.75 today · 2 model calls" in spend
    assert f"{week} this week" in spend
    assert "$2.00 per run" in spend and "There is no daily or weekly cap" in spend
    assert f"run #{run.pk} , $1.75 (88% of its cap)" in spend


def test_decision_quality_per_tool_and_prompt_version(client, root):
    person = user_create()
    v1, v2 = run_make(prompt_version=1), run_make(prompt_version=2)
    decided_call(run=v1, decision="approved", minutes=10, by=person)
    decided_call(run=v1, decision="approved", minutes=20, by=person)
    decided_call(run=v1, decision="approved", minutes=40, edited=True, by=person)
    decided_call(run=v1, decision="rejected", minutes=60, by=person)
    decided_call(run=v1, decision="expired", minutes=999)  # not timed
    decided_call(run=v2, decision="rejected", minutes=5, by=person)
    rows = [
        squash(r)
        for r in re.findall(r'<tr id="cs-quality-.*?</tr>', panel(page(client), "quality"), re.S)
    ]
    assert [r.split() for r in rows] == [
        ["process_refund", "support", "v1", "2", "(40%)", "1", "1", "1", "30", "min"],
        ["process_refund", "support", "v2", "0", "(0%)", "0", "1", "0", "5", "min"],
    ]


def test_open_incidents_by_status_with_their_occurrences_drawn(client, root):
    shown = incident_make(windows=4)
    incident_make(status=Incident.Status.INVESTIGATING)
    incident_make(status=Incident.Status.RESOLVED)
    incidents = panel(page(client), "incidents")
    text = squash(incidents)
    assert "2 open" in text and "Open 1" in text and "Investigating 1" in text
    assert "Resolved" not in text
    chart = re.search(rf'<div id="cs-incident-{shown.pk}">.*?</figure>', incidents, re.S)[0]
    assert '<svg viewBox="0 0 320 96" width="100%"' in chart
    assert f'<title id="cs-incident-chart-{shown.pk}-title">Incident #{shown.pk}' in chart
    assert "10 occurrences from" in chart  # 1 + 2 + 3 + 4, in the description


def test_the_incident_page_draws_its_occurrences(client, root):
    incident = incident_make(windows=5)
    response = client.get(reverse("admin:sre_incident_change", args=[incident.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert 'viewBox="0 0 600 180" width="100%"' in body
    assert f"Incident #{incident.pk}: occurrences per 5-minute window" in body
    assert "15 occurrences from" in body and "The values as a table" in body


def _five_hundreds(at, count: int) -> None:
    from sre.models import ErrorRequest

    ErrorRequest.objects.bulk_create(
        ErrorRequest(occurred_at=at, status=500, method="GET", path="/x", line="500")
        for _ in range(count)
    )


def test_the_5xx_chart_counts_per_minute_marks_spikes_and_has_a_table(client, root):
    """Every 5xx line is stored, so the chart counts them per minute, not per window."""
    start = window_start(timezone.now()) - timedelta(hours=1)
    _five_hundreds(start + timedelta(seconds=10), 3)
    _five_hundreds(start + timedelta(minutes=5, seconds=30), 40)
    _five_hundreds(start - timedelta(days=2), 999)  # older than 24 hours: not drawn
    Spike.objects.create(
        window_start=start + timedelta(minutes=5), server_errors=40, baseline=1, threshold=10
    )
    traffic = panel(page(client), "traffic")
    # Drawn twice, for a desk and a phone; the page's CSS shows one.
    assert 'viewBox="0 0 1100 220" width="100%"' in traffic
    assert 'viewBox="0 0 600 240" width="100%"' in traffic
    assert traffic.count('class="cs-marker"') == 2
    assert "43 5xx responses from" in traffic and "the most, 40" in traffic
    assert "per minute" in traffic and "in the minute from" in traffic
    assert (
        "spike: 40 5xx in the 5-minute window from here, over the threshold 10" in traffic
    )  # the table's note
    assert "999" not in traffic


def test_series_are_filled_with_zeros_and_bars_scale_to_the_peak():
    start = window_start(timezone.now())
    step = timedelta(minutes=5)
    series = series_fill(values={start + step: 4}, since=start, until=start + 3 * step, step=step)
    assert [v for _, v in series] == [0, 4, 0, 0]
    chart = bar_chart(title="t", unit="x", series=series, marks={start + step: "spike"})
    assert chart.path == "" and chart.marked_path.count("M") == 1 and chart.peak == 4
    assert [b.value for b in chart.rows] == [4]


# --- who sees what ---------------------------------------------------------------------------


PANELS = {"waiting", "incidents", "refunds", "runs", "operations", "spend", "traffic", "quality"}


def test_each_panel_shows_only_to_whoever_may_view_what_it_shows(client):
    refund_waiting()
    incident_make()
    seen = {}
    for perms in (
        [],
        ["support.view_refund"],
        ["support.approve_refund"],
        ["sre.view_incident"],
        ["agents.view_agentrun", "agents.view_modelcall"],
        ["agents.view_toolcall", "sre.view_trafficwindow"],
    ):
        user = user_create(perms=perms)
        client.force_login(user)
        body = page(client)
        seen[tuple(perms)] = {name for name in PANELS if f'id="cs-panel-{name}"' in body}
        assert seen[tuple(perms)] == {p.name for p in panel_list(user=user)}
        # The app list stays reachable below the dashboard.
        assert 'id="content-main"' in body and 'id="recent-actions-module"' in body
    assert seen == {
        (): set(),
        ("support.view_refund",): {"refunds"},
        ("support.approve_refund",): {"waiting"},
        ("sre.view_incident",): {"incidents"},
        ("agents.view_agentrun", "agents.view_modelcall"): {"runs", "spend"},
        ("agents.view_toolcall", "sre.view_trafficwindow"): {"waiting", "quality", "traffic"},
    }


def test_an_approver_sees_only_their_kinds_waiting(client):
    refund_waiting(amount=4000)
    reply_waiting(ticket=Ticket.objects.get())
    client.force_login(user_create(perms=["support.send_reply"]))
    waiting = panel(page(client), "waiting")
    assert "<strong>1</strong> pending" in waiting
    assert 'id="cs-waiting-reply_to_customer"' in waiting
    assert "process_refund" not in waiting and "$40.00" not in waiting
