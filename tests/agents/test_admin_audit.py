"""The audit log admins: read-only for everyone, searchable inside JSON, exportable as filtered."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from agents.exports import csv_lines
from agents.groups import AUDITORS, groups_sync
from agents.models import AgentRun, AuditEvent, ModelCall, ToolCall
from agents.services import proposal_reject, run_start
from tests.agents.admin_steps import SHIP, page_text, review_url, run_awaiting
from tests.factories.users import user_create

pytestmark = pytest.mark.django_db

LOGS = [("toolcall", ToolCall), ("modelcall", ModelCall), ("auditevent", AuditEvent)]


@pytest.fixture
def admin_user() -> User:
    return User.objects.create_superuser(username="root", password="pw")


@pytest.fixture
def auditor() -> User:
    if not Group.objects.filter(name=AUDITORS).exists():
        groups_sync()
    return user_create(groups=[AUDITORS])


@pytest.fixture
def awaiting(fake_anthropic, worker, widgets) -> tuple[AgentRun, ToolCall]:
    return run_awaiting(fake_anthropic, worker)


def _snapshot(model) -> list[dict]:
    return list(model.objects.order_by("pk").values())


def test_the_auditors_group_exists_after_migrate():
    auditors = Group.objects.get(name=AUDITORS)
    codenames = set(auditors.permissions.values_list("codename", flat=True))
    assert {"view_agentrun", "view_toolcall", "view_modelcall", "view_auditevent"} <= codenames
    assert not any(c.startswith(("add_", "change_", "delete_", "cancel_")) for c in codenames)


@pytest.mark.parametrize(("name", "model"), LOGS)
def test_audit_admins_refuse_add_change_and_delete(client, admin_user, awaiting, name, model):
    client.force_login(admin_user)
    row = model.objects.order_by("pk").first()
    before = _snapshot(model)

    assert client.get(reverse(f"admin:agents_{name}_add")).status_code == 403
    assert client.post(reverse(f"admin:agents_{name}_add"), {}).status_code == 403
    assert client.get(reverse(f"admin:agents_{name}_delete", args=[row.pk])).status_code == 403
    assert (
        client.post(
            reverse(f"admin:agents_{name}_delete", args=[row.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    change = client.post(
        reverse(f"admin:agents_{name}_change", args=[row.pk]), {"kind": "x", "tool_name": "x"}
    )
    assert change.status_code == 403

    changelist = client.get(reverse(f"admin:agents_{name}_changelist"))
    text = page_text(changelist)
    assert "action-checkbox" not in text and "delete_selected" not in text
    assert reverse(f"admin:agents_{name}_add") not in text
    # Even a hand-made bulk delete finds no action to run.
    client.post(
        reverse(f"admin:agents_{name}_changelist"),
        {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"},
    )
    detail = page_text(client.get(reverse(f"admin:agents_{name}_change", args=[row.pk])))
    assert 'name="_save"' not in detail and "deletelink" not in detail
    assert _snapshot(model) == before


def test_runs_cannot_be_added_changed_or_deleted(client, admin_user, awaiting):
    run, _ = awaiting
    client.force_login(admin_user)
    assert client.get(reverse("admin:agents_agentrun_add")).status_code == 403
    assert client.get(reverse("admin:agents_agentrun_delete", args=[run.pk])).status_code == 403
    response = client.post(
        reverse("admin:agents_agentrun_change", args=[run.pk]), {"status": "completed"}
    )
    assert response.status_code == 403
    run.refresh_from_db()
    assert run.status == AgentRun.Status.AWAITING_APPROVAL


def test_an_auditor_can_view_everything_and_change_nothing(client, auditor, awaiting):
    run, ship = awaiting
    client.force_login(auditor)
    pages = [
        reverse("admin:index"),
        reverse("admin:agents_agentrun_changelist"),
        reverse("admin:agents_agentrun_change", args=[run.pk]),
        reverse("admin:agents_toolcall_approvals"),
        review_url(ship),
    ]
    for name, model in LOGS:
        pages += [
            reverse(f"admin:agents_{name}_changelist"),
            reverse(f"admin:agents_{name}_change", args=[model.objects.first().pk]),
            reverse(f"admin:agents_{name}_export", args=["csv"]),
            reverse(f"admin:agents_{name}_export", args=["jsonl"]),
        ]
    for url in pages:
        assert client.get(url).status_code == 200, url

    run_page = page_text(client.get(reverse("admin:agents_agentrun_change", args=[run.pk])))
    assert "Timeline" in run_page and "Cancel run" not in run_page
    review = page_text(client.get(review_url(ship)))
    assert "Approve as proposed" not in review and 'value="Reject"' not in review
    assert "You may look but not decide" in review

    calls, events = _snapshot(ToolCall), _snapshot(AuditEvent)
    assert client.post(review_url(ship), {"action": "approve"}).status_code == 403
    assert client.post(review_url(ship), {"action": "reject", "reason": "no"}).status_code == 403
    cancel = reverse("admin:agents_agentrun_cancel", args=[run.pk])
    assert client.post(cancel, {"reason": "no"}).status_code == 403
    for name, model in [*LOGS, ("agentrun", AgentRun)]:
        row = model.objects.first()
        assert client.get(reverse(f"admin:agents_{name}_add")).status_code == 403
        assert client.get(reverse(f"admin:agents_{name}_delete", args=[row.pk])).status_code == 403
        assert (
            client.post(reverse(f"admin:agents_{name}_change", args=[row.pk]), {}).status_code
            == 403
        )
    assert _snapshot(ToolCall) == calls and _snapshot(AuditEvent) == events
    run.refresh_from_db()
    assert run.status == AgentRun.Status.AWAITING_APPROVAL


def _found(client, query: str) -> set[str]:
    response = client.get(reverse("admin:agents_toolcall_changelist"), {"q": query})
    assert response.status_code == 200
    return {call.tool_use_id for call in response.context["cl"].result_list}


def test_search_looks_inside_inputs_results_and_reasons(client, admin_user, awaiting, widgets):
    run, ship = awaiting
    lookup = ToolCall.objects.get(run=run, tool_name="lookup_widget")
    client.force_login(admin_user)
    assert _found(client, "main st") == {ship.tool_use_id}  # in input_proposed
    assert _found(client, "STOCK") == {lookup.tool_use_id}  # in result
    # The result is a JSON string holding JSON: its quotes are stored escaped.
    assert _found(client, '"stock": 10') == {lookup.tool_use_id}
    assert _found(client, ship.tool_use_id[-6:]) == {ship.tool_use_id}
    assert _found(client, "nowhere-at-all") == set()
    proposal_reject(tool_call_id=ship.pk, user=admin_user, reason="Customer moved house")
    assert _found(client, "moved HOUSE") == {ship.tool_use_id}  # decision_reason and result


def _csv_rows(response) -> list[dict]:
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def _jsonl_rows(response) -> list[dict]:
    assert response.status_code == 200 and response.streaming
    text = b"".join(response.streaming_content).decode()
    return [json.loads(line) for line in text.splitlines()]


def test_exports_contain_exactly_the_filtered_rows(
    client, admin_user, fake_anthropic, worker, widgets
):
    for subject in (1, 2, 3):
        run_awaiting(fake_anthropic, worker, subject_id=subject)
    client.force_login(admin_user)
    csv_url = reverse("admin:agents_toolcall_export", args=["csv"])
    jsonl_url = reverse("admin:agents_toolcall_export", args=["jsonl"])

    rows = _csv_rows(client.get(csv_url, {"tool_name": "ship_widget"}))
    expected = ToolCall.objects.filter(tool_name="ship_widget")
    assert sorted(int(r["id"]) for r in rows) == sorted(expected.values_list("pk", flat=True))
    assert {r["toolset"] for r in rows} == {"toolbox"}
    assert json.loads(rows[0]["input_proposed"]) == SHIP

    rows = _jsonl_rows(client.get(jsonl_url, {"status__exact": "succeeded", "q": "gear"}))
    expected = ToolCall.objects.filter(status="succeeded")
    assert sorted(r["id"] for r in rows) == sorted(expected.values_list("pk", flat=True))
    assert rows[0]["input_proposed"] == {"name": "gear"} and rows[0]["tool_name"] == "lookup_widget"

    # The link on the changelist carries its filters through to the export.
    page = page_text(
        client.get(reverse("admin:agents_toolcall_changelist"), {"tool_name": "ship_widget"})
    )
    assert f'href="{csv_url}?tool_name=ship_widget"' in page

    events = _jsonl_rows(
        client.get(
            reverse("admin:agents_auditevent_export", args=["jsonl"]), {"kind": "run.started"}
        )
    )
    assert len(events) == 3 and {e["kind"] for e in events} == {"run.started"}
    calls = _csv_rows(client.get(reverse("admin:agents_modelcall_export", args=["csv"])))
    assert len(calls) == ModelCall.objects.count() == 6


def test_exports_need_view_permission_and_valid_filters(client, awaiting):
    url = reverse("admin:agents_toolcall_export", args=["csv"])
    client.force_login(user_create(perms=[]))
    assert client.get(url).status_code == 403
    client.force_login(user_create(perms=["agents.view_toolcall"]))
    assert client.get(url).status_code == 200
    assert client.get(reverse("admin:agents_toolcall_export", args=["xlsx"])).status_code == 404
    response = client.get(url, {"no_such_field": "1"})
    assert response.status_code == 302 and response["Location"].endswith("?e=1")


def test_csv_cells_cannot_become_spreadsheet_formulas():
    lines = list(csv_lines([{"a": "=HYPERLINK(1)", "b": -3, "c": {"k": 1}}], ["a", "b", "c"]))
    assert lines[1] == '\'=HYPERLINK(1),-3,"{""k"": 1}"\r\n'


def test_search_finds_non_ascii_text_inside_json(
    client, admin_user, fake_anthropic, worker, widgets
):
    address = {**SHIP, "address": "Müllerstraße 5, Köln"}
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", address))
    with worker.committing():
        run_start(toolset="toolbox", user_message="Ship two gears to Köln.")
    worker.drain()
    client.force_login(admin_user)
    # SQLite stores this as "M\u00fcllerstra\u00dfe"; PostgreSQL's jsonb keeps the letters.
    assert _found(client, "Müllerstraße") == {ship_id}
    assert _found(client, "müllerstraße köln") == {ship_id}
    assert _found(client, "gear Köln") == {ship_id}
