"""Counting per window (SRE_WINDOW_MINUTES) and per route, and finding spikes of 5xx.

A spike: a window's 5xx count is at least SRE_SPIKE_MIN and above SRE_SPIKE_FACTOR × the
baseline, the mean 5xx count of the SRE_BASELINE_WINDOWS windows before it (a window with no
row counts as 0). 5xx are counted from the access logs; with no enabled access-log source they
are counted from the 500s the application logged (deduplicated occurrences with a request path).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from agents.audit import audit_record
from sre.models import Spike, TrafficWindow

ALL_ROUTES = ""
OTHER_ROUTES = "(other routes)"
ROUTES_PER_WINDOW = 200


def window_seconds() -> int:
    return max(1, int(settings.SRE_WINDOW_MINUTES)) * 60


def window_start(time: datetime) -> datetime:
    """The start of the window holding `time`, aligned to the epoch, in UTC."""
    size = window_seconds()
    stamp = int(time.timestamp())
    return datetime.fromtimestamp(stamp - stamp % size, UTC)


def traffic_add(*, counts: dict[tuple[datetime, str], list[int]]) -> set[datetime]:
    """Add [requests, 5xx] per (window, route); return the windows that got 5xx.

    The rows of the windows concerned are read under a lock, so concurrent scans of two sources
    add up instead of overwriting each other; a window keeps at most ROUTES_PER_WINDOW routes.
    """
    if not counts:
        return set()
    starts = {start for start, _ in counts}
    existing: dict[tuple[datetime, str], TrafficWindow] = {
        (row.window_start, row.route): row
        for row in TrafficWindow.objects.select_for_update().filter(window_start__in=starts)
    }
    routes_known: dict[datetime, int] = defaultdict(int)
    for start, route in existing:
        if route != ALL_ROUTES:
            routes_known[start] += 1
    merged: dict[tuple[datetime, str], list[int]] = {}
    for (start, route), (requests, errors) in sorted(counts.items()):
        key = (start, route)
        if route != ALL_ROUTES and key not in existing and key not in merged:
            if routes_known[start] >= ROUTES_PER_WINDOW:
                key = (start, OTHER_ROUTES)
            if key not in existing and key not in merged:
                routes_known[start] += 1
        slot = merged.setdefault(key, [0, 0])
        slot[0] += requests
        slot[1] += errors
    changed, new = [], []
    for key, (requests, errors) in merged.items():
        row = existing.get(key)
        if row is None:
            new.append(
                TrafficWindow(
                    window_start=key[0], route=key[1], requests=requests, server_errors=errors
                )
            )
        else:
            row.requests += requests
            row.server_errors += errors
            changed.append(row)
    TrafficWindow.objects.bulk_update(changed, ["requests", "server_errors"], batch_size=500)
    try:
        with transaction.atomic():
            TrafficWindow.objects.bulk_create(new, batch_size=500)
    except IntegrityError:
        # Another scan created some of these rows meanwhile: add row by row.
        for row in new:
            _add(row.window_start, row.route, row.requests, row.server_errors)
    return {start for (start, route), (_, errors) in merged.items() if errors and not route}


def _add(start: datetime, route: str, requests: int, errors: int) -> None:
    rows = TrafficWindow.objects.filter(window_start=start, route=route)
    if rows.update(requests=F("requests") + requests, server_errors=F("server_errors") + errors):
        return
    try:
        with transaction.atomic():
            TrafficWindow.objects.create(
                window_start=start, route=route, requests=requests, server_errors=errors
            )
    except IntegrityError:
        rows.update(requests=F("requests") + requests, server_errors=F("server_errors") + errors)


def spike_check(*, server_errors: int, baseline: float) -> bool:
    return server_errors >= settings.SRE_SPIKE_MIN and server_errors > (
        settings.SRE_SPIKE_FACTOR * baseline
    )


def spikes_detect(*, windows: set[datetime]) -> list[Spike]:
    """Evaluate the given windows; return their spikes (new or already known, updated)."""
    size = timedelta(seconds=window_seconds())
    n = max(1, int(settings.SRE_BASELINE_WINDOWS))
    spikes = []
    for start in sorted(windows):
        earliest = start - n * size
        totals = dict(
            TrafficWindow.objects.filter(
                route=ALL_ROUTES, window_start__gte=earliest, window_start__lte=start
            ).values_list("window_start", "server_errors")
        )
        errors = totals.get(start, 0)
        baseline = sum(v for k, v in totals.items() if k < start) / n
        if not spike_check(server_errors=errors, baseline=baseline):
            continue
        threshold = max(float(settings.SRE_SPIKE_MIN), settings.SRE_SPIKE_FACTOR * baseline)
        spike = Spike.objects.filter(window_start=start).first()
        if spike is None:
            try:
                with transaction.atomic():
                    spike = Spike.objects.create(
                        window_start=start,
                        server_errors=errors,
                        baseline=baseline,
                        threshold=threshold,
                    )
                    audit_record(
                        kind="sre.spike",
                        subject_type="sre.spike",
                        subject_id=spike.pk,
                        message=f"{errors} 5xx in the window from {start:%Y-%m-%d %H:%M} UTC "
                        f"(baseline {baseline:.1f}).",
                        data={"window_start": start.isoformat(), "server_errors": errors},
                    )
            except IntegrityError:
                spike = Spike.objects.get(window_start=start)
        elif spike.server_errors != errors:
            Spike.objects.filter(pk=spike.pk).update(server_errors=errors)
            spike.server_errors = errors
        spikes.append(spike)
    return spikes
