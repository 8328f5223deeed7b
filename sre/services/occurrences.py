"""Signals into incidents: count each occurrence once, group it, reopen and escalate as due.

- The same Python record often reaches two logs (Django's file and gunicorn's captured stderr).
  A signal that has the same fingerprint, message and request path as an occurrence from
  another source within SRE_DEDUPE_SECONDS is kept as that occurrence's duplicate and not
  counted; each occurrence absorbs at most one copy per other source.
- A new fingerprint opens an incident (an infrastructure one is escalated at once). An occurrence
  after the incident was resolved reopens it.
- 5xx access-log lines are linked to the incident whose occurrence has their path within
  SRE_REQUEST_MATCH_SECONDS; a 502/504 that matches nothing is an infrastructure incident itself.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from agents.audit import audit_record
from sre.logs.classify import Signal
from sre.logs.fingerprint import VERSION
from sre.models import ErrorRequest, Incident, IncidentWindow, LogSource, Occurrence
from sre.services.incidents import SUBJECT_TYPE, incident_escalate, incident_reopen
from sre.services.windows import window_start

SAMPLE_CHARS = 64_000
PYTHON_KINDS = (LogSource.Kind.DJANGO, LogSource.Kind.GUNICORN)


@dataclass
class Recorded:
    counted: int = 0
    duplicates: int = 0
    new_incidents: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    # (time, path) of every counted occurrence with a request path: 500s seen in the app's logs.
    requests: list[tuple[datetime, str]] = field(default_factory=list)


def clean(text: str, limit: int) -> str:
    """Log text as storable data: no NUL (PostgreSQL refuses it), within the column's size."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text[:limit]


def dedupe_key(signal: Signal) -> str:
    raw = "\x1f".join((signal.fingerprint, signal.message, signal.request_path))
    return hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()


def signals_record(*, source: LogSource, signals: list[Signal]) -> Recorded:
    """Store the signals of one batch as occurrences of their incidents (inside its transaction)."""
    result = Recorded()
    if not signals:
        return result
    tolerance = timedelta(seconds=settings.SRE_DEDUPE_SECONDS)
    incidents: dict[str, Incident] = {}
    per_incident: dict[int, list[Signal]] = defaultdict(list)
    rows: list[Occurrence] = []
    absorbed: set[int] = set()
    copies_possible = LogSource.objects.filter(kind__in=PYTHON_KINDS).exclude(pk=source.pk).exists()
    for signal in signals:
        key = dedupe_key(signal)
        original = None
        if signal.dedupe and copies_possible:
            original = _copy_of(source, key, signal.time, tolerance, absorbed)
        incident = incidents.get(signal.fingerprint)
        if incident is None:
            incident, created = _incident_for(signal, source)
            incidents[signal.fingerprint] = incident
            if created:
                result.new_incidents.append(incident.pk)
        rows.append(
            Occurrence(
                incident=incident,
                source=source,
                occurred_at=signal.time,
                time_exact=signal.time_exact,
                message=clean(signal.message, 2000),
                dedupe_key=key,
                request_path=clean(signal.request_path, 2000),
                duplicate_of_id=original,
            )
        )
        if original is not None:
            absorbed.add(original)
            result.duplicates += 1
            continue
        result.counted += 1
        per_incident[incident.pk].append(signal)
        if signal.request_path and signal.category != "infrastructure":
            result.requests.append((signal.time, signal.request_path))
    Occurrence.objects.bulk_create(rows)
    for incident in incidents.values():
        counted = per_incident.get(incident.pk)
        if counted and _count(incident, counted, source):
            result.reopened.append(incident.pk)
    _link_requests(rows)
    return result


def _copy_of(
    source: LogSource, key: str, time: datetime, tolerance: timedelta, absorbed: set[int]
) -> int | None:
    """The occurrence from another source this signal is a copy of, if any (nearest in time)."""
    candidates = (
        Occurrence.objects.filter(
            dedupe_key=key,
            duplicate_of__isnull=True,
            occurred_at__gte=time - tolerance,
            occurred_at__lte=time + tolerance,
        )
        .exclude(source=source)
        .exclude(duplicates__source=source)
        .exclude(pk__in=absorbed)
        .values_list("pk", "occurred_at")[:50]
    )
    best = min(candidates, key=lambda c: abs(c[1] - time), default=None)
    return best[0] if best else None


def _incident_for(signal: Signal, source: LogSource) -> tuple[Incident, bool]:
    incident = Incident.objects.select_for_update().filter(fingerprint=signal.fingerprint).first()
    if incident is not None:
        return incident, False
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                fingerprint=signal.fingerprint,
                fingerprint_version=VERSION,
                loose_fingerprint=signal.loose,
                category=signal.category,
                infrastructure_kind=signal.infra_kind,
                title=clean(signal.title, 300),
                exception_type=clean(signal.exception_type, 255),
                exception_message=clean(signal.exception_message, 1000),
                culprit=clean(signal.culprit, 500),
                first_seen_at=signal.time,
                last_seen_at=signal.time,
                request_path=clean(signal.request_path, 2000),
                sample_text=clean(signal.text, SAMPLE_CHARS),
                sample_source=source,
                sample_at=signal.time,
            )
    except IntegrityError:
        # Another scan created it meanwhile.
        return Incident.objects.select_for_update().get(fingerprint=signal.fingerprint), False
    audit_record(
        kind="incident.opened",
        subject_type=SUBJECT_TYPE,
        subject_id=incident.pk,
        message=f"Incident #{incident.pk} opened ({incident.get_category_display().lower()}).",
        data={"fingerprint": incident.fingerprint, "source": source.path},
    )
    if incident.needs_escalation:
        incident = _escalate_infrastructure(incident)
    return incident, True


