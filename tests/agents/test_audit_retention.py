"""The audit log cannot be rewritten, not even by TRUNCATE or by the app's own role; it can
only shrink through retention: export first, then prune, by a person allowed to, audited."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import uuid
from datetime import timedelta

import psycopg
import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from agents.guards import AUDIT_TABLES
from agents.models import AgentRun, AuditEvent, ModelCall
from agents.services.retention import RetentionRefused, audit_prune
from tests.factories.users import user_create

postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="TRUNCATE and roles are PostgreSQL's"
)


@contextlib.contextmanager
def written_at(model, when):
    """Rows created inside are dated `when` (auto_now_add would date them now)."""
    field = model._meta.get_field("created_at")
    field.auto_now_add = False
    try:
        yield
    finally:
        field.auto_now_add = True


def run_create() -> AgentRun:
    return AgentRun.objects.create(
        toolset="toolbox", prompt_name="p", prompt_version=1, system="s", model="m",
        backend="anthropic", max_tokens=10,
    )  # fmt: skip


def history(*, days_ago: int, events: int = 2, calls: int = 1) -> list[int]:
    when = timezone.now() - timedelta(days=days_ago)
    run = run_create()
    ids = []
    with written_at(AuditEvent, when):
        ids += [
            AuditEvent.objects.create(kind="run.started", run=run, created_at=when).pk
            for _ in range(events)
        ]
    with written_at(ModelCall, when):
        for step in range(calls):
            ModelCall.objects.create(
                run=run, step=step, backend="anthropic", model="m", created_at=when
            )
    return ids


def refused(sql: str, params=()) -> bool:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
    except DatabaseError:
        return True
    return False


@pytest.mark.django_db
@postgresql
@pytest.mark.parametrize("table", AUDIT_TABLES)
def test_truncate_is_refused_on_every_audit_table(table):
    history(days_ago=1)
    assert refused(f"TRUNCATE {table}")
    assert refused(f"TRUNCATE {table} CASCADE")


@pytest.mark.django_db
@postgresql
def test_truncating_what_the_audit_tables_point_at_cascades_into_a_refusal():
    history(days_ago=1)
    assert refused("TRUNCATE agents_agentrun CASCADE")
    assert AuditEvent.objects.count() == 2


@pytest.mark.django_db
@postgresql
def test_the_owner_cannot_delete_old_rows_by_setting_the_cutoff_by_hand():
    """The prune's cutoff opens the guard only for the function that sets it, as the owner;
    outside it a DELETE is refused even with the setting in place."""
    history(days_ago=400)
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'agents_auditevent'")
        [owner] = cursor.fetchone()
        cursor.execute("SELECT current_user")
        [me] = cursor.fetchone()
    if owner == me:  # the test database's owner: the function is the only way in
        assert refused("DELETE FROM agents_auditevent")
    assert refused("SELECT * FROM agents_audit_prune(now() - interval '1 hour')")


@pytest.fixture
def app_role(db):
    """A login role granted what `db_grant_app` grants; dropped afterwards."""
    name = f"cs_app_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE ROLE "{name}" LOGIN')
    call_command("db_grant_app", name, stdout=open("/dev/null", "w"))  # noqa: SIM115
    yield name
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP OWNED BY "{name}"')
        cursor.execute(f'DROP ROLE "{name}"')


def as_role(role: str) -> psycopg.Connection:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params["user"] = role
    params.pop("password", None)
    return psycopg.connect(**params, autocommit=True)


@pytest.mark.django_db(transaction=True)
@postgresql
def test_the_apps_role_can_append_but_never_rewrite_disable_or_truncate(app_role):
    old = history(days_ago=400)
    attempts = {
        "update": "UPDATE agents_auditevent SET message = 'x'",
        "delete": "DELETE FROM agents_auditevent",
        "truncate": "TRUNCATE agents_auditevent",
        "truncate run cascade": "TRUNCATE agents_agentrun CASCADE",
        "disable trigger": "ALTER TABLE agents_auditevent DISABLE TRIGGER ALL",
        "drop trigger": "DROP TRIGGER agents_auditevent_guard ON agents_auditevent",
        "replica mode": "SET session_replication_role = replica",
        "drop guard function": "DROP FUNCTION agents_prunable_guard() CASCADE",
        "cutoff by hand": (
            "SELECT set_config('countersign.prune_before', now()::text, false);"
            "DELETE FROM agents_auditevent"
        ),
        "approval delete": "DELETE FROM agents_approval",
        "young cutoff": "SELECT * FROM agents_audit_prune(now())",
    }
    with as_role(app_role) as app:
        for name, sql in attempts.items():
            with pytest.raises(psycopg.Error):
                app.execute(sql)
                pytest.fail(f"{name} was allowed")
        app.execute(
            "INSERT INTO agents_auditevent (kind, subject_type, subject_id, message, data, "
            "created_at) VALUES ('x.appended', '', '', '', '{}', now())"
        )
        # Retention, the one way rows leave, is open to it through the owner's function.
        [(calls, events)] = app.execute(
            "SELECT * FROM agents_audit_prune(now() - interval '300 days')"
        ).fetchall()
    assert (calls, events) == (1, len(old))
    assert list(AuditEvent.objects.values_list("kind", flat=True)) == ["x.appended"]


@pytest.fixture
def pruner(db):
    return user_create(perms=["agents.prune_auditevent", "agents.view_auditevent"])


@pytest.fixture
def exports(settings, tmp_path):
    settings.AGENTS_AUDIT_EXPORT_DIR = str(tmp_path / "exports")
    settings.AGENTS_AUDIT_RETENTION_DAYS = 90
    return tmp_path / "exports"


@pytest.mark.django_db
def test_retention_exports_the_old_rows_then_prunes_exactly_them(pruner, exports):
    old = history(days_ago=200, events=3, calls=2)
    young = history(days_ago=10)
    result = audit_prune(user=pruner, older_than_days=120)

    assert result.counts == {"agents_modelcall": 2, "agents_auditevent": 3}
    with gzip.open(result.path, "rt") as export:
        rows = [json.loads(line) for line in export]
    exported = [r["id"] for r in rows if r["table"] == "agents_auditevent"]
    assert exported == old and sum(r["table"] == "agents_modelcall" for r in rows) == 2
    assert hashlib.sha256(result.path.read_bytes()).hexdigest() == result.sha256
    assert set(AuditEvent.objects.filter(kind="run.started").values_list("pk", flat=True)) == set(
        young
    )
    assert ModelCall.objects.count() == 1
    event = AuditEvent.objects.get(kind="audit.pruned")
    assert event.actor == pruner and event.data["sha256"] == result.sha256
    assert event.data["counts"] == result.counts
    # The guards are back: nothing else can be deleted.
    assert refused("DELETE FROM agents_auditevent")


@pytest.mark.django_db
def test_retention_needs_the_permission_and_respects_the_minimum(exports):
    history(days_ago=400)
    with pytest.raises(PermissionDenied):
        audit_prune(user=user_create(perms=["agents.view_auditevent"]), older_than_days=200)
    with pytest.raises(RetentionRefused, match="90 days"):
        audit_prune(user=user_create(perms=["agents.prune_auditevent"]), older_than_days=30)
    assert AuditEvent.objects.count() == 2 and not list(exports.glob("*"))


@pytest.mark.django_db
def test_the_command_prunes_and_a_dry_run_only_counts(pruner, exports, capsys):
    history(days_ago=400)
    call_command("audit_prune", "--older-than-days", "100", "--user", pruner.username, "--dry-run")
    assert "Would prune 1 modelcall, 2 auditevent" in capsys.readouterr().out
    assert AuditEvent.objects.count() == 2
    call_command("audit_prune", "--older-than-days", "100", "--user", pruner.username)
    assert "Pruned 1 modelcall, 2 auditevent" in capsys.readouterr().out
    assert list(AuditEvent.objects.values_list("kind", flat=True)) == ["audit.pruned"]


@pytest.mark.django_db
def test_the_retention_page_counts_then_exports_and_prunes_on_confirmation(client, pruner, exports):
    history(days_ago=400)
    pruner.is_staff = True
    pruner.save()
    client.force_login(pruner)
    page = client.get("/admin/agents/auditevent/")
    assert "/admin/agents/auditevent/retention/" in page.content.decode()
    counted = client.post("/admin/agents/auditevent/retention/", {"older_than_days": 100})
    assert "2 audit events and\n      1 model calls" in counted.content.decode()
    assert AuditEvent.objects.count() == 2
    done = client.post(
        "/admin/agents/auditevent/retention/",
        {"older_than_days": 100, "confirm": "on"},
        follow=True,
    )
    assert "Exported and pruned 2 audit events and 1 model calls" in done.content.decode()
    [export] = list(exports.glob("*.jsonl.gz"))
    download = client.get(f"/admin/agents/auditevent/retention/{export.name}")
    assert b"".join(download.streaming_content) == export.read_bytes()
    assert client.get("/admin/agents/auditevent/retention/settings.py").status_code == 404
    too_young = client.post(
        "/admin/agents/auditevent/retention/", {"older_than_days": 10, "confirm": "on"}
    )
    assert "too few" in too_young.content.decode()


@pytest.mark.django_db
def test_the_retention_page_is_refused_without_the_permission(client):
    client.force_login(user_create(perms=["agents.view_auditevent"]))
    assert client.get("/admin/agents/auditevent/retention/").status_code == 403
    page = client.get("/admin/agents/auditevent/")
    assert "/retention/" not in page.content.decode()
