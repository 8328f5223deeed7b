"""Spikes of 5xx per window, and when a spike starts the SRE agent on a code incident."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents import registry
from agents.models import AgentRun, AuditEvent
from agents.prompts import prompt_register
from sre.agent import incident_agent_start
from sre.models import AgentTrigger, Incident, IncidentWindow, Spike, TrafficWindow
from sre.services import incident_agent_request
from sre.services.windows import spike_check, spikes_detect, traffic_add, window_start
from tests.sre.logfiles import scan_all

pytestmark = pytest.mark.django_db

W = datetime(2025, 3, 14, 9, 25, tzinfo=UTC)
STEP = timedelta(minutes=5)


@pytest.mark.parametrize(
    ("errors", "baseline", "spike"),
    [
        (9, 0.0, False),  # below the minimum
        (10, 0.0, True),  # at the minimum, nothing before
        (10, 3.0, True),  # 10 > 3 × 3
        (12, 4.0, False),  # 12 is not above 3 × 4
        (13, 4.0, True),
        (1000, 400.0, False),  # busy all along: not a spike
    ],
)
def test_spike_rule(errors, baseline, spike):
    assert spike_check(server_errors=errors, baseline=baseline) is spike


def add(start: datetime, errors: int, requests: int | None = None) -> None:
    traffic_add(counts={(start, ""): [requests or errors, errors]})


def test_the_baseline_is_the_mean_of_the_windows_before_missing_ones_counting_zero(settings):
    settings.SRE_BASELINE_WINDOWS = 4
    add(W - STEP, 4)
    add(W - 3 * STEP, 4)
    add(W - 5 * STEP, 400)  # outside the baseline
    add(W, 6)
    settings.SRE_SPIKE_MIN = 5
    assert spikes_detect(windows={W}) == []  # 6 is not above 3 × (4 + 0 + 4 + 0) / 4
    add(W, 1)
    (spike,) = spikes_detect(windows={W})
    assert (spike.server_errors, spike.baseline, spike.threshold) == (7, 2.0, 6.0)
    add(W, 2)
    assert spikes_detect(windows={W})[0].server_errors == 9
    assert Spike.objects.count() == 1
    assert AuditEvent.objects.filter(kind="sre.spike").count() == 1


def test_windows_are_aligned_and_routes_capped(settings, monkeypatch):
    assert window_start(datetime(2025, 3, 14, 9, 29, 59, tzinfo=UTC)) == W
    assert window_start(datetime(2025, 3, 14, 9, 30, tzinfo=UTC)) == W + STEP
    from sre.services import windows

    monkeypatch.setattr(windows, "ROUTES_PER_WINDOW", 2)
    traffic_add(counts={(W, f"/r{i}"): [1, 1] for i in range(4)} | {(W, ""): [4, 4]})
    routes = dict(
        TrafficWindow.objects.filter(window_start=W).values_list("route", "server_errors")
    )
    assert routes == {"": 4, "/r0": 1, "/r1": 1, "(other routes)": 2}


def code_incident(**extra) -> Incident:
    incident = Incident.objects.create(
        fingerprint=f"tb1:{Incident.objects.count()}",
        fingerprint_version=1,
        category=extra.pop("category", "code"),
        title="KeyError: 'user_profile' (shop/api.py in profile)",
        culprit="shop/api.py in profile",
        exception_type="KeyError",
        first_seen_at=W,
        last_seen_at=W,
        occurrences=12,
        **extra,
    )
    IncidentWindow.objects.create(incident=incident, window_start=W, count=12)
    return incident


def spike() -> Spike:
    return Spike.objects.create(window_start=W, server_errors=13, baseline=0, threshold=10)


def test_a_request_queues_the_agent_once_per_spike_and_only_for_open_code_incidents(
    django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.delitem(registry._toolsets, "sre")
    incident, s = code_incident(), spike()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        trigger = incident_agent_request(incident_id=incident.pk, spike_id=s.pk, now=W)
    assert trigger.outcome == "queued" and len(callbacks) == 1
    assert AuditEvent.objects.filter(kind="incident.agent_requested").count() == 1
    assert AuditEvent.objects.filter(kind="incident.agent_not_configured").count() == 1
    assert incident_agent_request(incident_id=incident.pk, spike_id=s.pk, now=W) is None
    for kind, status in (
        ("infrastructure", "escalated"),
        ("message", "open"),
        ("code", "resolved"),
    ):
        other = code_incident(category=kind, status=status)
        assert incident_agent_request(incident_id=other.pk, spike_id=s.pk, now=W) is None
    assert AgentTrigger.objects.count() == 1


def test_the_hourly_cap_counts_starts_across_incidents(settings):
    settings.SRE_AGENT_RUNS_PER_HOUR = 2
    spikes = [
        Spike.objects.create(window_start=W + i * STEP, server_errors=20, baseline=0, threshold=10)
        for i in range(4)
    ]
    a, b, c = code_incident(), code_incident(), code_incident()
    assert (
        incident_agent_request(incident_id=a.pk, spike_id=spikes[0].pk, now=W).outcome == "queued"
    )
    assert (
        incident_agent_request(incident_id=b.pk, spike_id=spikes[0].pk, now=W).outcome == "queued"
    )
    capped = incident_agent_request(incident_id=c.pk, spike_id=spikes[0].pk, now=W + STEP)
    assert capped.outcome == "capped"
    assert AuditEvent.objects.filter(kind="incident.agent_capped").count() == 1
    # An hour later there is room again.
    later = incident_agent_request(
        incident_id=c.pk, spike_id=spikes[1].pk, now=W + timedelta(minutes=61)
    )
    assert later.outcome == "queued"


@pytest.fixture
def sre_toolset(monkeypatch) -> registry.Toolset:
    """A stand-in "sre" toolset with no tools, as the one §3 registers."""
    prompt_register(name="sre-test", version=1, template="prompts/toolbox/v1.txt")
    toolset = registry.Toolset(name="sre", label="SRE watchdog", prompt="sre-test")
    monkeypatch.setitem(registry._toolsets, "sre", toolset)
    return toolset


def test_with_an_sre_toolset_the_hook_starts_one_run_at_a_time(sre_toolset):
    incident, s = code_incident(), spike()
    run = incident_agent_start(incident.pk)
    assert run.toolset == "sre" and run.subject_type == "sre.incident"
    assert Incident.objects.get(pk=incident.pk).status == "investigating"
    # The first message carries the incident as delimited, redacted data.
    text = run.messages[0]["content"][0]["text"]
    assert text.startswith(f"Incident #{incident.pk} (Code (traceback)) needs a fix.")
    assert "<incident_data>\nTitle: KeyError: 'user_profile'" in text
    # Investigating: no second request, and the hook itself would not start a second run.
    assert incident_agent_request(incident_id=incident.pk, spike_id=s.pk, now=W) is None
    Incident.objects.filter(pk=incident.pk).update(status="open")
    assert incident_agent_request(incident_id=incident.pk, spike_id=s.pk, now=W) is None
    assert incident_agent_start(incident.pk) is None
    assert AgentRun.objects.count() == 1


def test_a_spike_found_by_a_scan_requests_the_agent_for_each_incident_once(logs, source, settings):
    settings.SRE_SPIKE_MIN = 3
    record = (
        "2025-03-14 09:26:{s:02d},000 ERROR django.request Internal Server Error: /api/p\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/shop/shop/api.py", line 8, in profile\n'
        '    profile = reply["user_profile"]\n'
        "KeyError: 'user_profile'\n"
    )
    log = logs("error.log").write("".join(record.format(s=s) for s in range(4)))
    source("django", log.path, read_existing=True)
    report = scan_all()
    # No access log: the 500s the application logged are what is counted.
    assert TrafficWindow.objects.get(route="", window_start=W).server_errors == 4
    assert len(report.spikes) == 1 and len(report.triggers) == 1
    log.append(record.format(s=30))
    report = scan_all()
    assert len(report.spikes) == 1 and report.triggers == []
