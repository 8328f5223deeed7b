"""Every page of the console's engine admin renders, and list pages cost the same for any size."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from agents.context_processors import live_parts_list
from agents.models import AgentRun, AuditEvent, ModelCall, ToolCall
from agents.services import proposal_approve, run_start
from tests.agents.admin_steps import SHIP, THINKING, page_text, review_url, run_awaiting

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user() -> User:
    return User.objects.create_superuser(username="root", password="pw")


def test_header_names_the_console_and_labels_stand_ins(client, admin_user, settings):
    settings.AGENTS_LLM_BACKEND = "replay"
    client.force_login(admin_user)
    text = page_text(client.get(reverse("admin:index")))
    assert '<div id="site-name"><a href="/admin/">Countersign</a></div>' in text
    assert "replay of recorded replies" in text
    assert "database (ORM broker)" in text
    # Every part that is not the real service says so, and only those.
    parts = live_parts_list()
    assert text.count("<strong>stand-in</strong>") == sum(not p["real"] for p in parts) >= 2
    for part in parts:
        assert part["value"] in text


def test_header_strip_is_not_shown_on_the_login_page(client):
    text = page_text(client.get(reverse("admin:login")))
    assert "Countersign" in text and 'class="cs-live"' not in text


def test_every_page_renders(client, admin_user, fake_anthropic, worker, widgets):
    run, ship = run_awaiting(fake_anthropic, worker)
    client.force_login(admin_user)
    lookup = ToolCall.objects.get(run=run, tool_name="lookup_widget")
    pages = {
        reverse("admin:index"): ["Inbox: waiting for a person", "<strong>1</strong> pending"],
        reverse("admin:agents_agentrun_changelist"): ["Warehouse", "Awaiting approval"],
        reverse("admin:agents_agentrun_change", args=[run.pk]): ["Timeline", "Cancel run"],
        reverse("admin:agents_toolcall_changelist"): [
            "Audit log: tool calls",
            "Export CSV",
            "Export JSON Lines",
            "Approvals (1 pending)",
        ],
        reverse("admin:agents_toolcall_change", args=[ship.pk]): ["Review this call", "1 Main St"],
        reverse("admin:agents_toolcall_change", args=[lookup.pk]): ["&quot;stock&quot;: 10"],
        reverse("admin:agents_modelcall_changelist"): ["Audit log: model calls", "Export CSV"],
        reverse("admin:agents_modelcall_change", args=[run.model_calls.first().pk]): ["msg_fake_"],
        reverse("admin:agents_auditevent_changelist"): ["Audit log: decisions and events"],
        reverse("admin:agents_auditevent_change", args=[run.events.get(kind="run.started").pk]): [
            "run.started"
        ],
        reverse("admin:agents_toolcall_approvals"): ["ship_widget", "Review", "1 Main St"],
        review_url(ship): ["Approve as proposed", "Stock is 10", "valid"],
    }
    for url, expected in pages.items():
        response = client.get(url)
        assert response.status_code == 200, url
        text = page_text(response)
        for fragment in expected:
            assert fragment in text, (url, fragment)
    for name in ("toolcall", "modelcall", "auditevent"):
        for fmt in ("csv", "jsonl"):
            response = client.get(reverse(f"admin:agents_{name}_export", args=[fmt]))
            assert response.status_code == 200 and response.streaming, (name, fmt)
            assert "attachment;" in response["Content-Disposition"]
            assert b"".join(response.streaming_content).strip(), (name, fmt)


def test_run_detail_shows_the_timeline_in_order(
    client, admin_user, fake_anthropic, worker, widgets
):
    run, ship = run_awaiting(fake_anthropic, worker)
    client.force_login(admin_user)
    response = client.get(reverse("admin:agents_agentrun_change", args=[run.pk]))
    text = page_text(response)
    model_call = run.model_calls.order_by("id").first()
    lookup = ToolCall.objects.get(run=run, tool_name="lookup_widget")
    in_order = [
        "Please ship two gears to 1 Main St.",  # the first user message
        "run.started",
        model_call.request_id,  # the first reply, with its model call
        "Check stock first.",
        f'id="call-{lookup.tool_use_id}"',  # the lookup call
        f"tool_result for {lookup.tool_use_id}",  # its result went back
        "run.results_sent",
        "Stock is 10, enough for two.",  # the reply proposing the shipment
        f'id="call-{ship.tool_use_id}"',
    ]
    positions = [text.index(fragment) for fragment in in_order]
    assert positions == sorted(positions)
    assert "&quot;quantity&quot;: 2" in text  # tool_use input as JSON
    assert f"{model_call.latency_ms} ms" in text and "stop: tool_use" in text
    entries = response.context["timeline"]
    assert {e.kind for e in entries} == {"message", "tool_call", "event"}
    assert [e.at for e in entries] == sorted(e.at for e in entries)


def test_replay_runs_are_labelled_in_the_run_list(client, admin_user, worker, widgets, settings):
    settings.AGENTS_LLM_BACKEND = "replay"
    with worker.committing():
        run_start(toolset="toolbox", user_message="Please ship two gears.")
    worker.drain()
    client.force_login(admin_user)
    text = page_text(client.get(reverse("admin:agents_agentrun_changelist")))
    assert (
        '<span class="cs-badge cs-standin" title="Recorded replies, not Claude">replay</span>'
        in text
    )
    run = AgentRun.objects.get()
    text = page_text(client.get(reverse("admin:agents_agentrun_change", args=[run.pk])))
    assert "replay: recorded replies, not Claude" in text
    assert THINKING not in text and "Check stock first." in text


LIST_PAGES = [
    "admin:index",
    "admin:agents_agentrun_changelist",
    "admin:agents_toolcall_changelist",
    "admin:agents_modelcall_changelist",
    "admin:agents_auditevent_changelist",
    "admin:agents_toolcall_approvals",
]


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("name", LIST_PAGES)
def test_list_page_queries_do_not_grow_with_rows(
    name, client, admin_user, fake_anthropic, worker, widgets
):
    run_awaiting(fake_anthropic, worker, subject_id=1)
    client.force_login(admin_user)
    url = reverse(name)
    client.get(url)  # warm the session and content-type caches
    one = _queries(client, url)
    for number in range(2, 6):
        run_awaiting(fake_anthropic, worker, subject_id=number)
    assert ToolCall.objects.filter(status=ToolCall.Status.AWAITING_APPROVAL).count() == 5
    assert _queries(client, url) == one


def test_run_detail_queries_do_not_grow_with_the_timeline(
    client, admin_user, fake_anthropic, worker, widgets
):
    run, ship = run_awaiting(fake_anthropic, worker)
    client.force_login(admin_user)
    url = reverse("admin:agents_agentrun_change", args=[run.pk])
    client.get(url)
    before = _queries(client, url)
    events = AuditEvent.objects.filter(run=run).count()
    fake_anthropic.push_tool_use(("ship_widget", {**SHIP, "quantity": 1}))
    with worker.committing():
        proposal_approve(tool_call_id=ship.pk, user=admin_user)
    worker.drain()
    assert ModelCall.objects.filter(run=run).count() == 3
    assert AuditEvent.objects.filter(run=run).count() > events
    assert _queries(client, url) == before
