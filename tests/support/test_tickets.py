"""Ticket status transitions: compare-and-set, one audit row each, nothing on a bad start."""

from __future__ import annotations

import pytest

from agents.models import AuditEvent
from agents.services import InvalidTransition
from support import services
from support.models import Ticket
from support.services.tickets import TRANSITIONS
from tests.factories.users import user_create

pytestmark = pytest.mark.django_db

Status = Ticket.Status
SERVICES = {verb: getattr(services, f"ticket_{verb}") for verb in TRANSITIONS}
VALID = [(verb, start) for verb, (sources, _) in TRANSITIONS.items() for start in sorted(sources)]
INVALID = [
    (verb, start)
    for verb, (sources, _) in TRANSITIONS.items()
    for start in Status.values
    if start not in sources
]


def ticket(status: str) -> Ticket:
    return Ticket.objects.create(customer_email="bob@test.com", subject="Widget", status=status)


@pytest.mark.parametrize(("verb", "start"), VALID)
def test_each_transition_from_each_valid_state(verb, start):
    user = user_create()
    t = ticket(start)
    result = SERVICES[verb](ticket_id=t.pk, actor=user, reason="because")
    target = TRANSITIONS[verb][1]
    t.refresh_from_db()
    assert result.status == t.status == target
    assert t.status_reason == "because"
    event = AuditEvent.objects.get(kind=f"ticket.{verb}")
    assert (event.subject_type, event.subject_id) == ("support.ticket", str(t.pk))
    assert event.actor == user and event.data == {"from": start, "to": target}


@pytest.mark.parametrize(("verb", "start"), INVALID)
def test_each_transition_refuses_each_invalid_state_and_writes_nothing(verb, start):
    t = ticket(start)
    with pytest.raises(InvalidTransition, match=f"Ticket #{t.pk} is"):
        SERVICES[verb](ticket_id=t.pk, reason="no")
    t.refresh_from_db()
    assert t.status == start and t.status_reason == ""
    assert not AuditEvent.objects.exists()


def test_a_transition_that_loses_the_race_writes_nothing(monkeypatch):
    t = ticket(Status.NEW)
    real_get = Ticket.objects.get

    def get_then_someone_else_moves_it(**kwargs):
        found = real_get(**kwargs)
        Ticket.objects.filter(pk=t.pk).update(status=Status.ESCALATED)
        return found

    monkeypatch.setattr(Ticket.objects, "get", get_then_someone_else_moves_it)
    with pytest.raises(InvalidTransition, match="changed status meanwhile"):
        services.ticket_triage(ticket_id=t.pk)
    # (The other writer's change shares this test's transaction, so it is rolled back too.)
    assert real_get(pk=t.pk).status != Status.TRIAGING
    assert not AuditEvent.objects.exists()
