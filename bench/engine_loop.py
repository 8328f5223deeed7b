"""How much the engine itself costs per run, apart from the model.

Each run: the model asks for a read-only lookup, then for an approval-gated shipment, a person
approves it, and the model ends its turn: three model calls, two tool calls, one decision. The
model is the local wire-level fake (tests/fakes/anthropic.py), answering at once, so the time
measured is the SDK, the HTTP round trip on loopback, and the engine's database work.

Usage:  .venv/bin/python bench/engine_loop.py [--runs 200]
        DATABASE_URL=postgres://postgres@127.0.0.1:5432/cs_bench .venv/bin/python bench/engine_loop.py
Without DATABASE_URL it uses a fresh SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp()
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp}/bench.sqlite3")
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["LOG_LEVEL"] = "WARNING"

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, reset_queries

    from agents import llm
    from agents.models import ToolCall
    from agents.services import proposal_approve, run_start
    from tests.factories.users import user_create
    from tests.fakes.anthropic import FakeAnthropic
    from tests.toolbox.models import Widget
    from tests.worker import Worker

    is_pg = connection.vendor == "postgresql"
    if is_pg:
        name = settings.DATABASES["default"]["NAME"]
        from django.db.backends.postgresql.creation import DatabaseCreation

        # Start from an empty database of the configured name.
        with connection._nodb_cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{name}"')
        del DatabaseCreation
    call_command("migrate", verbosity=0)
    fake = FakeAnthropic().start()
    settings.ANTHROPIC_BASE_URL = fake.url
    settings.DEBUG = True  # count queries
    llm._client.cache_clear()
    Widget.objects.create(name="gear", stock=10**9)
    approver = user_create(perms=["toolbox.approve_shipment"])
    worker = Worker()

    timings, queries = [], []
    for _ in range(args.runs):
        fake.push_tool_use(("lookup_widget", {"name": "gear"}))
        [ship_id] = fake.push_tool_use(
            ("ship_widget", {"name": "gear", "quantity": 1, "address": "1 Main St"})
        )
        fake.push_text("Done.")
        reset_queries()
        started = time.perf_counter()
        run = run_start(toolset="toolbox", user_message="Ship one gear to 1 Main St.")
        worker.drain()
        proposal_approve(tool_call_id=ToolCall.objects.get(tool_use_id=ship_id).pk, user=approver)
        worker.drain()
        timings.append(time.perf_counter() - started)
        queries.append(len(connection.queries))
        run.refresh_from_db()
        assert run.status == "completed", run.status_reason
    fake.stop()

    timings.sort()
    ms = [t * 1000 for t in timings]
    database = f"PostgreSQL {connection.pg_version // 10000}" if is_pg else "SQLite (WAL, file)"
    print("| database | runs | median per run | p95 | max | queries per run | runs/s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| {database} | {args.runs} | {statistics.median(ms):.1f} ms "
        f"| {ms[int(len(ms) * 0.95) - 1]:.1f} ms | {ms[-1]:.1f} ms "
        f"| {statistics.median(queries):.0f} | {args.runs / sum(timings):.1f} |"
    )
    if is_pg:
        with connection._nodb_cursor() as cursor:
            connection.close()
            cursor.execute(
                f'DROP DATABASE IF EXISTS "{settings.DATABASES["default"]["NAME"]}" WITH (FORCE)'
            )


if __name__ == "__main__":
    main()
