"""A person's decision shows in the admin's "Recent actions" box, linked to the call."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.urls import reverse

from agents.services import proposal_approve, proposal_reject
from tests.agents.admin_steps import run_awaiting

pytestmark = pytest.mark.django_db


@pytest.fixture
def person() -> User:
    return User.objects.create_superuser(username="ada", password="pw")


def test_an_approval_is_a_recent_action(client, person, fake_anthropic, worker, widgets):
    run, ship = run_awaiting(fake_anthropic, worker)
    fake_anthropic.push_text("Shipped.")
    with worker.committing():
        proposal_approve(tool_call_id=ship.pk, user=person)
    worker.drain()
    [entry] = LogEntry.objects.all()
    assert (entry.user, entry.object_id, entry.action_flag) == (person, str(ship.pk), 2)
    assert entry.change_message == "Approved ship_widget"
    client.force_login(person)
    text = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:agents_toolcall_change", args=[ship.pk]) in text


def test_a_rejection_is_a_recent_action_with_its_reason(person, fake_anthropic, worker, widgets):
    run, ship = run_awaiting(fake_anthropic, worker)
    fake_anthropic.push_text("OK.")
    with worker.committing():
        proposal_reject(tool_call_id=ship.pk, user=person, reason="Wrong address")
    worker.drain()
    [entry] = LogEntry.objects.all()
    assert entry.change_message == "Rejected ship_widget: Wrong address"


def test_a_refused_decision_logs_nothing(person, fake_anthropic, worker, widgets):
    run, ship = run_awaiting(fake_anthropic, worker)
    with pytest.raises(Exception, match="needs a reason"):
        proposal_reject(tool_call_id=ship.pk, user=person, reason=" ")
    assert not LogEntry.objects.exists()
