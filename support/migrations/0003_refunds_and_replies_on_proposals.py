"""Refunds and reply drafts move onto the engine's proposals: their approval state is their call's."""

import django.db.models.deletion
from django.db import migrations, models


def first_approvals_keep(apps, schema_editor):
    """A two-person refund's first approver becomes an engine approval before the column goes."""
    Refund = apps.get_model("support", "Refund")
    Proposal = apps.get_model("agents", "Proposal")
    Approval = apps.get_model("agents", "Approval")
    for refund in Refund.objects.exclude(first_approved_by=None):
        proposal = Proposal.objects.filter(pk=refund.tool_call_id).first()
        if proposal is None:
            continue
        Approval.objects.get_or_create(
            proposal=proposal,
            user_id=refund.first_approved_by_id,
            defaults={"note": "", "channel": "console"},
        )
        if refund.status == "awaiting_second_approval":
            Proposal.objects.filter(pk=proposal.pk).update(approvals_required=2)


def old_schedule_drop(apps, schema_editor):
    """The engine's sweep expires refunds now; the support desk's own schedule goes."""
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(func="support.tasks.refunds_expire_task").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0005_proposals"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
        ("support", "0002_refunds_and_replies"),
    ]

    operations = [
        migrations.RunPython(first_approvals_keep, migrations.RunPython.noop),
        migrations.RunPython(old_schedule_drop, migrations.RunPython.noop),
        *[
            migrations.RemoveField(model_name="refund", name=name)
            for name in (
                "customer_email",
                "amount_proposed",
                "amount",
                "reason",
                "checks",
                "status",
                "status_reason",
                "first_approved_by",
                "first_approved_at",
                "approved_by",
                "approved_at",
                "rejected_by",
                "rejected_at",
                "reject_reason",
                "finished_at",
            )
        ],
        migrations.AlterField(
            model_name="refund",
            name="tool_call",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="%(app_label)s_%(class)s",
                to="agents.toolcall",
            ),
        ),
        migrations.AlterField(
            model_name="refund",
            name="provider_status",
            field=models.CharField(
                blank=True,
                help_text="The payments service's word: pending, succeeded...",
                max_length=32,
            ),
        ),
        migrations.AddField(
            model_name="replydraft",
            name="tool_call",
            field=models.OneToOneField(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="support_replydraft",
                to="agents.toolcall",
            ),
        ),
        migrations.AlterField(
            model_name="replydraft",
            name="status",
            field=models.CharField(
                choices=[
                    ("draft", "Not sent"),
                    ("sending", "Sending"),
                    ("sent", "Sent"),
                    ("discarded", "Discarded"),
                ],
                db_index=True,
                default="draft",
                max_length=16,
            ),
        ),
    ]
