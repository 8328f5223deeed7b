import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from agents.guards import guards_install, guards_uninstall, sealed_install, sealed_uninstall

APPROVAL_TABLES = ["agents_approval"]  # guards.LATER_SEALED at the time


def reinstall(apps, schema_editor):
    # The guards name every column; a new column needs them rebuilt.
    guards_uninstall(schema_editor)
    guards_install(schema_editor)


def seal(apps, schema_editor):
    sealed_install(schema_editor, APPROVAL_TABLES)


def unseal(apps, schema_editor):
    sealed_uninstall(schema_editor, APPROVAL_TABLES)


def proposals_backfill(apps, schema_editor):
    """Every call that needed approval gets its proposal; an approved one its approval."""
    ToolCall = apps.get_model("agents", "ToolCall")
    Proposal = apps.get_model("agents", "Proposal")
    Approval = apps.get_model("agents", "Approval")
    calls = ToolCall.objects.filter(requires_approval=True).select_related("run")
    for call in calls.iterator():
        proposal, created = Proposal.objects.get_or_create(
            tool_call=call,
            defaults={
                "toolset": call.run.toolset,
                "tool_name": call.tool_name,
                "summary": "",
                "checks": call.checks or [],
                "checked_at": call.created_at if call.checks is not None else None,
                "checked_in": "proposal" if call.checks is not None else "",
                "waiting_since": call.created_at,
            },
        )
        if created and call.decision == "approved" and call.decided_by_id:
            Approval.objects.create(
                proposal=proposal,
                user_id=call.decided_by_id,
                note=call.decision_reason or "",
                edited_input=call.input_executed,
            )


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0004_tool_call_claimed_at"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="toolcall",
            name="next_attempt_at",
            field=models.DateTimeField(
                blank=True, help_text="After a transient failure: when to try again.", null=True
            ),
        ),
        migrations.RunPython(reinstall, reinstall),
        migrations.CreateModel(
            name="Proposal",
            fields=[
                (
                    "tool_call",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        primary_key=True,
                        related_name="proposal",
                        serialize=False,
                        to="agents.toolcall",
                    ),
                ),
                ("toolset", models.CharField(db_index=True, max_length=64)),
                ("tool_name", models.CharField(db_index=True, max_length=64)),
                (
                    "summary",
                    models.CharField(blank=True, help_text="One line for the inbox.", max_length=500),
                ),
                ("approvals_required", models.PositiveSmallIntegerField(default=1)),
                (
                    "checks",
                    models.JSONField(blank=True, default=list, help_text="The latest checks."),
                ),
                ("checked_at", models.DateTimeField(blank=True, null=True)),
                (
                    "checked_in",
                    models.CharField(
                        blank=True, help_text="proposal, approval or execution", max_length=16
                    ),
                ),
                (
                    "check_attempts",
                    models.PositiveSmallIntegerField(
                        default=0,
                        help_text="Tries to gather live data for the checks, after transient failures.",
                    ),
                ),
                ("next_check_at", models.DateTimeField(blank=True, null=True)),
                (
                    "check_error",
                    models.TextField(blank=True, help_text="Why the last try could not check."),
                ),
                (
                    "waiting_since",
                    models.DateTimeField(
                        blank=True,
                        db_index=True,
                        help_text="When it began to wait for its next person.",
                        null=True,
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={"ordering": ["waiting_since", "tool_call_id"]},
        ),
        migrations.CreateModel(
            name="Approval",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "channel",
                    models.CharField(
                        choices=[("console", "Console"), ("slack", "Slack")],
                        default="console",
                        max_length=16,
                    ),
                ),
                ("note", models.TextField(blank=True)),
                ("edited_input", models.JSONField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "proposal",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="approvals",
                        to="agents.proposal",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["created_at", "id"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("proposal", "user"), name="agents_approval_once"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="Notice",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=200, unique=True)),
                ("medium", models.CharField(choices=[("slack", "Slack"), ("email", "Email to the approvers")], max_length=16)),
                ("channel", models.CharField(blank=True, help_text="Slack channel id or name.", max_length=200)),
                ("recipients", models.TextField(blank=True, help_text="Email addresses, comma-separated.")),
                ("ts", models.CharField(blank=True, help_text="Slack's id of the message.", max_length=32)),
                ("state", models.CharField(choices=[("pending", "Not posted yet"), ("posting", "Posting (outcome not yet recorded)"), ("posted", "Posted"), ("failed", "Failed")], db_index=True, default="pending", max_length=16)),
                ("shown", models.CharField(blank=True, help_text="What the message shows now.", max_length=64)),
                ("text", models.TextField(blank=True, help_text="The message as last posted or updated.")),
                ("attempts", models.PositiveSmallIntegerField(default=0)),
                ("error", models.TextField(blank=True)),
                ("claimed_at", models.DateTimeField(blank=True, null=True)),
                ("posted_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("proposal", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="notices", to="agents.proposal")),
            ],
            options={"ordering": ["-created_at", "-id"]},
        ),
        migrations.CreateModel(
            name="SlackIdentity",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("slack_user_id", models.CharField(max_length=32, unique=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="slack_identities", to=settings.AUTH_USER_MODEL)),
            ],
            options={"verbose_name": "Slack identity", "verbose_name_plural": "Slack identities"},
        ),
        migrations.CreateModel(
            name="SlackInteraction",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("trigger_id", models.CharField(max_length=200, unique=True)),
                ("kind", models.CharField(max_length=32)),
                ("action", models.CharField(blank=True, max_length=32)),
                ("slack_user_id", models.CharField(max_length=32)),
                ("reason", models.TextField(blank=True)),
                ("response_url", models.URLField(blank=True, max_length=1000)),
                ("outcome", models.TextField(blank=True)),
                ("handled_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("tool_call", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="agents.toolcall")),
                ("user", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to=settings.AUTH_USER_MODEL)),
            ],
            options={"ordering": ["-created_at", "-id"]},
        ),
        migrations.RunPython(proposals_backfill, migrations.RunPython.noop),
        migrations.RunPython(seal, unseal),
    ]
