"""Scanning log sources: read what was appended, store it, then save the checkpoint.

`sre_scan` scans every enabled source once (the access logs last, so their 5xx lines find the
tracebacks they go with), then looks for spikes in the windows it touched and queues the SRE
agent for their code incidents. Each batch of a source is stored, and its checkpoint saved, in
one transaction: the checkpoint is updated by compare-and-set, so two scans of one source at the
same time cannot both store the same lines. An access log's batch brings its common lines
already counted by minute and route (`Batch.requests`); its 5xx and odd lines come as events.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from sre.logs.assemble import Unparsed
from sre.logs.classify import classify
from sre.logs.fingerprint import route_of
from sre.logs.nginx import AccessEntry
from sre.logs.scan import Batch, FileScan
from sre.logs.tail import Checkpoint
from sre.models import AgentTrigger, ErrorRequest, LogCheckpoint, LogSource, Spike
from sre.services.agent_requests import incident_agent_request, spike_incidents
from sre.services.occurrences import clean, requests_match, signals_record
from sre.services.windows import ALL_ROUTES, spikes_detect, traffic_add, window_start

logger = logging.getLogger(__name__)
Kind = LogSource.Kind


class ScanConflict(Exception):
    """Another scan moved this source's checkpoint meanwhile; this one stops for the source."""


@dataclass
class SourceReport:
    source_id: int
    kind: str
    path: str
    bytes: int = 0
    lines: int = 0
    unparsed: int = 0
    cut: int = 0
    events: int = 0
    requests: int = 0
    server_errors: int = 0
    occurrences: int = 0
    duplicates: int = 0
    new_incidents: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""

    def summary(self) -> str:
        parts = [
            f"{self.bytes} bytes",
            f"{self.lines} lines",
            f"{self.unparsed} unparsed",
            f"{self.events} events",
        ]
        if self.kind == Kind.NGINX_ACCESS:
            parts.append(f"{self.requests} requests, {self.server_errors} 5xx")
        parts.append(f"{self.occurrences} occurrences ({self.duplicates} duplicates)")
        if self.new_incidents:
            parts.append(f"new incidents {', '.join(f'#{i}' for i in self.new_incidents)}")
        if self.reopened:
            parts.append(f"reopened {', '.join(f'#{i}' for i in self.reopened)}")
        return ", ".join(parts)


@dataclass
class ScanReport:
    sources: list[SourceReport] = field(default_factory=list)
    spikes: list[Spike] = field(default_factory=list)
    triggers: list[AgentTrigger] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.sources)} sources, {sum(s.lines for s in self.sources)} lines, "
            f"{sum(s.occurrences for s in self.sources)} occurrences, "
            f"{sum(len(s.new_incidents) for s in self.sources)} new incidents, "
            f"{len(self.spikes)} spikes, "
            f"{sum(t.outcome == AgentTrigger.Outcome.QUEUED for t in self.triggers)} agent runs queued"
        )


def log_sources_parse(value: str) -> list[tuple[str, str]]:
    """`kind:path,kind:path` (SRE_LOG_SOURCES) as pairs; raises ValueError on a bad entry."""
    pairs = []
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        kind, sep, path = item.partition(":")
        kind, path = kind.strip(), path.strip()
        if not sep or kind not in Kind.values or not path:
            raise ValueError(
                f"SRE_LOG_SOURCES: {item!r} is not kind:path with a kind among "
                f"{', '.join(Kind.values)}."
            )
        pairs.append((kind, os.path.abspath(path)))
    return pairs


def log_sources_sync() -> list[str]:
    """Make the sources listed in SRE_LOG_SOURCES exist and be enabled; disable ones dropped."""
    pairs = log_sources_parse(settings.SRE_LOG_SOURCES)
    notes = []
    listed = set()
    with transaction.atomic():
        for kind, path in pairs:
            listed.add(path)
            source, created = LogSource.objects.get_or_create(
                path=path, defaults={"kind": kind, "from_env": True}
            )
            if created:
                notes.append(f"added from SRE_LOG_SOURCES: {kind}:{path}")
            elif (source.kind, source.enabled, source.from_env) != (kind, True, True):
                LogSource.objects.filter(pk=source.pk).update(
                    kind=kind, enabled=True, from_env=True
                )
        dropped = LogSource.objects.filter(from_env=True, enabled=True).exclude(path__in=listed)
        for path in dropped.values_list("path", flat=True):
            notes.append(f"no longer in SRE_LOG_SOURCES, disabled: {path}")
        dropped.update(enabled=False)
    return notes


