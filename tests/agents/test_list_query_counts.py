"""Every list page costs the same number of queries for 5 rows as for 50."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from agents.models import AgentRun, AuditEvent, ModelCall, ToolCall
from sre.models import Incident
from support.models import Ticket
from tests.agents.admin_steps import run_awaiting
from tests.sre.agent_steps import code_incident

pytestmark = pytest.mark.django_db

ENGINE_PAGES = {
    "admin:agents_auditevent_changelist": AuditEvent,
    "admin:agents_toolcall_changelist": ToolCall,
    "admin:agents_modelcall_changelist": ModelCall,
    "admin:agents_agentrun_changelist": AgentRun,
}


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


@pytest.fixture
def root_client(client):
    client.force_login(User.objects.create_superuser(username="root", password="pw"))
    return client


def test_engine_lists_at_5_and_50_runs(root_client, fake_anthropic, worker, widgets):
    for number in range(5):
        run_awaiting(fake_anthropic, worker, subject_id=number + 1)
    urls = {name: reverse(name) for name in ENGINE_PAGES}
    for url in urls.values():
        root_client.get(url)  # warm the session and content-type caches
    few = {name: _queries(root_client, url) for name, url in urls.items()}
    for number in range(5, 50):
        run_awaiting(fake_anthropic, worker, subject_id=number + 1)
    assert AgentRun.objects.count() == 50 and AuditEvent.objects.count() >= 50
    many = {name: _queries(root_client, url) for name, url in urls.items()}
    assert many == few


def test_tickets_and_incidents_at_5_and_50(root_client):
    def grow(count: int) -> None:
        for _ in range(count):
            n = Ticket.objects.count()
            Ticket.objects.create(customer_email=f"c{n}@test.com", subject=f"Ticket {n}")
            code_incident()

    urls = [reverse("admin:support_ticket_changelist"), reverse("admin:sre_incident_changelist")]
    grow(5)
    for url in urls:
        root_client.get(url)
    few = [_queries(root_client, url) for url in urls]
    grow(45)
    assert Ticket.objects.count() == Incident.objects.count() == 50
    assert [_queries(root_client, url) for url in urls] == few


def test_patches_at_5_and_50(root_client):
    """Patch rows as the SRE tool leaves them (a proposal and its incident), without git."""
    from sre.models import PatchProposal
    from tests.factories.proposals import proposal_waiting

    def grow(count: int) -> None:
        for _ in range(count):
            incident = code_incident()
            proposal = proposal_waiting(
                toolset="sre",
                tool_name="create_pull_request",
                permission="sre.approve_patch",
                input={"title": "Fix KeyError", "root_cause": "upstream omits user_profile"},
                subject=("sre.incident", incident.pk),
            )
            PatchProposal.objects.create(
                tool_call=proposal.tool_call,
                incident=incident,
                diff="--- a/app/api.py\n+++ b/app/api.py\n",
                changed_files=["app/api.py"],
                branch=f"sre/incident-{incident.pk}-keyerror",
            )

    url = reverse("admin:sre_patchproposal_changelist")
    grow(5)
    root_client.get(url)
    few = _queries(root_client, url)
    grow(45)
    assert PatchProposal.objects.count() == 50
    assert _queries(root_client, url) == few


def _other_rows(i: int) -> None:
    """One row of each remaining list: notices, Slack links and presses, rejected mail, log
    sources, spikes and traffic windows."""
    from datetime import UTC, datetime, timedelta

    from agents.models import Notice, SlackIdentity, SlackInteraction
    from sre.models import LogSource, Spike, TrafficWindow
    from support.models import RejectedEmail

    when = datetime(2025, 3, 14, tzinfo=UTC) + timedelta(minutes=5 * i)
    person = User.objects.create_user(username=f"person{i}", password="pw")
    Notice.objects.create(key=f"notice:{i}", medium="slack", state="posted", channel="C1")
    SlackIdentity.objects.create(slack_user_id=f"U{i:05d}", user=person)
    SlackInteraction.objects.create(
        trigger_id=f"t{i}", kind="block_actions", slack_user_id=f"U{i:05d}", user=person
    )
    RejectedEmail.objects.create(
        source="file", reason="not a mail", digest=f"{i:064d}", raw=b"x", last_seen_at=when
    )
    LogSource.objects.create(kind="nginx_access", path=f"/var/log/nginx/access-{i}.log")
    Spike.objects.create(window_start=when, server_errors=40, baseline=2, threshold=10)
    TrafficWindow.objects.create(window_start=when, requests=100, server_errors=3)


OTHER_LISTS = [
    "admin:agents_notice_changelist",
    "admin:agents_slackidentity_changelist",
    "admin:agents_slackinteraction_changelist",
    "admin:support_rejectedemail_changelist",
    "admin:sre_logsource_changelist",
    "admin:sre_spike_changelist",
    "admin:sre_trafficwindow_changelist",
]


def test_every_other_list_at_5_and_50(root_client):
    urls = [reverse(name) for name in OTHER_LISTS]
    for i in range(5):
        _other_rows(i)
    for url in urls:
        root_client.get(url)
    few = [_queries(root_client, url) for url in urls]
    for i in range(5, 50):
        _other_rows(i)
    assert [_queries(root_client, url) for url in urls] == few
