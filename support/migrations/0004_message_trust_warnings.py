"""Messages keep the warnings a reviewer should read before trusting them; stored mail gets them too."""

from django.db import migrations, models


def warnings_backfill(apps, schema_editor):
    """Work the warnings out for mail already stored, from its raw bytes, as ingest now does."""
    from support.mail import parse_email

    Message = apps.get_model("support", "Message")
    for message in (
        Message.objects.filter(direction="in").only("pk", "raw").iterator(chunk_size=200)
    ):
        try:
            warnings = parse_email(bytes(message.raw)).trust_warnings
        except Exception:  # mail that no longer parses keeps no warnings rather than stopping this
            continue
        if warnings:
            Message.objects.filter(pk=message.pk).update(trust_warnings=warnings)


class Migration(migrations.Migration):
    dependencies = [
        ("support", "0003_refunds_and_replies_on_proposals"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="trust_warnings",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="[{code, message}]: why a reviewer should not take the mail at its word "
                "(Reply-To elsewhere, a misleading sender name, text and HTML parts that disagree, "
                "hidden HTML, failed sender authentication). Worked out when it arrived.",
            ),
        ),
        migrations.RunPython(warnings_backfill, migrations.RunPython.noop, elidable=True),
    ]