def sre_scan(
    *, from_start: bool = False, now: datetime | None = None, source_ids: list[int] | None = None
) -> ScanReport:
    """Scan every enabled source once, then detect spikes and queue the SRE agent as due."""
    now = now or timezone.now()
    report = ScanReport()
    try:
        report.notes += log_sources_sync()
    except ValueError as error:
        report.notes.append(str(error))
    sources = LogSource.objects.filter(enabled=True)
    if source_ids is not None:
        sources = sources.filter(pk__in=source_ids)
    # Access logs last: their 5xx lines then find the tracebacks they go with.
    ordered = sorted(sources, key=lambda s: (s.kind == Kind.NGINX_ACCESS, s.path))
    windows: set[datetime] = set()
    for source in ordered:
        report.sources.append(
            log_source_scan(source_id=source.pk, from_start=from_start, now=now, windows=windows)
        )
    with transaction.atomic():
        report.spikes = spikes_detect(windows=windows)
        requested: set[int] = set()
        for spike in report.spikes:
            for incident_id in spike_incidents(spike=spike):
                if incident_id in requested:
                    continue  # one run at a time per incident
                trigger = incident_agent_request(
                    incident_id=incident_id, spike_id=spike.pk, now=now
                )
                if trigger is not None:
                    requested.add(incident_id)
                    report.triggers.append(trigger)
    return report


def log_source_scan(
    *,
    source_id: int,
    from_start: bool = False,
    now: datetime | None = None,
    windows: set[datetime] | None = None,
) -> SourceReport:
    """Read what was appended to one source since its checkpoint and store it, batch by batch."""
    now = now or timezone.now()
    windows = windows if windows is not None else set()
    source = LogSource.objects.get(pk=source_id)
    report = SourceReport(source_id=source.pk, kind=source.kind, path=source.path)
    row = LogCheckpoint.objects.filter(source=source).first()
    checkpoint = None
    if row is not None and row.source_path == source.path:
        checkpoint = Checkpoint(row.file_id, row.file_path, row.head_hash, row.head_len, row.offset)
    elif row is not None:
        report.notes.append("the source's path changed: it starts again as a new source.")
    scan = FileScan(
        path=source.path,
        kind=source.kind,
        checkpoint=checkpoint,
        from_start=from_start or source.read_existing,
        max_bytes=settings.SRE_SCAN_MAX_BYTES,
        max_line=settings.SRE_MAX_LINE_BYTES,
        settle_seconds=settings.SRE_SETTLE_SECONDS,
        now=now.timestamp(),
        last_time=row.last_time if row is not None and checkpoint is not None else None,
    )
    state = _State(row=row, samples=list(row.unparsed_samples) if row else [])
    try:
        if not scan.plan.segments and (checkpoint is None or scan.plan.checkpoint):
            # A new source: start at the end of its file, or wait for it to exist.
            start = scan.plan.checkpoint or Checkpoint("", "", "", 0, 0)
            with transaction.atomic():
                _checkpoint_save(source, state, Batch(items=[], checkpoint=start), now, [])
        for batch in scan.batches():
            with transaction.atomic():
                _batch_store(source, batch, report, windows)
                _checkpoint_save(source, state, batch, now, scan.notes)
            report.bytes += batch.bytes
            report.lines += batch.lines
            report.unparsed += batch.unparsed
            report.cut += batch.cut
    except ScanConflict as error:
        report.error = str(error)
    except OSError as error:
        report.error = f"cannot read {source.path}: {error}"
        logger.warning("sre scan of %s: %s", source.path, error)
    if scan.capped:
        scan.notes.append(f"stopped at SRE_SCAN_MAX_BYTES ({settings.SRE_SCAN_MAX_BYTES}).")
    report.notes += scan.notes
    if report.notes and not report.error:
        LogCheckpoint.objects.filter(source=source).update(last_note="\n".join(report.notes))
    return report


@dataclass
class _State:
    row: LogCheckpoint | None
    samples: list[str]


