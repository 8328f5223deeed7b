"""The index the watchdog's largest list needs at scale: traffic windows searched by route.

As agents' 0008_console_indexes (see agents/migrations/_indexes.py). A window row is kept per
minute and route, so this table grows by up to 200 rows a minute; the others the console lists
(incidents, spikes, patches, log sources) stay small.
"""

from functools import partial

from django.db import migrations

from agents.migrations._indexes import indexes_apply

SEARCHED = {"sre_trafficwindow": ("route",)}


def forwards(apps, schema_editor, remove=False) -> None:
    indexes_apply(schema_editor, searched=SEARCHED, filtered={}, remove=remove)


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("sre", "0004_incident_branch_made"),
        ("agents", "0008_console_indexes"),  # creates pg_trgm
    ]

    operations = [migrations.RunPython(forwards, partial(forwards, remove=True))]
