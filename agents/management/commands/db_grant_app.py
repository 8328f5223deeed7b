"""Grant a PostgreSQL role what the app needs, and no more: run by the tables' owner.

The app then connects as that role. It can read and write the workflow tables and append to
the audit tables, but it owns no table, so it cannot TRUNCATE, ALTER, DISABLE TRIGGER or DROP
anything; UPDATE and DELETE on the sealed audit tables are not granted at all; retention goes
through agents_audit_prune(), which it may call. See docs/DEPLOY.md.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from psycopg import sql

SEALED = ["agents_modelcall", "agents_auditevent", "agents_approval"]


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("role", help="the app's role (it must exist and own no table)")

    def handle(self, *args, **options):
        if connection.vendor != "postgresql":
            raise CommandError("Roles are PostgreSQL's; SQLite has none.")
        role = sql.Identifier(options["role"])
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
                "AND tableowner = %s",
                [options["role"]],
            )
            if cursor.fetchone()[0]:
                raise CommandError(f"{options['role']} owns tables: the app must not.")
            cursor.execute("SELECT current_schema(), current_database()")
            schema, database = (sql.Identifier(v) for v in cursor.fetchone())
            statements = [
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, role),
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role),
                sql.SQL(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}"
                ).format(schema, role),
                sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(
                    schema, role
                ),
                *[
                    sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(
                        sql.Identifier(table), role
                    )
                    for table in SEALED
                ],
                sql.SQL("GRANT EXECUTE ON FUNCTION agents_audit_prune(timestamptz) TO {}").format(
                    role
                ),
            ]
            for statement in statements:
                cursor.execute(statement)
        self.stdout.write(f"Granted the app's privileges to {options['role']}.")
