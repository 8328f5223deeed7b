"""The SRE watchdog's panels on the console's home page: open incidents and 5xx traffic."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.db.models.functions import TruncMinute
from django.template.loader import render_to_string
from django.urls import reverse

from agents.dashboard import Periods, panel_register
from agents.dashboard.charts import Chart, bar_chart, series_fill
from sre.models import ErrorRequest, Incident, IncidentWindow, Spike
from sre.selectors import incident_windows
from sre.services.windows import window_seconds

CLOSED = (Incident.Status.RESOLVED, Incident.Status.IGNORED)
MULTIPLES = 6
HOURS = 24


def _window_label() -> str:
    minutes = max(1, int(settings.SRE_WINDOW_MINUTES))
    return "minute" if minutes == 1 else f"{minutes}-minute window"


def incident_chart(
    *, incident: Incident, windows: dict, since, until, width: int = 320, height: int = 96
) -> Chart:
    """One incident's occurrences per window between two times."""
    step = timedelta(seconds=window_seconds())
    return bar_chart(
        title=f"Incident #{incident.pk}: occurrences per {_window_label()}",
        unit="occurrences",
        series=series_fill(values=windows, since=since, until=until, step=step),
        width=width,
        height=height,
        ticks=2,
    )


def incident_chart_html(*, incident: Incident, limit: int = 288) -> str:
    """The incident page's chart: its latest `limit` windows, drawn, with a table beside."""
    rows = incident_windows(incident_id=incident.pk, limit=limit)
    if not rows:
        return ""
    chart = incident_chart(
        incident=incident,
        windows={r.window_start: r.count for r in rows},
        since=rows[0].window_start,
        until=rows[-1].window_start,
        width=600,
        height=180,
    )
    return render_to_string(
        "agents/dashboard/_chart.html",
        {
            "chart": chart,
            "chart_id": f"cs-incident-chart-{incident.pk}",
            "value_label": "Occurrences",
        },
    )


def incidents_context(*, user: Any, periods: Periods) -> dict[str, Any]:
    """Open incidents by status, and the latest ones' occurrences over the last 24 hours."""
    counts = dict(
        Incident.objects.exclude(status__in=CLOSED)
        .order_by()
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    changelist = reverse("admin:sre_incident_changelist")
    statuses = [
        {"label": label, "count": counts[value], "url": f"{changelist}?status__exact={value}"}
        for value, label in Incident.Status.choices
        if value in counts
    ]
    latest = list(
        Incident.objects.exclude(status__in=CLOSED)
        .only("id", "title", "status", "occurrences", "last_seen_at")
        .order_by("-last_seen_at", "-id")[:MULTIPLES]
    )
    since = periods.now - timedelta(hours=HOURS)
    per_incident: dict[int, dict] = defaultdict(dict)
    for incident_id, start, count in IncidentWindow.objects.filter(
        incident_id__in=[i.pk for i in latest], window_start__gte=since
    ).values_list("incident_id", "window_start", "count"):
        per_incident[incident_id][start] = count
    multiples = [
        {
            "incident": incident,
            "url": reverse("admin:sre_incident_change", args=[incident.pk]),
            "chart_id": f"cs-incident-chart-{incident.pk}",
            "chart": incident_chart(
                incident=incident,
                windows=per_incident[incident.pk],
                since=since,
                until=periods.now,
            ),
        }
        for incident in latest
    ]
    return {
        "statuses": statuses,
        "total": sum(counts.values()),
        "multiples": multiples,
        "changelist": changelist,
        "hours": HOURS,
    }


def traffic_context(*, user: Any, periods: Periods) -> dict[str, Any]:
    """5xx per minute over the last 24 hours (every 5xx line is stored), spikes marked."""
    since = periods.now - timedelta(hours=HOURS)
    minute = timedelta(minutes=1)
    errors = dict(
        ErrorRequest.objects.filter(occurred_at__gte=since)
        .annotate(minute=TruncMinute("occurred_at"))
        .values("minute")
        .annotate(n=Count("id"))
        .values_list("minute", "n")
    )
    window = timedelta(seconds=window_seconds())
    # Each spike marked at the first minute of its window.
    spikes = {
        s.window_start: (
            f"spike: {s.server_errors} 5xx in the {window.seconds // 60}-minute window from "
            f"here, over the threshold {s.threshold:g}"
        )
        for s in Spike.objects.filter(window_start__gte=since).only(
            "window_start", "server_errors", "threshold"
        )
    }
    label = "minute"
    series = series_fill(values=errors, since=since, until=periods.now, step=minute)
    title = f"5xx responses per minute, last {HOURS} hours, spikes marked"

    def drawn(width: int, height: int, ticks: int) -> Any:
        return bar_chart(
            title=title,
            unit="5xx responses",
            series=series,
            marks=spikes,
            bucket="minute",
            width=width,
            height=height,
            ticks=ticks,
        )

    # Two drawings of one chart, so its labels keep a readable size on a desk and a phone;
    # the page's CSS shows one of them.
    return {
        "chart": drawn(1100, 220, 8),
        "chart_narrow": drawn(600, 240, 4),
        "spike_count": len(spikes),
        "label": label,
        "spikes_url": reverse("admin:sre_spike_changelist"),
        "traffic_url": reverse("admin:sre_trafficwindow_changelist"),
        "hours": HOURS,
    }


def register() -> None:
    """Register the watchdog's panels with the engine's dashboard."""
    panel_register(
        name="incidents",
        template="sre/dashboard/_incidents.html",
        context=incidents_context,
        order=20,
        permission="sre.view_incident",
    )
    panel_register(
        name="traffic",
        template="sre/dashboard/_traffic.html",
        context=traffic_context,
        order=60,
        permission="sre.view_trafficwindow",
        wide=True,
    )
