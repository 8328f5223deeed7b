"""Database triggers that make the audit tables append-only, for SQLite and PostgreSQL.

The database itself refuses, whoever asks: the admin, a service, a shell, raw SQL.
- `agents_modelcall`, `agents_auditevent`: no UPDATE, no DELETE.
- `agents_toolcall`: no DELETE; an UPDATE may fill a later fact once (NULL to a value) and move
  the workflow `status` and `attempts` until the call is answered, and nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

TOOLCALL_FIXED = [
    "id", "run_id", "tool_use_id", "turn", "position", "tool_name", "input_proposed",
    "validation_errors", "requires_approval", "approval_permission", "idempotency_key",
    "created_at",
]  # fmt: skip
TOOLCALL_WRITE_ONCE = [
    "checks", "input_executed", "decision", "decided_by_id", "decided_at", "decision_reason", "result",
    "is_error", "started_at", "finished_at", "duration_ms",
]  # fmt: skip
SEALED_TABLES = ["agents_modelcall", "agents_auditevent"]
MESSAGE = "audit rows are append-only"


def _toolcall_violation(distinct: str) -> str:
    fixed = [f"NEW.{c} {distinct} OLD.{c}" for c in TOOLCALL_FIXED]
    once = [f"(OLD.{c} IS NOT NULL AND NEW.{c} {distinct} OLD.{c})" for c in TOOLCALL_WRITE_ONCE]
    answered = [f"(OLD.finished_at IS NOT NULL AND NEW.status {distinct} OLD.status)"]
    return "\n    OR ".join(fixed + once + answered)


def sqlite_install() -> list[str]:
    sql = [
        f"""CREATE TRIGGER IF NOT EXISTS agents_toolcall_no_update BEFORE UPDATE ON agents_toolcall
WHEN {_toolcall_violation("IS NOT")}
BEGIN SELECT RAISE(ABORT, '{MESSAGE}: agents_toolcall facts cannot change'); END""",
        f"""CREATE TRIGGER IF NOT EXISTS agents_toolcall_no_delete BEFORE DELETE ON agents_toolcall
BEGIN SELECT RAISE(ABORT, '{MESSAGE}: agents_toolcall rows cannot be deleted'); END""",
    ]
    for table in SEALED_TABLES:
        for op in ("UPDATE", "DELETE"):
            sql.append(
                f"""CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table}
BEGIN SELECT RAISE(ABORT, '{MESSAGE}: {table} rows cannot be {op.lower()}d'); END"""
            )
    return sql


def sqlite_uninstall() -> list[str]:
    names = ["agents_toolcall_no_update", "agents_toolcall_no_delete"] + [
        f"{t}_no_{op}" for t in SEALED_TABLES for op in ("update", "delete")
    ]
    return [f"DROP TRIGGER IF EXISTS {name}" for name in names]


def postgresql_install() -> list[str]:
    sql = [
        f"""CREATE OR REPLACE FUNCTION agents_toolcall_guard() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION '{MESSAGE}: agents_toolcall rows cannot be deleted';
  END IF;
  IF {_toolcall_violation("IS DISTINCT FROM")} THEN
    RAISE EXCEPTION '{MESSAGE}: agents_toolcall facts cannot change';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql""",
        "DROP TRIGGER IF EXISTS agents_toolcall_guard ON agents_toolcall",
        """CREATE TRIGGER agents_toolcall_guard BEFORE UPDATE OR DELETE ON agents_toolcall
FOR EACH ROW EXECUTE FUNCTION agents_toolcall_guard()""",
        f"""CREATE OR REPLACE FUNCTION agents_sealed_guard() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION USING MESSAGE =
    '{MESSAGE}: ' || TG_TABLE_NAME || ' rows cannot be changed or deleted';
END $$ LANGUAGE plpgsql""",
    ]
    for table in SEALED_TABLES:
        sql += [
            f"DROP TRIGGER IF EXISTS {table}_guard ON {table}",
            f"""CREATE TRIGGER {table}_guard BEFORE UPDATE OR DELETE ON {table}
FOR EACH ROW EXECUTE FUNCTION agents_sealed_guard()""",
        ]
    return sql


def postgresql_uninstall() -> list[str]:
    return [
        "DROP TRIGGER IF EXISTS agents_toolcall_guard ON agents_toolcall",
        *[f"DROP TRIGGER IF EXISTS {t}_guard ON {t}" for t in SEALED_TABLES],
        "DROP FUNCTION IF EXISTS agents_toolcall_guard()",
        "DROP FUNCTION IF EXISTS agents_sealed_guard()",
    ]


# Tables sealed after the first guards (each by the migration that made it).
LATER_SEALED = ["agents_approval"]


def sqlite_seal(tables: list[str]) -> list[str]:
    return [
        f"""CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table}
BEGIN SELECT RAISE(ABORT, '{MESSAGE}: {table} rows cannot be {op.lower()}d'); END"""
        for table in tables
        for op in ("UPDATE", "DELETE")
    ]


def sqlite_unseal(tables: list[str]) -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {t}_no_{op}" for t in tables for op in ("update", "delete")]


def sealed_install(schema_editor, tables: list[str]) -> None:
    """Seal tables added after the first guards: no UPDATE, no DELETE (agents_approval, ...)."""
    vendor = schema_editor.connection.vendor
    for table in tables:
        if vendor == "sqlite":
            for statement in sqlite_seal([table]):
                schema_editor.execute(statement)
        elif vendor == "postgresql":
            # agents_sealed_guard() is created by the first guards (migration 0002).
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_guard ON {table}")
            schema_editor.execute(
                f"""CREATE TRIGGER {table}_guard BEFORE UPDATE OR DELETE ON {table}
