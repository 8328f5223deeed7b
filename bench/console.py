"""The console at a million rows: each list page, filter and search, and the CSV export.

Fills a PostgreSQL database with bench/console_load.py (1,000,000 tool calls and audit events by
default, with runs, model calls, proposals, tickets, mail and refunds in proportion), then asks
every list page through Django's test client as a superuser, each page once to warm up and then
`--repeat` times, and prints p50 and p95 per page (the whole request: queries and rendering).
Then it streams the CSV export of every tool call and of every audit event and prints rows/s and
how far the process's resident memory grew while it streamed.

Usage:  .venv/bin/python bench/console.py [--postgres postgres://postgres@127.0.0.1:5432]
        [--tool-calls 1000000] [--repeat 15] [--database NAME [--keep]]
Without --database it creates, fills and drops a database of its own; with it, it fills the
named database only if it is empty, and keeps it (so a second run skips the load).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--tool-calls", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--database", default="", help="reuse (and keep) this database")
    parser.add_argument("--keep", action="store_true", help="keep the database it made")
    parser.add_argument("--only", default="", help="pages whose name contains this")
    args = parser.parse_args()

    name = args.database or f"cs_bench_console_{os.getpid()}"
    os.environ["DATABASE_URL"] = f"{args.postgres.rstrip('/')}/{name}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["LOG_LEVEL"] = "WARNING"

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment, teardown_test_environment

    from agents.models import AuditEvent, ToolCall
    from bench.console_load import load
    from support.models import Ticket

    settings.ALLOWED_HOSTS = ["*"]
    settings.DEBUG = False
    with connection._nodb_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        exists = cursor.fetchone() is not None
        if not exists:
            cursor.execute(f'CREATE DATABASE "{name}"')
    t0 = time.perf_counter()
    call_command("migrate", verbosity=0)
    migrated = time.perf_counter() - t0
    if not ToolCall.objects.exists():
        load(tool_calls=args.tool_calls, say=lambda line: print(line, flush=True))
    print(
        f"migrate: {migrated:.1f} s; {ToolCall.objects.count():,} tool calls, "
        f"{AuditEvent.objects.count():,} audit events",
        flush=True,
    )

    root, _ = User.objects.get_or_create(
        username="bench-root", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(root)

    # Search terms taken from the rows: one customer's address (rare), a surname (common).
    email = Ticket.objects.order_by("-pk").values_list("customer_email", flat=True).first()
    surname = email.split("@")[0].split(".")[1].rstrip("0123456789")
    decider = User.objects.get(username="amara.okafor").pk
    model = "claude-haiku-4-5"
    last = ToolCall.objects.order_by("-pk").values_list("pk", "tool_use_id", "run_id").first()
    subject = Ticket.objects.order_by("pk").values_list("pk", flat=True)[1000]

    pages = [
        ("tool calls", "/admin/agents/toolcall/"),
        ("tool calls · status rejected", "/admin/agents/toolcall/?status__exact=rejected"),
        ("tool calls · tool process_refund", "/admin/agents/toolcall/?tool=process_refund"),
        ("tool calls · agent sre", "/admin/agents/toolcall/?toolset=sre"),
        ("tool calls · decided by", f"/admin/agents/toolcall/?decided_by__id__exact={decider}"),
        ("tool calls · past 7 days", "/admin/agents/toolcall/?created_at__gte=PAST7"),
        ("tool calls · search an address", f"/admin/agents/toolcall/?q={email}"),
        ("tool calls · search a surname", f"/admin/agents/toolcall/?q={surname}"),
        ("tool calls · search a tool_use id", f"/admin/agents/toolcall/?q={last[1]}"),
        ("tool calls · search a reviewer", "/admin/agents/toolcall/?q=okafor"),
        ("audit events", "/admin/agents/auditevent/"),
        ("audit events · kind tool.approved", "/admin/agents/auditevent/?kind=tool.approved"),
        ("audit events · actor", f"/admin/agents/auditevent/?actor__id__exact={decider}"),
        (
            "audit events · tool reply_to_customer",
            "/admin/agents/auditevent/?tool=reply_to_customer",
        ),
        ("audit events · search an address", f"/admin/agents/auditevent/?q={email}"),
        ("audit events · search words", "/admin/agents/auditevent/?q=charge+disputed"),
        ("model calls", "/admin/agents/modelcall/"),
        ("model calls · backend replay", "/admin/agents/modelcall/?backend=replay"),
        ("model calls · model", f"/admin/agents/modelcall/?model={model}"),
        ("model calls · stop refusal", "/admin/agents/modelcall/?stop_reason=refusal"),
        ("model calls · search a request id", "/admin/agents/modelcall/?q=req_011CAB"),
        ("runs", "/admin/agents/agentrun/"),
        ("runs · status escalated", "/admin/agents/agentrun/?status__exact=escalated"),
        ("runs · agent sre", "/admin/agents/agentrun/?toolset=sre"),
        ("runs · backend replay", "/admin/agents/agentrun/?backend=replay"),
        ("runs · search a subject", f"/admin/agents/agentrun/?q={subject}"),
        ("runs · search a reason", "/admin/agents/agentrun/?q=legal+action"),
        ("inbox", "/admin/agents/toolcall/approvals/"),
        ("inbox · refunds", "/admin/agents/toolcall/approvals/?kind=process_refund"),
        ("tickets", "/admin/support/ticket/"),
        ("tickets · status escalated", "/admin/support/ticket/?status__exact=escalated"),
        ("tickets · search an address", f"/admin/support/ticket/?q={email}"),
        ("tickets · search a subject", "/admin/support/ticket/?q=damaged"),
        ("refunds", "/admin/support/refund/"),
        ("refunds · rejected", "/admin/support/refund/?tool_call__status__exact=rejected"),
        ("refunds · search an address", f"/admin/support/refund/?q={email}"),
        ("incidents", "/admin/sre/incident/"),
        ("patches", "/admin/sre/patchproposal/"),
    ]
    from datetime import timedelta
    from urllib.parse import quote

    from django.utils import timezone

    week = quote((timezone.now() - timedelta(days=7)).replace(microsecond=0).isoformat())
    pages = [(label, url.replace("PAST7", week)) for label, url in pages]
    pages = [p for p in pages if args.only in p[0]]

    print("\n| page | p50 | p95 | rows |\n| --- | --- | --- | --- |", flush=True)
    worst = 0.0
    for label, url in pages:
        setup_test_environment()  # the warm-up request keeps its context, for the row count
        response = client.get(url)
        teardown_test_environment()
        if response.status_code != 200:
            print(f"| {label} | HTTP {response.status_code} | | |", flush=True)
            continue
        cl = response.context.get("cl") if response.context else None
        count = cl.result_count if cl is not None else ""
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p95 = times[max(0, int(round(len(times) * 0.95)) - 1)]
        worst = max(worst, p95)
        shown = f"{count:,}" if isinstance(count, int) else count
        print(
            f"| {label} | {statistics.median(times):.0f} ms | {p95:.0f} ms | {shown} |", flush=True
        )
    print(f"\nslowest p95: {worst:.0f} ms", flush=True)

    print(
        "\n| export | rows | seconds | rows/s | memory growth |\n| --- | --- | --- | --- | --- |",
        flush=True,
    )
    for label, url, model in (
        ("tool calls, CSV", "/admin/agents/toolcall/export/csv/", ToolCall),
        ("audit events, CSV", "/admin/agents/auditevent/export/csv/", AuditEvent),
    ):
        if args.only and args.only not in label:
            continue
        rows = model.objects.count()
        start_rss = peak = rss_mb()
        started = time.perf_counter()
        response = client.get(url)
        size = 0
        for number, chunk in enumerate(response.streaming_content):
            size += len(chunk)
            if number % 1000 == 0:
                peak = max(peak, rss_mb())
        seconds = time.perf_counter() - started
        peak = max(peak, rss_mb())
        print(
            f"| {label} | {rows:,} ({size / 1e6:.0f} MB) | {seconds:.1f} | {rows / seconds:,.0f} "
            f"| {peak - start_rss:+.0f} MB (of {start_rss:.0f} MB) |",
            flush=True,
        )

    connection.close()
    if not args.database and not args.keep:
        with connection._nodb_cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
