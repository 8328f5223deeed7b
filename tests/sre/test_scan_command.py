"""`manage.py sre_scan` and the schedule: the seed's example end to end."""

from __future__ import annotations

import gzip
import io

import pytest
from django.core.management import CommandError, call_command
from django_q.models import Schedule

from agents.models import AuditEvent
from sre.models import (
    AgentTrigger,
    ErrorRequest,
    Incident,
    LogSource,
    Occurrence,
    Spike,
    TrafficWindow,
)
from sre.tasks import sre_scan_task

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command("sre_scan", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_from_start_finds_the_seed_incident_its_500s_and_the_spike(settings, seed_files):
    settings.SRE_LOG_SOURCES = (
        f"django:{seed_files['django']},nginx_access:{seed_files['nginx_access']}"
    )
    output = run("--from-start")

    profile = Incident.objects.get(culprit="shop/api.py in profile")
    assert profile.title == "KeyError: 'user_profile' (shop/api.py in profile)"
    assert profile.category == "code" and profile.status == "open"
    assert profile.occurrences == 12
    assert profile.exception_type == "KeyError"
    assert 'profile = reply["user_profile"]' in profile.sample_text
    # The 12 failed requests in the access log, matched by path and time.
    assert profile.requests.count() == 12
    assert set(profile.requests.values_list("status", flat=True)) == {500}
    assert [w.count for w in profile.windows.all()] == [12]
    # The chained orders error and the "During handling" preferences error are their own.
    assert Incident.objects.filter(category="code").count() == 3
    orders = Incident.objects.get(culprit="shop/api.py in orders")
    assert orders.exception_type == "LookupError"
    # The spike: 13 500s in the 09:25 window against a baseline of one 500 an hour.
    spike = Spike.objects.get()
    assert spike.server_errors == 13
    assert f"{spike.window_start:%H:%M}" == "09:25"
    assert spike.baseline == pytest.approx(1 / 12)
    totals = TrafficWindow.objects.filter(route="", window_start=spike.window_start).get()
    assert totals.server_errors == 13 and totals.requests == 13 + 12
    assert (
        TrafficWindow.objects.get(
            route="/api/users/<n>/profile", window_start=spike.window_start
        ).server_errors
        == 12
    )
    # The spike queues the agent for its code incidents; none is configured yet.
    assert set(AgentTrigger.objects.values_list("incident_id", flat=True)) == {
        profile.pk,
        Incident.objects.get(culprit="shop/api.py in preferences").pk,
    }
    assert "KeyError: 'user_profile' (shop/api.py in profile) (12x)" in output
    assert "spike: 13 5xx in the window from 2025-03-14 09:25 UTC" in output
    assert "SRE agent for incident" in output
    assert "django " in output and "nginx_access " in output

    # A second run reads nothing new and changes nothing.
    before = (Occurrence.objects.count(), ErrorRequest.objects.count(), Incident.objects.count())
    output = run()
    assert (
        Occurrence.objects.count(),
        ErrorRequest.objects.count(),
        Incident.objects.count(),
    ) == before
    assert "0 lines" in output


def test_agent_hook_records_that_no_sre_agent_is_configured(
    settings, seed_files, django_capture_on_commit_callbacks, monkeypatch
):
    from agents import registry

    monkeypatch.delitem(registry._toolsets, "sre")
    settings.SRE_LOG_SOURCES = (
        f"django:{seed_files['django']},nginx_access:{seed_files['nginx_access']}"
    )
    with django_capture_on_commit_callbacks(execute=True):
        run("--from-start")
    events = AuditEvent.objects.filter(kind="incident.agent_not_configured")
    assert events.count() == 2
    assert "No SRE agent is configured yet" in events.first().message


def test_agent_hook_starts_the_sre_agent_on_each_code_incident(
    settings, seed_files, django_capture_on_commit_callbacks
):
    from agents.models import AgentRun

    settings.SRE_LOG_SOURCES = (
        f"django:{seed_files['django']},nginx_access:{seed_files['nginx_access']}"
    )
    with django_capture_on_commit_callbacks(execute=True):
        run("--from-start")
    runs = AgentRun.objects.filter(toolset="sre")
    assert runs.count() == 2
    assert set(Incident.objects.filter(status="investigating").values_list("pk", flat=True)) == {
        int(r.subject_id) for r in runs
    }
    first = runs.first().messages[0]["content"][0]["text"]
    assert "<incident_data>" in first and "Traceback" in first


def test_without_from_start_a_new_source_starts_at_its_end(settings, seed_files):
    settings.SRE_LOG_SOURCES = f"django:{seed_files['django']}"
    output = run()
    assert "new source: starts at the end" in output
    assert not Incident.objects.exists()


def test_from_start_reads_rotated_siblings_first_and_skips_compressed(settings, tmp_path):
    log = tmp_path / "access.log"
    line = '10.0.0.1 - - [14/Mar/2025:09:{m:02d}:00 +0000] "GET /a HTTP/1.1" {s} 10 "-" "ua"\n'
    (tmp_path / "access.log.3.gz").write_bytes(gzip.compress(line.format(m=0, s=500).encode()))
    # Compressed but not named so (gzip's magic bytes): skipped too.
    (tmp_path / "access.log.2").write_bytes(gzip.compress(line.format(m=1, s=500).encode()))
    (tmp_path / "access.log.1").write_text(line.format(m=2, s=200) + line.format(m=3, s=500))
    log.write_text(line.format(m=4, s=200))
    settings.SRE_LOG_SOURCES = f"nginx_access:{log}"
    output = run("--from-start")
    assert "reading from the start: 1 rotated file(s) first" in output
    assert list(ErrorRequest.objects.values_list("occurred_at__minute", flat=True)) == [3]
    assert TrafficWindow.objects.get(route="").requests == 3


def test_a_bad_sre_log_sources_is_a_clear_error(settings):
    settings.SRE_LOG_SOURCES = "apache:/var/log/apache2/access.log"
    with pytest.raises(CommandError, match="kind:path"):
        run()


def test_sources_from_the_environment_are_kept_in_step(settings, tmp_path):
    settings.SRE_LOG_SOURCES = f"django:{tmp_path / 'a.log'}, gunicorn:{tmp_path / 'b.log'}"
    output = run()
    assert "added from SRE_LOG_SOURCES: gunicorn:" in output
    assert LogSource.objects.filter(from_env=True, enabled=True).count() == 2
    settings.SRE_LOG_SOURCES = f"django:{tmp_path / 'a.log'}"
    run()
    assert not LogSource.objects.get(path=str(tmp_path / "b.log")).enabled


def test_no_sources_says_how_to_add_one():
    assert "No log sources: set SRE_LOG_SOURCES" in run()


def test_the_scan_is_scheduled_every_sre_scan_minutes(settings):
    settings.SRE_SCAN_MINUTES = 7
    call_command("setup_schedules", stdout=io.StringIO())
    schedule = Schedule.objects.get(name="sre: scan the log sources")
    assert schedule.func == "sre.tasks.sre_scan_task" and schedule.minutes == 7


def test_the_task_reports_what_it_did():
    assert sre_scan_task().startswith("0 sources, 0 lines")
