from django.db import migrations

from agents.guards import guards_install, guards_uninstall


def install(apps, schema_editor):
    guards_install(schema_editor)


def uninstall(apps, schema_editor):
    guards_uninstall(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("agents", "0001_initial")]

    operations = [migrations.RunPython(install, uninstall)]
