"""The indexes the support desk's lists need at scale: search and filters.

As agents' 0008_console_indexes (see agents/migrations/_indexes.py).
"""

from functools import partial

from django.db import migrations

from agents.migrations._indexes import indexes_apply

SEARCHED = {
    "support_ticket": ("subject", "customer_email", "customer_name"),
    "support_refund": ("charge_id", "provider_refund_id"),
}
FILTERED = {
    "support_ticket": ("spf_failed", "dmarc_failed", "hidden_content_dropped"),
    "support_refund": ("gateway", "provider_status"),
}


def forwards(apps, schema_editor, remove=False) -> None:
    indexes_apply(schema_editor, searched=SEARCHED, filtered=FILTERED, remove=remove)


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("support", "0004_message_trust_warnings"),
        ("agents", "0008_console_indexes"),  # creates pg_trgm
    ]

    operations = [migrations.RunPython(forwards, partial(forwards, remove=True))]
