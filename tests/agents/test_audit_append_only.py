"""Audit rows cannot be changed or deleted: not by services, not by the ORM, not by raw SQL."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from agents.audit import audit_record
from agents.models import Approval, AuditEvent, AuditImmutable, ModelCall, ToolCall
from tests.agents.helpers import SHIP, start
from tests.factories.users import user_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows(fake_anthropic, worker, widgets):
    """A finished lookup, a call awaiting approval, a model call and an audit event."""
    fake_anthropic.push_tool_use(("lookup_widget", {"name": "gear"}))
    fake_anthropic.push_tool_use(("ship_widget", SHIP))
    run = start(worker)
    worker.drain()
    done, waiting = ToolCall.objects.filter(run=run).order_by("turn")
    approval = Approval.objects.create(proposal=waiting.proposal, user=user_create(), note="ok")
    return {
        "done": done,
        "waiting": waiting,
        "model_call": ModelCall.objects.filter(run=run).first(),
        "event": AuditEvent.objects.filter(run=run).order_by("id").first(),
        "approval": approval,
    }


def refused(fn) -> bool:
    try:
        with transaction.atomic():
            fn()
    except (DatabaseError, AuditImmutable):
        return True
    return False


@pytest.mark.parametrize("key", ["done", "waiting", "model_call", "event", "approval"])
def test_rows_cannot_be_deleted_by_the_orm_or_raw_sql(rows, key):
    row = rows[key]
    model = type(row)
    assert refused(row.delete)
    assert refused(model.objects.filter(pk=row.pk).delete)
    table = model._meta.db_table
    with connection.cursor() as cursor:
        assert refused(lambda: cursor.execute(f"DELETE FROM {table} WHERE id = %s", [row.pk]))
    assert model.objects.filter(pk=row.pk).exists()


@pytest.mark.parametrize(
    "change",
    [
        {"input_proposed": {"name": "gear", "quantity": 99, "address": "x"}},
        {"tool_name": "lookup_widget"},
        {"tool_use_id": "toolu_forged"},
        {"requires_approval": False},
        {"validation_errors": []},
    ],
)
def test_recorded_facts_of_a_tool_call_cannot_change(rows, change):
    call = rows["waiting"]
    assert refused(lambda: ToolCall.objects.filter(pk=call.pk).update(**change))
    assert refused(lambda: [setattr(call, k, v) for k, v in change.items()] and call.save())


def test_a_tool_calls_later_facts_are_written_once(rows):
    done = rows["done"]
    assert refused(lambda: ToolCall.objects.filter(pk=done.pk).update(result="forged"))
    assert refused(lambda: ToolCall.objects.filter(pk=done.pk).update(is_error=True))
    assert refused(lambda: ToolCall.objects.filter(pk=done.pk).update(status="awaiting_approval"))
    assert refused(lambda: ToolCall.objects.filter(pk=done.pk).update(finished_at=None))
    # Filling an empty fact is how the workflow records it, once.
    waiting = rows["waiting"]
    assert not refused(lambda: ToolCall.objects.filter(pk=waiting.pk).update(decision_reason="x"))
    assert refused(lambda: ToolCall.objects.filter(pk=waiting.pk).update(decision_reason="y"))


def test_model_calls_and_events_cannot_change_at_all(rows):
    call, event = rows["model_call"], rows["event"]
    assert refused(lambda: ModelCall.objects.filter(pk=call.pk).update(stop_reason="end_turn"))
    assert refused(lambda: ModelCall.objects.filter(pk=call.pk).update(input_tokens=0))
    assert refused(lambda: AuditEvent.objects.filter(pk=event.pk).update(message="forged"))
    with connection.cursor() as cursor:
        table = AuditEvent._meta.db_table
        assert refused(
            lambda: cursor.execute(f"UPDATE {table} SET kind = 'x' WHERE id = %s", [event.pk])
        )
    event.refresh_from_db()
    assert event.kind == "run.started"


def test_new_events_can_always_be_appended(rows):
    before = AuditEvent.objects.count()
    audit_record(kind="note", message="appended", subject_type="toolbox.order", subject_id=7)
    assert AuditEvent.objects.count() == before + 1


def test_an_approval_cannot_be_rewritten(rows):
    approval = rows["approval"]
    other = user_create()
    assert refused(lambda: Approval.objects.filter(pk=approval.pk).update(user=other))
    with connection.cursor() as cursor:
        assert refused(
            lambda: cursor.execute(
                "UPDATE agents_approval SET note = 'forged' WHERE id = %s", [approval.pk]
            )
        )
    assert Approval.objects.get(pk=approval.pk).note == "ok"
