"""The indexes the console's lists need at a million rows: search and filters.

See _indexes.py. tests/agents/test_console_scale.py holds them: no list page, filter or search
reads a large table from end to end.
"""

from functools import partial

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

from agents.migrations._indexes import indexes_apply

SEARCHED = {
    "agents_toolcall": (
        "tool_name",
        "tool_use_id",
        "input_proposed",
        "input_executed",
        "result",
        "decision_reason",
    ),
    "agents_auditevent": ("kind", "message", "subject_id", "data"),
    "agents_modelcall": ("request_id", "message_id", "error"),
    "agents_agentrun": ("subject_id", "status_reason"),
}
FILTERED = {
    "agents_toolcall": ("decision",),
    "agents_modelcall": ("backend", "stop_reason", "model"),
    "agents_agentrun": ("backend",),
}


def forwards(apps, schema_editor, remove=False) -> None:
    indexes_apply(schema_editor, searched=SEARCHED, filtered=FILTERED, remove=remove)


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [("agents", "0007_message_batches")]

    operations = [
        TrigramExtension(),  # a no-op except on PostgreSQL
        migrations.RunPython(forwards, partial(forwards, remove=True)),
    ]
