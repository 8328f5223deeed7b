"""Patch proposals move onto the engine's proposals: their approval state is their call's."""

import django.db.models.deletion
from django.db import migrations, models


def pull_requests_keep(apps, schema_editor):
    """What the old statuses said about the pull request becomes its own field."""
    PatchProposal = apps.get_model("sre", "PatchProposal")
    states = {"pr_open": "open", "merged": "merged", "closed": "closed"}
    for old, new in states.items():
        PatchProposal.objects.filter(status=old).update(pr_state=new)
    PatchProposal.objects.exclude(status_reason="").update(notes=models.F("status_reason"))


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0005_proposals"),
        ("sre", "0002_patch_proposal"),
    ]

    operations = [
        migrations.AddField(
            model_name="patchproposal",
            name="pr_state",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "No pull request"),
                    ("open", "Open"),
                    ("merged", "Merged"),
                    ("closed", "Closed unmerged"),
                ],
                default="",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="patchproposal",
            name="notes",
            field=models.TextField(
                blank=True, help_text="What publishing did, and what it could not."
            ),
        ),
        migrations.RunPython(pull_requests_keep, migrations.RunPython.noop),
        *[
            migrations.RemoveField(model_name="patchproposal", name=name)
            for name in (
                "title",
                "root_cause",
                "checks",
                "status",
                "status_reason",
                "decided_by",
                "decided_at",
                "reject_reason",
                "slack_ts",
                "attempts",
                "finished_at",
            )
        ],
        migrations.AlterField(
            model_name="patchproposal",
            name="tool_call",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="%(app_label)s_%(class)s",
                to="agents.toolcall",
            ),
        ),
    ]