def _checkpoint_save(
    source: LogSource, state: _State, batch: Batch, now: datetime, notes: list[str]
) -> None:
    cp = batch.checkpoint
    state.samples = (state.samples + [clean(s, 500) for s in batch.samples])[-5:]
    values = {
        "source_path": source.path,
        "file_path": cp.file_path,
        "file_id": cp.file_id,
        "head_hash": cp.head_hash,
        "head_len": cp.head_len,
        "offset": cp.offset,
        "scanned_at": now,
        "unparsed_samples": state.samples,
        "last_note": "\n".join(notes),
    }
    if batch.last_time is not None:
        values["last_time"] = batch.last_time
    row = state.row
    if row is None:
        try:
            with transaction.atomic():
                state.row = LogCheckpoint.objects.create(
                    source=source,
                    bytes_read=batch.bytes,
                    lines_read=batch.lines,
                    unparsed_lines=batch.unparsed,
                    cut_lines=batch.cut,
                    **values,
                )
        except IntegrityError:
            raise ScanConflict("another scan started this source at the same time.") from None
        return
    changed = LogCheckpoint.objects.filter(
        pk=row.pk, file_id=row.file_id, file_path=row.file_path, offset=row.offset
    ).update(
        bytes_read=F("bytes_read") + batch.bytes,
        lines_read=F("lines_read") + batch.lines,
        unparsed_lines=F("unparsed_lines") + batch.unparsed,
        cut_lines=F("cut_lines") + batch.cut,
        **values,
    )
    if not changed:
        raise ScanConflict("another scan moved this source's checkpoint meanwhile.")
    row.file_id, row.file_path, row.offset = cp.file_id, cp.file_path, cp.offset


def _batch_store(
    source: LogSource, batch: Batch, report: SourceReport, windows: set[datetime]
) -> None:
    """Store one batch's events: traffic counts, 5xx lines, occurrences of incidents."""
    counts: dict[tuple[datetime, str], list[int]] = defaultdict(lambda: [0, 0])
    errors: list[AccessEntry] = []
    signals = []
    for item in batch.items:
        if isinstance(item, AccessEntry):
            start = window_start(item.time)
            is_error = item.status >= 500
            for key in ((start, ALL_ROUTES), (start, route_of(item.path) or "(no path)")):
                slot = counts[key]
                slot[0] += 1
                slot[1] += is_error
            report.requests += 1
            if is_error:
                errors.append(item)
            report.events += 1
            continue
        if isinstance(item, Unparsed):
            continue
        report.events += 1
        signal = classify(item)
        if signal is not None:
            signals.append(signal)
    starts: dict[datetime, datetime] = {}
    for (minute, route), n in batch.requests.items():
        # A window holds whole minutes, so the minute's window is each of its requests' window.
        start = starts.get(minute)
        if start is None:
            start = starts[minute] = window_start(minute)
        counts[(start, ALL_ROUTES)][0] += n
        counts[(start, route)][0] += n
        report.requests += n
        report.events += n
    recorded = signals_record(source=source, signals=signals)
    _collect(report, recorded)
    if errors:
        _errors_store(source, errors, report)
    if source.kind != Kind.NGINX_ACCESS and recorded.requests and not _has_access_source():
        for time, path in recorded.requests:
            start = window_start(time)
            for key in ((start, ALL_ROUTES), (start, route_of(path))):
                counts[key][1] += 1
    if counts:
        windows |= traffic_add(counts=counts)


def _collect(report: SourceReport, recorded) -> None:
    report.occurrences += recorded.counted
    report.duplicates += recorded.duplicates
    report.new_incidents += recorded.new_incidents
    report.reopened += recorded.reopened


def _errors_store(source: LogSource, entries: list[AccessEntry], report: SourceReport) -> None:
    report.server_errors += len(entries)
    matches = requests_match(entries)
    gateway = [(i, e) for i, e in enumerate(entries) if i not in matches and e.status in (502, 504)]
    if gateway:
        signals = [classify(e) for _, e in gateway]
        _collect(report, signals_record(source=source, signals=signals))
        for (i, _), incident_id in zip(
            gateway, _incidents_of([s.fingerprint for s in signals]), strict=True
        ):
            matches[i] = incident_id
    ErrorRequest.objects.bulk_create(
        [
            ErrorRequest(
                source=source,
                incident_id=matches.get(i),
                occurred_at=e.time,
                status=e.status,
                method=clean(e.method, 16),
                path=clean(e.path, 2000),
                route=clean(route_of(e.path), 500),
                request_id=clean(e.request_id, 64),
                upstream_status=clean(e.upstream_status, 64),
                request_time=e.request_time,
                line=clean(e.line, 8000),
            )
            for i, e in enumerate(entries)
        ]
    )


def _incidents_of(fingerprints: list[str]) -> list[int]:
    from sre.models import Incident

    ids = dict(
        Incident.objects.filter(fingerprint__in=set(fingerprints)).values_list("fingerprint", "pk")
    )
    return [ids[f] for f in fingerprints]


def _has_access_source() -> bool:
    return LogSource.objects.filter(kind=Kind.NGINX_ACCESS, enabled=True).exists()
