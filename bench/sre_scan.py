"""How fast a scan reads logs: MB/s against awk on the same file, memory, and the 1 MB increment.

Generates, for each size given (--mb, megabytes of NGINX access log), an access log (combined
format, a day of traffic on a few dozen routes, 0.5% 5xx and one spike of 500s) and a Django
error log with a traceback for each 500, then, each size in a fresh process and database:
1. awk counting the access log's statuses (`awk '{c[$9]++}'`): what reading the file costs;
2. parses both files without the database (FileScan only: tailing, lines, parsers, tracebacks);
3. scans them with `sre_scan` from the start (counts per window and route, 5xx lines,
   occurrences, incidents, the spike), with the process's peak RSS during each;
4. appends 1 MB to the access log and times `sre_scan_task()` in the same process, as the
   scheduled django-q2 task runs it (no process start-up); also with nothing appended.

Usage:  .venv/bin/python bench/sre_scan.py [--mb 10,50] [--postgres postgres://postgres@127.0.0.1:5432]
        .venv/bin/python bench/sre_scan.py --mb 50,500      # the issue's figure
Without --postgres only SQLite (a fresh file in a temporary directory); with it both.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROUTES = [
    "/",
    "/api/products",
    "/api/products/{n}",
    "/api/cart",
    "/api/users/{n}/profile",
    "/api/users/{n}/orders",
    "/static/app.{h}.js",
    "/static/app.{h}.css",
    "/search?q=widget+{n}",
    "/healthz",
]
UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36"
)
TRACEBACK = """{ts},{ms:03d} ERROR django.request Internal Server Error: {path}
Traceback (most recent call last):
  File "/srv/shop/.venv/lib/python3.11/site-packages/django/core/handlers/exception.py", line 55, in inner
    response = get_response(request)
               ^^^^^^^^^^^^^^^^^^^^^
  File "/srv/shop/.venv/lib/python3.11/site-packages/django/core/handlers/base.py", line 197, in _get_response
    response = wrapped_callback(request, *callback_args, **callback_kwargs)
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/shop/shop/api.py", line 8, in profile
    profile = reply["user_profile"]
              ~~~~~^^^^^^^^^^^^^^^^
