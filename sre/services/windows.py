"""Counting per window (SRE_WINDOW_MINUTES) and per route, and finding spikes of 5xx.

A spike: a window's 5xx count is at least SRE_SPIKE_MIN and above SRE_SPIKE_FACTOR × the
baseline, the mean 5xx count of the SRE_BASELINE_WINDOWS windows before it (a window with no
row counts as 0). 5xx are counted from the access logs; with no enabled access-log source they
are counted from the 500s the application logged (deduplicated occurrences with a request path).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import accumulate

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from agents.audit import audit_record
from sre.models import Spike, TrafficWindow

ALL_ROUTES = ""
OTHER_ROUTES = "(other routes)"
ROUTES_PER_WINDOW = 200
UPSERT_ROWS = 200  # 800 parameters a statement, within every SQLite's limit


def window_seconds() -> int:
    return max(1, int(settings.SRE_WINDOW_MINUTES)) * 60


def window_start(time: datetime) -> datetime:
    """The start of the window holding `time`, aligned to the epoch, in UTC."""
    size = window_seconds()
    stamp = int(time.timestamp())
    return datetime.fromtimestamp(stamp - stamp % size, UTC)


def traffic_add(*, counts: dict[tuple[datetime, str], list[int]]) -> set[datetime]:
    """Add [requests, 5xx] per (window, route); return the windows that got 5xx.

    Each row is added to in the database (an upsert: `requests = requests + n`), so concurrent
    scans of two sources add up instead of overwriting each other; a window keeps at most
    ROUTES_PER_WINDOW routes (the routes it has are read first; two scans adding new routes to
    one window at the same moment may pass the cap by a few).
    """
    if not counts:
        return set()
    starts = {start for start, _ in counts}
    existing = set(
        TrafficWindow.objects.filter(window_start__in=starts).values_list("window_start", "route")
    )
    routes_known: dict[datetime, int] = defaultdict(int)
    for start, route in existing:
        if route != ALL_ROUTES:
            routes_known[start] += 1
    merged: dict[tuple[datetime, str], list[int]] = {}
    for (start, route), (requests, errors) in sorted(counts.items()):
        # A path may hold %00: PostgreSQL's text refuses NUL.
        key = (start, route.replace("\x00", "\ufffd")[:500])
        if route != ALL_ROUTES and key not in existing and key not in merged:
            if routes_known[start] >= ROUTES_PER_WINDOW:
                key = (start, OTHER_ROUTES)
            if key not in existing and key not in merged:
                routes_known[start] += 1
        slot = merged.setdefault(key, [0, 0])
        slot[0] += requests
        slot[1] += errors
    _upsert(sorted(merged.items()))
    return {start for (start, route), (_, errors) in merged.items() if errors and not route}


def _upsert(rows: list[tuple[tuple[datetime, str], list[int]]]) -> None:
    """INSERT ... ON CONFLICT DO UPDATE adding to the counts (SQLite 3.24+, PostgreSQL 9.5+).

    Rows go in key order, so two transactions upserting the same rows lock them in one order.
    """
    meta = TrafficWindow._meta
    qn = connection.ops.quote_name
    table = qn(meta.db_table)
    ws, route, req, err = (
        qn(meta.get_field(name).column)
        for name in ("window_start", "route", "requests", "server_errors")
    )
    prep = meta.get_field("window_start").get_db_prep_save
    with connection.cursor() as cursor:
        for at in range(0, len(rows), UPSERT_ROWS):
            part = rows[at : at + UPSERT_ROWS]
            params: list = []
            for (start, name), (requests, errors) in part:
                params += [prep(start, connection), name, requests, errors]
            cursor.execute(
                f"INSERT INTO {table} ({ws}, {route}, {req}, {err}) VALUES "
                + ", ".join(["(%s, %s, %s, %s)"] * len(part))
                + f" ON CONFLICT ({ws}, {route}) DO UPDATE SET "
                f"{req} = {table}.{req} + EXCLUDED.{req}, {err} = {table}.{err} + EXCLUDED.{err}",
                params,
            )


def spike_check(*, server_errors: int, baseline: float) -> bool:
    return server_errors >= settings.SRE_SPIKE_MIN and server_errors > (
        settings.SRE_SPIKE_FACTOR * baseline
    )


def spikes_detect(*, windows: set[datetime]) -> list[Spike]:
    """Evaluate the given windows; return their spikes (new or already known, updated)."""
    size = timedelta(seconds=window_seconds())
    n = max(1, int(settings.SRE_BASELINE_WINDOWS))
    spikes = []
    if not windows:
        return spikes
    # One read for every window and its baseline (a full scan touches a day of windows).
    totals = dict(
        TrafficWindow.objects.filter(
            route=ALL_ROUTES,
            window_start__gte=min(windows) - n * size,
            window_start__lte=max(windows),
        ).values_list("window_start", "server_errors")
    )
    keys = sorted(totals)
    sums = list(accumulate((totals[k] for k in keys), initial=0))
    for start in sorted(windows):
        errors = totals.get(start, 0)
        # The rows from start - n windows up to (not including) start.
        baseline = (sums[bisect_left(keys, start)] - sums[bisect_left(keys, start - n * size)]) / n
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
