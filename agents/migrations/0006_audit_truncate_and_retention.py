from django.db import migrations

from agents.guards import retention_install, retention_uninstall


def install(apps, schema_editor):
    retention_install(schema_editor)


def uninstall(apps, schema_editor):
    retention_uninstall(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("agents", "0005_proposals")]

    operations = [
        migrations.AlterModelOptions(
            name="auditevent",
            options={
                "ordering": ["-created_at", "-id"],
                "permissions": [
                    ("prune_auditevent", "Can export and prune audit rows past retention")
                ],
            },
        ),
        migrations.RunPython(install, uninstall),
    ]
