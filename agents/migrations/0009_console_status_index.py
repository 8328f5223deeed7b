"""Tool calls by status and id: an index-only scan for a filter through the call's status.

The refunds' "where it stands" filter joins each refund to its call by id and keeps one status;
with only `status` indexed PostgreSQL read every call of that status from the table (150 ms at
a million calls). See _indexes.py.
"""

from functools import partial

from django.db import migrations

from agents.migrations._indexes import indexes_apply

FILTERED = {"agents_toolcall": (("status", "id"),)}


def forwards(apps, schema_editor, remove=False) -> None:
    indexes_apply(schema_editor, searched={}, filtered=FILTERED, remove=remove)


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [("agents", "0008_console_indexes")]

    operations = [migrations.RunPython(forwards, partial(forwards, remove=True))]