FOR EACH ROW EXECUTE FUNCTION agents_sealed_guard()"""
            )
        else:
            raise NotImplementedError(f"No append-only guards for the {vendor} database.")


def sealed_uninstall(schema_editor, tables: list[str]) -> None:
    vendor = schema_editor.connection.vendor
    for table in tables:
        if vendor == "sqlite":
            for statement in sqlite_unseal([table]):
                schema_editor.execute(statement)
        else:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_guard ON {table}")


def guards_install(schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    statements = {"sqlite": sqlite_install, "postgresql": postgresql_install}.get(vendor)
    if statements is None:
        raise NotImplementedError(f"No append-only guards for the {vendor} database.")
    for statement in statements():
        schema_editor.execute(statement)


def guards_uninstall(schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    statements = {"sqlite": sqlite_uninstall, "postgresql": postgresql_uninstall}[vendor]
    for statement in statements():
        schema_editor.execute(statement)


# --- TRUNCATE and retention -----------------------------------------------------------------
# Row triggers do not see TRUNCATE; a statement trigger on every audit table refuses it. The
# model calls and audit events may lose rows older than a cutoff only through
# agents_audit_prune(), a SECURITY DEFINER function owned by the tables' owner: the guard lets a
# DELETE through when the cutoff is set for the transaction, the row is older, and the current
# user is the owner (inside the function it is; the app's role never is).
AUDIT_TABLES = ["agents_toolcall", "agents_modelcall", "agents_auditevent", "agents_approval"]
PRUNABLE_TABLES = ["agents_modelcall", "agents_auditevent"]
PRUNE_SETTING = "countersign.prune_before"
PRUNE_MIN_AGE = "1 day"  # the database refuses a cutoff younger than this, whoever asks


def postgresql_retention_install(schema: str) -> list[str]:
    sql = [
        f"""CREATE OR REPLACE FUNCTION agents_prunable_guard() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE'
     AND coalesce(current_setting('{PRUNE_SETTING}', true), '') <> ''
     AND OLD.created_at < current_setting('{PRUNE_SETTING}', true)::timestamptz
     AND current_user = (SELECT tableowner FROM pg_tables
                         WHERE schemaname = TG_TABLE_SCHEMA AND tablename = TG_TABLE_NAME) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION USING MESSAGE =
    '{MESSAGE}: ' || TG_TABLE_NAME || ' rows cannot be changed or deleted';
END $$ LANGUAGE plpgsql""",
        f"""CREATE OR REPLACE FUNCTION agents_audit_prune(cutoff timestamptz)
RETURNS TABLE(model_calls bigint, audit_events bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_catalog AS $$
DECLARE
  calls bigint;
  events bigint;
BEGIN
  IF cutoff > now() - interval '{PRUNE_MIN_AGE}' THEN
    RAISE EXCEPTION 'retention: rows younger than {PRUNE_MIN_AGE} are never pruned';
  END IF;
  PERFORM set_config('{PRUNE_SETTING}', cutoff::text, true);
  DELETE FROM agents_modelcall WHERE created_at < cutoff;
  GET DIAGNOSTICS calls = ROW_COUNT;
  DELETE FROM agents_auditevent WHERE created_at < cutoff;
  GET DIAGNOSTICS events = ROW_COUNT;
  PERFORM set_config('{PRUNE_SETTING}', '', true);
  RETURN QUERY SELECT calls, events;
END $$""",
    ]
    for table in PRUNABLE_TABLES:
        sql += [
            f"DROP TRIGGER IF EXISTS {table}_guard ON {table}",
            f"""CREATE TRIGGER {table}_guard BEFORE UPDATE OR DELETE ON {table}
FOR EACH ROW EXECUTE FUNCTION agents_prunable_guard()""",
        ]
    for table in AUDIT_TABLES:
        sql += [
            f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
            f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION agents_sealed_guard()""",
        ]
    return sql


def postgresql_retention_uninstall() -> list[str]:
    sql = [f"DROP TRIGGER IF EXISTS {t}_no_truncate ON {t}" for t in AUDIT_TABLES]
    for table in PRUNABLE_TABLES:
        sql += [
            f"DROP TRIGGER IF EXISTS {table}_guard ON {table}",
            f"""CREATE TRIGGER {table}_guard BEFORE UPDATE OR DELETE ON {table}
FOR EACH ROW EXECUTE FUNCTION agents_sealed_guard()""",
        ]
    return sql + [
        "DROP FUNCTION IF EXISTS agents_audit_prune(timestamptz)",
        "DROP FUNCTION IF EXISTS agents_prunable_guard()",
    ]


def retention_install(schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT current_schema()")
            [schema] = cursor.fetchone()
        for statement in postgresql_retention_install(schema):
            schema_editor.execute(statement)


def retention_uninstall(schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for statement in postgresql_retention_uninstall():
            schema_editor.execute(statement)


@contextlib.contextmanager
def guards_lifted(connection) -> Iterator[None]:
    """The append-only guards off for what runs inside, on for what follows (an owner's flush).

    For the table owner only (the app's role cannot alter the tables); the test suite's flush
    uses it to empty the database between transactional tests.
    """
    if connection.vendor == "sqlite":
        off = sqlite_uninstall() + sqlite_unseal(LATER_SEALED)
        on = sqlite_install() + sqlite_seal(LATER_SEALED)
    else:
        off = [f"ALTER TABLE {t} DISABLE TRIGGER {t}_no_truncate" for t in AUDIT_TABLES]
        on = [f"ALTER TABLE {t} ENABLE TRIGGER {t}_no_truncate" for t in AUDIT_TABLES]
    with connection.cursor() as cursor:
        for statement in off:
            cursor.execute(statement)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for statement in on:
                cursor.execute(statement)
