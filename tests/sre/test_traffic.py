"""Traffic windows: counts added in the database, and an access log counted the same however read.

The scan counts the common access lines by minute and route without an event each (the fast
path) and parses the others line by line; what it stores must be what parsing every line would
give.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from sre.logs import nginx, tail
from sre.logs.fingerprint import route_of
from sre.models import ErrorRequest, LogCheckpoint, TrafficWindow
from sre.services import windows
from sre.services.windows import ALL_ROUTES, spikes_detect, traffic_add, window_start
from tests.sre.logfiles import scan_one

pytestmark = pytest.mark.django_db

W = datetime(2025, 3, 14, 9, 25, tzinfo=UTC)


def stored() -> dict[tuple[datetime, str], tuple[int, int]]:
    return {
        (w, r): (n, e)
        for w, r, n, e in TrafficWindow.objects.values_list(
            "window_start", "route", "requests", "server_errors"
        )
    }


def test_counts_add_to_the_rows_already_stored():
    TrafficWindow.objects.create(window_start=W, route="", requests=5, server_errors=1)
    assert traffic_add(counts={(W, ""): [2, 0], (W, "/a"): [2, 0]}) == set()
    assert traffic_add(counts={(W, ""): [3, 1], (W, "/a"): [3, 1]}) == {W}
    assert stored() == {(W, ""): (10, 2), (W, "/a"): (5, 1)}


def test_the_route_cap_counts_the_routes_stored_before(monkeypatch):
    monkeypatch.setattr(windows, "ROUTES_PER_WINDOW", 2)
    traffic_add(counts={(W, "/a"): [1, 0]})
    traffic_add(counts={(W, "/b"): [1, 0], (W, "/c"): [1, 0], (W, "/a"): [1, 0]})
    traffic_add(counts={(W, "/d"): [1, 1]})
    assert stored() == {(W, "/a"): (2, 0), (W, "/b"): (1, 0), (W, "(other routes)"): (2, 1)}


def test_a_nul_in_a_route_is_stored_as_text():
    traffic_add(counts={(W, "/a\x00b"): [1, 1]})
    assert stored() == {(W, "/a\ufffdb"): (1, 1)}


def access_log(n: int, seed: int = 3) -> list[str]:
    """Lines of many shapes: common ones, 5xx, JSON, garbage, odd times and bytes."""
    rng = random.Random(seed)
    start = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    out = []
    for i in range(n):
        t = start + timedelta(seconds=i * 7)
        path = rng.choice(["/", f"/api/users/{i}/profile", "/a%20b/7?q=1", "/static/x.js"])
        status = rng.choice([200, 200, 304, 404, 499, 500, 502, 504])
        line = f'10.0.0.{i % 9} - - [{t:%d/%b/%Y:%H:%M:%S} +0000] "GET {path} HTTP/1.1" {status} 9'
        kind = rng.random()
        if kind < 0.05:
            line = f'{{"time_iso8601": "{t:%Y-%m-%dT%H:%M:%S}+00:00", "status": {status}}}'
        elif kind < 0.08:
            line = line.replace("14/Mar", "30/Feb")  # the fast path's shape, no date
        elif kind < 0.1:
            line = "garbage \xff line"
        elif kind < 0.12:
            line = line.replace("+0000", "-0130")
        out.append(line + "\n")
    return out


def expected_windows(lines: list[str]) -> dict[tuple[datetime, str], tuple[int, int]]:
    counts: Counter = Counter()
    for line in lines:
        entry = nginx.parse_access(line.rstrip("\n"))
        if entry is None:
            continue
        start = window_start(entry.time)
        for route in (ALL_ROUTES, route_of(entry.path) or "(no path)"):
            counts[(start, route, "requests")] += 1
            counts[(start, route, "errors")] += entry.status >= 500
    return {
        (start, route): (counts[(start, route, "requests")], counts[(start, route, "errors")])
        for start, route, what in counts
        if what == "requests"
    }


@pytest.mark.parametrize("chunk", [tail.CHUNK_BYTES, 333])
def test_an_access_log_is_counted_as_parsing_each_line_would(logs, source, monkeypatch, chunk):
    # Small reads: many blocks, some with a line the fast path cannot place (30 Feb).
    monkeypatch.setattr(tail, "CHUNK_BYTES", chunk)
    lines = access_log(2000)
    log = logs("access.log").write("".join(lines))
    src = source("nginx_access", log.path, read_existing=True)
    report = scan_one(src)
    assert stored() == expected_windows(lines)
    parsed = [nginx.parse_access(line.rstrip("\n")) for line in lines]
    errors = [e for e in parsed if e is not None and e.status >= 500]
    assert report.requests == sum(e is not None for e in parsed)
    assert report.server_errors == len(errors)
    assert list(ErrorRequest.objects.order_by("pk").values_list("line", flat=True)) == [
        e.line for e in errors
    ]
    cp = LogCheckpoint.objects.get(source=src)
    assert (cp.lines_read, cp.unparsed_lines, cp.offset) == (
        len(lines),
        parsed.count(None),
        log.size,
    )


def test_spikes_of_many_windows_at_once_each_against_its_own_baseline(settings):
    settings.SRE_BASELINE_WINDOWS = 2
    settings.SRE_SPIKE_MIN = 5
    step = timedelta(minutes=5)
    starts = [W + i * step for i in range(7)]
    for start, errors in zip(starts, [1, 1, 20, 2, 40, 0, 9], strict=True):
        traffic_add(counts={(start, ""): [errors, errors]})
    found = {
        s.window_start: (s.server_errors, s.baseline) for s in spikes_detect(windows=set(starts))
    }
    # 20 against (1 + 1) / 2; 40 against (20 + 2) / 2; 9 not above 3 × (40 + 0) / 2.
    assert found == {starts[2]: (20, 1.0), starts[4]: (40, 11.0)}
    one_by_one = [s for start in starts for s in spikes_detect(windows={start})]
    assert {s.window_start: (s.server_errors, s.baseline) for s in one_by_one} == found
