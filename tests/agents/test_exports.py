"""The CSV export writes each row's cells as the generic conversion would, on either database.

On PostgreSQL the export has the database write JSON and timestamps as text (much faster than
decoding them in Python); these tests hold that it makes the very cells `csv_lines` makes from
the decoded values, for every column of every exported list.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.db.models import F
from django.urls import reverse

from agents.admin.audit import AuditEventAdmin, ModelCallAdmin, ToolCallAdmin
from agents.exports import csv_lines
from agents.models import AuditEvent, ModelCall, ToolCall
from bench.console_load import load

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(client):
    client.force_login(User.objects.create_superuser(username="root", password="pw"))
    return client


def _generic(queryset, columns: dict[str, str]) -> list[list[str]]:
    plain = [name for name, lookup in columns.items() if name == lookup]
    aliased = {name: F(lookup) for name, lookup in columns.items() if name != lookup}
    text = "".join(csv_lines(queryset.values(*plain, **aliased), list(columns)))
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize(
    "name, model, model_admin",
    [
        ("toolcall", ToolCall, ToolCallAdmin),
        ("modelcall", ModelCall, ModelCallAdmin),
        ("auditevent", AuditEvent, AuditEventAdmin),
    ],
)
def test_the_export_makes_the_cells_the_rows_make(root, name, model, model_admin):
    # Whole seconds, milliseconds and microseconds: isoformat writes each differently.
    load(tool_calls=120, copy=False, end=datetime(2026, 3, 14, 9, 26, 53, 5, tzinfo=UTC),
         say=lambda line: None)  # fmt: skip
    response = root.get(reverse(f"admin:agents_{name}_export", args=["csv"]))
    assert response.status_code == 200
    exported = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    expected = _generic(model.objects.order_by("-created_at", "-id"), model_admin.export_columns)
    assert len(exported) == model.objects.count() + 1
    assert exported == expected


def test_odd_values_are_the_same_cells(root, admin_user):
    """Strings in JSON, formulas, quotes, new lines and non-ASCII letters, None and booleans."""
    from tests.factories.proposals import proposal_waiting

    call = proposal_waiting(
        toolset="toolbox",
        tool_name="ship_widget",
        permission="toolbox.approve_shipment",
        input={"name": "=HYPERLINK(1)", "address": 'Müllerstraße "5"\n\tKöln', "n": [1, None]},
        subject=("toolbox.widget", 1),
    ).tool_call
    ToolCall.objects.filter(pk=call.pk).update(result="=cmd|' /C calc'!A0", is_error=False)
    response = root.get(reverse("admin:agents_toolcall_export", args=["csv"]))
    exported = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    expected = _generic(
        ToolCall.objects.order_by("-created_at", "-id"), ToolCallAdmin.export_columns
    )
    assert exported == expected
    row = dict(zip(exported[0], exported[1], strict=True))
    assert row["result"] == "'=cmd|' /C calc'!A0" and row["is_error"] == "false"
    assert "Müllerstraße" in row["input_proposed"]