KeyError: 'user_profile'
"""
DAY = datetime(2025, 3, 14, tzinfo=UTC)
INCREMENT = 1 << 20
INCREMENTS = 5


def access_line(rng: random.Random, t: datetime, *, spike: bool) -> tuple[str, int, str]:
    route = rng.choice(ROUTES).format(n=rng.randint(1, 5000), h=f"{rng.getrandbits(32):08x}")
    in_spike = spike and route.startswith("/api/users")
    status = 500 if in_spike or rng.random() < 0.005 else rng.choice((200, 200, 200, 304, 404))
    line = (
        f"203.0.113.{rng.randint(1, 254)} - - [{t:%d/%b/%Y:%H:%M:%S} +0000] "
        f'"GET {route} HTTP/1.1" {status} {rng.randint(100, 90000)} '
        f'"https://shop.example.com/" "{UA}"\n'
    )
    return line, status, route


def generate(directory: Path, megabytes: int) -> tuple[Path, Path, int]:
    rng = random.Random(7)
    access, django_log = directory / "access.log", directory / "error.log"
    target = megabytes * 1024 * 1024
    spike_from, spike_to = (
        DAY + timedelta(hours=9, minutes=26),
        DAY + timedelta(hours=9, minutes=30),
    )
    size = lines = 0
    with open(access, "w") as out, open(django_log, "w") as errors:
        chunk = []
        while size < target:
            t = DAY + timedelta(seconds=lines * 86400 / (target / 190))
            line, status, route = access_line(rng, t, spike=spike_from <= t < spike_to)
            chunk.append(line)
            size += len(line)
            lines += 1
            if status == 500:
                errors.write(
                    TRACEBACK.format(
                        ts=f"{t:%Y-%m-%d %H:%M:%S}",
                        ms=t.microsecond // 1000,
                        path=route.split("?")[0],
                    )
                )
            if len(chunk) >= 10000:
                out.write("".join(chunk))
                chunk = []
        out.write("".join(chunk))
    return access, django_log, lines


def append_increment(path: Path, rng: random.Random, start: datetime) -> datetime:
    """Append about INCREMENT bytes of traffic after `start` (a second's worth per 40 lines)."""
    chunk, size, n = [], 0, 0
    while size < INCREMENT:
        line, _, _ = access_line(rng, start + timedelta(seconds=n / 40), spike=False)
        chunk.append(line)
        size += len(line)
        n += 1
    with open(path, "a") as out:
        out.write("".join(chunk))
    return start + timedelta(seconds=n / 40 + 1)


def awk_rate(path: Path) -> float:
    """MB/s of awk counting the statuses of the access log (best of three, file in the cache)."""
    awk = shutil.which("mawk") or shutil.which("awk")
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(
            [awk, "{c[$9]++} END {for (s in c) print s, c[s]}", str(path)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        best = min(best, time.perf_counter() - t0)
    return path.stat().st_size / 1e6 / best


def memory() -> tuple[float, float]:
    """This process's RSS and peak RSS since the last `peak_reset()`, MiB (/proc/self/status)."""
    found = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                found[line[:5]] = int(line.split()[1]) / 1024
    return found["VmRSS"], found["VmHWM"]


def peak_reset() -> None:
    """Start the peak RSS again from the current RSS (Linux: 5 to clear_refs)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def child(access: Path, django_log: Path) -> dict:
    """One size in this fresh process: parse only, scan + store, the increments."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["LOG_LEVEL"] = "WARNING"

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from sre.logs.scan import FileScan
    from sre.models import ErrorRequest, Incident, LogSource, Occurrence, TrafficWindow
    from sre.services import sre_scan
    from sre.tasks import sre_scan_task

    is_pg = connection.vendor == "postgresql"
    if is_pg:
        name = settings.DATABASES["default"]["NAME"]
        with connection._nodb_cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{name}"')
    call_command("migrate", verbosity=0)
    settings.SRE_SCAN_MAX_BYTES = 1 << 40
    settings.SRE_LOG_SOURCES = ""
    # The generated day is in the past: keep what the scans store (the prune still runs).
    settings.SRE_RETENTION_DAYS = 100_000
    out: dict = {"database": "PostgreSQL" if is_pg else "SQLite"}

    for kind, path in (("nginx_access", access), ("django", django_log)):
        t0, c0 = time.perf_counter(), time.process_time()
        scan = FileScan(path=str(path), kind=kind, checkpoint=None, from_start=True,
                        max_bytes=1 << 40, max_line=65536, settle_seconds=0, now=time.time(),
                        last_time=None)  # fmt: skip
        n_lines = sum(batch.lines for batch in scan.batches())
        out[f"parse {kind}"] = (
            path.stat().st_size / 1e6,
            n_lines,
            time.perf_counter() - t0,
            time.process_time() - c0,
        )

    for kind, path in (("django", django_log), ("nginx_access", access)):
        source = LogSource.objects.create(kind=kind, path=str(path), read_existing=True)
        peak_reset()
        before, _ = memory()
        t0, c0 = time.perf_counter(), time.process_time()
        report = sre_scan(source_ids=[source.pk])
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        (sr,) = report.sources
        out[f"store {kind}"] = (sr.bytes / 1e6, sr.lines, elapsed, cpu)
        out[f"memory {kind}"] = (before, memory()[1])
    out["stored"] = (
        f"{Incident.objects.count()} incidents, {Occurrence.objects.count()} occurrences, "
        f"{ErrorRequest.objects.count()} 5xx lines, {TrafficWindow.objects.count()} window rows"
    )

    # The scheduled task, in this process: every source, spikes, prune.
    rng = random.Random(11)
    start = DAY + timedelta(days=1)
    idle, increments = [], []
    for _ in range(INCREMENTS):
        t0 = time.perf_counter()
        sre_scan_task()
        idle.append(time.perf_counter() - t0)
        start = append_increment(access, rng, start)
        t0 = time.perf_counter()
        summary = sre_scan_task()
        increments.append(time.perf_counter() - t0)
    assert "0 lines" not in summary, summary
    out["task idle"] = statistics.median(idle)
    out["task 1 MB"] = statistics.median(increments)
    if is_pg:
        connection.close()
        with connection._nodb_cursor() as cursor:
            cursor.execute(
                f'DROP DATABASE IF EXISTS "{settings.DATABASES["default"]["NAME"]}" WITH (FORCE)'
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", default="10,50", help="sizes of access log, comma-separated")
    parser.add_argument("--postgres", default="", help="also on this server, e.g. postgres://...")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), Path(args.child[1]))))
        return

    sizes = [int(mb) for mb in args.mb.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="sre-bench-"))
    databases = [("SQLite (WAL, file)", f"sqlite:///{tmp}/bench.sqlite3")]
    if args.postgres:
        url = f"{args.postgres.rstrip('/')}/cs_bench_sre_{os.getpid()}"
        databases.append(("PostgreSQL", url))
    rows, awk_rows, stored = [], [], []
    try:
        for mb in sizes:
            t0 = time.perf_counter()
            access, django_log, lines = generate(tmp, mb)
            print(
                f"generated in {time.perf_counter() - t0:.1f} s: "
                f"{access.stat().st_size / 1e6:.1f} MB access ({lines} lines), "
                f"{django_log.stat().st_size / 1e6:.1f} MB Django error log",
                file=sys.stderr,
            )
            size = access.stat().st_size
            awk_rows.append((size / 1e6, lines, awk_rate(access)))
            for label, url in databases:
                os.truncate(access, size)  # the last run appended to it
                for stale in tmp.glob("bench.sqlite3*"):
                    stale.unlink()
                env = {**os.environ, "DATABASE_URL": url}
                result = subprocess.run(
                    [sys.executable, __file__, "--child", str(access), str(django_log)],
                    cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, text=True,
                )  # fmt: skip
                got = json.loads(result.stdout.strip().splitlines()[-1])
                rows.append((label, mb, got))
                stored.append(f"{label}, {mb} MB: {got['stored']}")
                print(f"{label}, {mb} MB: done", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print("| access log | lines | awk counting statuses |")
    print("| --- | --- | --- |")
    for mb, lines, rate in awk_rows:
        print(f"| {mb:.1f} MB | {lines:,} | {rate:.0f} MB/s |")
    print()
    print(
        "| database | size | step | log | MB | lines | seconds | MB/s | lines/s "
        "| CPU s (this process) |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    for label, mb, got in rows:
        for step in ("parse nginx_access", "parse django", "store django", "store nginx_access"):
            size, n, s, cpu = got[step]
            what, kind = step.split(" ")
            what = "parse only" if what == "parse" else "scan + store"
            print(
                f"| {label} | {mb} MB | {what} | {kind} | {size:.1f} | {n:,} | {s:.2f} "
                f"| {size / s:.1f} | {n / s:,.0f} | {cpu:.2f} |"
            )
    print()
    print(
        "| database | size | RSS before the access log | its peak during scan + store "
        "| growth | peak during the Django log's | scheduled task, 1 MB appended "
        "| scheduled task, nothing new |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    for label, mb, got in rows:
        before, peak = got["memory nginx_access"]
        django_before, django_peak = got["memory django"]
        print(
            f"| {label} | {mb} MB | {before:.0f} MiB | {peak:.0f} MiB | +{peak - before:.0f} MiB "
            f"| +{django_peak - django_before:.0f} MiB "
            f"| {got['task 1 MB'] * 1000:.1f} ms | {got['task idle'] * 1000:.1f} ms |"
        )
    print()
    print(
        f"The scheduled task: `sre.tasks.sre_scan_task()` called in the process that did the full "
        f"scan (every source, spike detection, prune), median of {INCREMENTS}; "
        "awk: best of three with the file in the page cache. CPU s: this process's CPU time "
        "(not the PostgreSQL server's); on a busy machine, wall-clock MB/s falls and it does not."
    )
    for line in stored:
        print(f"Stored ({line}).")


if __name__ == "__main__":
    main()
