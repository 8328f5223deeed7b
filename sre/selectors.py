"""Reads that pages, commands and (later) the SRE agent's tools share."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from sre.models import ErrorRequest, Incident, IncidentWindow, LogSource, Occurrence, TrafficWindow
from sre.services.windows import ALL_ROUTES


def log_source_list(*, enabled: bool | None = None) -> QuerySet[LogSource]:
    sources = LogSource.objects.select_related("checkpoint")
    return sources if enabled is None else sources.filter(enabled=enabled)


def incident_list(*, status: str | None = None, category: str | None = None) -> QuerySet[Incident]:
    incidents = Incident.objects.all()
    if status:
        incidents = incidents.filter(status=status)
    if category:
        incidents = incidents.filter(category=category)
    return incidents


def incident_get(*, incident_id: int) -> Incident:
    return Incident.objects.select_related("sample_source").get(pk=incident_id)


def incident_windows(*, incident_id: int, limit: int = 288) -> list[IncidentWindow]:
    """The incident's counts per window, oldest first (the latest `limit` windows)."""
    rows = IncidentWindow.objects.filter(incident_id=incident_id).order_by("-window_start")
    return list(reversed(rows[:limit]))


def incident_requests(*, incident_id: int, limit: int = 50) -> QuerySet[ErrorRequest]:
    """The 5xx access-log lines matched to the incident, newest first."""
    return ErrorRequest.objects.filter(incident_id=incident_id)[:limit]


def incident_occurrences(*, incident_id: int, limit: int = 50) -> QuerySet[Occurrence]:
    return Occurrence.objects.filter(incident_id=incident_id).select_related("source")[:limit]


def incident_merge_suggestions(*, incident: Incident) -> QuerySet[Incident]:
    """Other incidents with the same loose fingerprint (same in-app module and function chain)."""
    if not incident.loose_fingerprint:
        return Incident.objects.none()
    return Incident.objects.filter(loose_fingerprint=incident.loose_fingerprint).exclude(
        pk=incident.pk
    )


def traffic_series(*, since: datetime, route: str = ALL_ROUTES) -> list[tuple[datetime, int, int]]:
    """(window start, requests, 5xx) per window since a time, for one route or all, for charts."""
    return list(
        TrafficWindow.objects.filter(route=route, window_start__gte=since)
        .order_by("window_start")
        .values_list("window_start", "requests", "server_errors")
    )


def traffic_routes(*, window_start: datetime, limit: int = 20) -> QuerySet[TrafficWindow]:
    """The routes with the most 5xx in one window."""
    return (
        TrafficWindow.objects.filter(window_start=window_start)
        .exclude(route=ALL_ROUTES)
        .order_by("-server_errors", "route")[:limit]
    )
