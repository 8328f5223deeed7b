import pytest
from django.core.management import call_command
from django_q.models import Schedule

pytestmark = pytest.mark.django_db


def test_setup_schedules_is_idempotent(settings, capsys):
    call_command("setup_schedules")
    call_command("setup_schedules")
    sweep = Schedule.objects.get(name="agents: sweep runs and approvals")
    assert sweep.func == "agents.tasks.agents_sweep_task" and sweep.minutes == 1
    assert Schedule.objects.filter(name=sweep.name).count() == 1
    settings.AGENTS_SWEEP_MINUTES = 5
    call_command("setup_schedules")
    sweep.refresh_from_db()
    assert sweep.minutes == 5
    assert "updated: agents: sweep runs and approvals every 5 min" in capsys.readouterr().out


def test_the_sweep_task_reports_what_it_did(db):
    from agents.tasks import agents_sweep_task

    assert agents_sweep_task() == "runs queued 0, calls queued 0, interrupted 0, expired 0"
