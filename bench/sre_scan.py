"""How fast a scan reads logs: MB/s and lines/s, parsing alone and parsing with storing.

Generates an NGINX access log of --mb megabytes (combined format, a day of traffic on a few
dozen routes, 0.5% 5xx and one spike of 500s) and a Django error log with a traceback for each
500, then:
1. parses both files without the database (FileScan only: tailing, lines, parsers, tracebacks);
2. scans them with `sre_scan` from the start into a fresh database (counts per window and
   route, 5xx lines, occurrences, incidents, the spike), as the scheduled task does.

Usage:  .venv/bin/python bench/sre_scan.py [--mb 200]
        DATABASE_URL=postgres://postgres@127.0.0.1:5432/cs_bench_sre .venv/bin/python bench/sre_scan.py
Without DATABASE_URL it uses a fresh SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
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


def generate(directory: Path, megabytes: int) -> tuple[Path, Path, int]:
    rng = random.Random(7)
    access, django_log = directory / "access.log", directory / "error.log"
    target = megabytes * 1024 * 1024
    start = datetime(2025, 3, 14, tzinfo=UTC)
    spike_from, spike_to = (
        start + timedelta(hours=9, minutes=26),
        start + timedelta(hours=9, minutes=30),
    )
    size = lines = 0
    with open(access, "w") as out, open(django_log, "w") as errors:
        chunk = []
        while size < target:
            t = start + timedelta(seconds=lines * 86400 / (target / 190))
            route = rng.choice(ROUTES).format(
                n=rng.randint(1, 5000), h=f"{rng.getrandbits(32):08x}"
            )
            in_spike = spike_from <= t < spike_to and route.startswith("/api/users")
            status = (
                500 if in_spike or rng.random() < 0.005 else rng.choice((200, 200, 200, 304, 404))
            )
            line = (
                f"203.0.113.{rng.randint(1, 254)} - - [{t:%d/%b/%Y:%H:%M:%S} +0000] "
                f'"GET {route} HTTP/1.1" {status} {rng.randint(100, 90000)} '
                f'"https://shop.example.com/" "{UA}"\n'
            )
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp())
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp}/bench.sqlite3")
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

    is_pg = connection.vendor == "postgresql"
    if is_pg:
        name = settings.DATABASES["default"]["NAME"]
        with connection._nodb_cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{name}"')
    call_command("migrate", verbosity=0)
    settings.SRE_SCAN_MAX_BYTES = 1 << 40
    settings.SRE_LOG_SOURCES = ""

    t0 = time.perf_counter()
    access, django_log, access_lines = generate(tmp, args.mb)
    print(
        f"generated in {time.perf_counter() - t0:.1f} s: {access.stat().st_size / 1e6:.1f} MB access "
        f"({access_lines} lines), {django_log.stat().st_size / 1e6:.1f} MB Django error log"
    )

    results = []
    for kind, path in (("nginx_access", access), ("django", django_log)):
        t0 = time.perf_counter()
        scan = FileScan(path=str(path), kind=kind, checkpoint=None, from_start=True,
                        max_bytes=1 << 40, max_line=65536, settle_seconds=0, now=time.time(),
                        last_time=None)  # fmt: skip
        n_lines = 0
        for batch in scan.batches():
            n_lines += batch.lines
        elapsed = time.perf_counter() - t0
        mb = path.stat().st_size / 1e6
        results.append(("parse only", kind, mb, n_lines, elapsed))

    db = "PostgreSQL" if is_pg else "SQLite (WAL, file)"
    for kind, path in (("django", django_log), ("nginx_access", access)):
        source = LogSource.objects.create(kind=kind, path=str(path), read_existing=True)
        t0 = time.perf_counter()
        report = sre_scan(source_ids=[source.pk])
        elapsed = time.perf_counter() - t0
        (sr,) = report.sources
        results.append((f"scan + store ({db})", kind, sr.bytes / 1e6, sr.lines, elapsed))

    print(
        "\n| step | log | MB | lines | seconds | MB/s | lines/s |\n| --- | --- | --- | --- | --- | --- | --- |"
    )
    for step, kind, mb, n, s in results:
        print(f"| {step} | {kind} | {mb:.1f} | {n} | {s:.2f} | {mb / s:.1f} | {n / s:,.0f} |")
    print(
        f"\nstored: {Incident.objects.count()} incidents, {Occurrence.objects.count()} occurrences, "
        f"{ErrorRequest.objects.count()} 5xx lines, {TrafficWindow.objects.count()} window rows"
    )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