def _escalate_infrastructure(incident: Incident) -> Incident:
    return incident_escalate(
        incident_id=incident.pk,
        reason="Infrastructure failure: it goes to a person, never to a code change.",
    )


def _count(incident: Incident, counted: list[Signal], source: LogSource) -> bool:
    """Add the batch's occurrences to the incident; reopen it when it recurs after resolution."""
    times = [s.time for s in counted]
    first, last = min(times), max(times)
    per_window: dict[datetime, int] = defaultdict(int)
    for time in times:
        per_window[window_start(time)] += 1
    for start, n in per_window.items():
        _window_add(incident, start, n)
    # The row is locked (select_for_update in _incident_for, or created in this transaction).
    incident.refresh_from_db(
        fields=["status", "resolved_at", "occurrences", "first_seen_at", "last_seen_at"]
    )
    fields = {
        "occurrences": incident.occurrences + len(counted),
        "first_seen_at": min(first, incident.first_seen_at),
        "last_seen_at": max(last, incident.last_seen_at),
    }
    reopened = False
    if incident.status == Incident.Status.RESOLVED and (
        incident.resolved_at is None or last > incident.resolved_at
    ):
        incident = incident_reopen(
            incident_id=incident.pk,
            reason=f"It recurred at {last:%Y-%m-%d %H:%M:%S} after it was resolved.",
        )
        reopened = True
        recurrence = max(counted, key=lambda s: s.time)
        fields.update(
            sample_text=clean(recurrence.text, SAMPLE_CHARS),
            sample_source=source,
            sample_at=recurrence.time,
            request_path=clean(recurrence.request_path, 2000),
        )
        if incident.needs_escalation:
            _escalate_infrastructure(incident)
    Incident.objects.filter(pk=incident.pk).update(**fields)
    return reopened


def _window_add(incident: Incident, start: datetime, n: int) -> None:
    rows = IncidentWindow.objects.filter(incident=incident, window_start=start)
    if rows.update(count=F("count") + n):
        return
    try:
        with transaction.atomic():
            IncidentWindow.objects.create(incident=incident, window_start=start, count=n)
    except IntegrityError:
        rows.update(count=F("count") + n)


def _link_requests(rows: list[Occurrence]) -> None:
    """Link the 5xx access lines already stored to the new occurrences' incidents."""
    tolerance = timedelta(seconds=settings.SRE_REQUEST_MATCH_SECONDS)
    by_path: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for row in rows:
        if row.request_path and row.duplicate_of_id is None:
            by_path[row.request_path].append((row.occurred_at, row.incident_id))
    if not by_path:
        return
    times = [t for found in by_path.values() for t, _ in found]
    candidates = ErrorRequest.objects.filter(
        incident__isnull=True,
        path__in=list(by_path),
        occurred_at__gte=min(times) - tolerance,
        occurred_at__lte=max(times) + tolerance,
    ).values_list("pk", "path", "occurred_at")
    linked: dict[int, list[int]] = defaultdict(list)
    for pk, path, at in candidates.iterator():
        incident_id = _nearest(by_path[path], at, tolerance)
        if incident_id is not None:
            linked[incident_id].append(pk)
    for incident_id, pks in linked.items():
        ErrorRequest.objects.filter(pk__in=pks).update(incident_id=incident_id)


def _nearest(found: list[tuple[datetime, int]], time: datetime, tolerance: timedelta) -> int | None:
    at, incident_id = min(found, key=lambda f: abs(f[0] - time))
    return incident_id if abs(at - time) <= tolerance else None


def requests_match(entries: list) -> dict[int, int]:
    """For 5xx access entries (by index): the incident of an occurrence at the same path nearby."""
    tolerance = timedelta(seconds=settings.SRE_REQUEST_MATCH_SECONDS)
    wanted = [(i, e) for i, e in enumerate(entries) if e.path]
    if not wanted:
        return {}
    times = [e.time for _, e in wanted]
    by_path: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    found = Occurrence.objects.filter(
        request_path__in={e.path for _, e in wanted},
        duplicate_of__isnull=True,
        occurred_at__gte=min(times) - tolerance,
        occurred_at__lte=max(times) + tolerance,
    ).values_list("request_path", "occurred_at", "incident_id")
    for path, at, incident_id in found.iterator():
        by_path[path].append((at, incident_id))
    matches: dict[int, int] = {}
    for i, entry in wanted:
        if entry.path in by_path:
            incident_id = _nearest(by_path[entry.path], entry.time, tolerance)
            if incident_id is not None:
                matches[i] = incident_id
    return matches
