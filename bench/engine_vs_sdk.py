"""The engine against a raw anthropic-SDK tool loop, on the same local Messages API fake.

Each run is three model calls: two turns asking for the read-only `lookup_widget` (toolbox
toolset), then end_turn; no approvals. The engine's runs go through real `manage.py qcluster`
workers on a fresh PostgreSQL database (created, migrated and dropped here), once with the ORM
broker and once with Redis; the run is started in this benchmark's driver process with
`run_start`, as the console does, and timed from before `run_start` to the run's `finished_at`.
The raw baseline makes the same three calls with the SDK in a loop in the driver process
(`messages.create`, the reply and the tool results appended, each lookup answered by the query
the engine's tool makes, so the tool's own work is on both sides), with the engine's own system
prompt and tool definitions. Engine and raw runs alternate, so both see the same machine. The
fake answers at once, then again after a 200 ms sleep per call (a fast model's reply is
seconds; 200 ms keeps the benchmark short).

Usage:  .venv/bin/python bench/engine_vs_sdk.py [--runs 20] [--latencies 0,200]
        [--brokers orm,redis] [--postgres postgres://postgres@127.0.0.1:5432]
        [--redis redis://127.0.0.1:6379/15]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

USER_MESSAGE = "How many gears and sprockets are in stock?"
WIDGETS = {"gear": 1000, "sprocket": 500}
CALLS_PER_RUN = 3


def reply_for(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The model's answer, from the conversation so far: lookup, lookup, end_turn."""
    turn = sum(1 for m in body["messages"] if m["role"] == "assistant")
    if turn < 2:
        name = ("gear", "sprocket")[turn]
        block = {
            "type": "tool_use",
            "id": f"toolu_bench_{uuid.uuid4().hex[:16]}",
            "name": "lookup_widget",
            "input": {"name": name},
        }
        return [{"type": "text", "text": f"Looking up {name}."}, block], "tool_use"
    return [{"type": "text", "text": "1000 gears and 500 sprockets are in stock."}], "end_turn"


def responder(fake):
    def answer(body: dict[str, Any]):
        content, stop_reason = reply_for(body)
        return fake._message(body, content, stop_reason, 40)

    return answer


# --- the driver: one process per cell, Django set up for the cell's broker -------------------


def raw_run(
    client, *, model: str, max_tokens: int, system: str, tools: list[dict]
) -> tuple[int, float]:
    """The same run with the SDK alone: the number of model calls, the share read from cache.

    Cached as a plain SDK loop usually is: a breakpoint on the system prompt and the tools.
    """
    from tests.toolbox.models import Widget

    tools = [dict(tool) for tool in tools]
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    system_blocks = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": USER_MESSAGE}]}
    ]
    calls = 0
    usage = {"plain": 0, "read": 0, "write": 0}
    while True:
        reply = client.messages.create(
            model=model,
            max_tokens=max_tokens,
            system=system_blocks,
            tools=tools,
            messages=messages,
        )
        calls += 1
        usage["plain"] += reply.usage.input_tokens or 0
        usage["read"] += reply.usage.cache_read_input_tokens or 0
        usage["write"] += reply.usage.cache_creation_input_tokens or 0
        messages.append({"role": "assistant", "content": [b.to_dict() for b in reply.content]})
        if reply.stop_reason != "tool_use":
            return calls, usage["read"] / max(1, sum(usage.values()))
        results = []
        for block in reply.content:
            if block.type == "tool_use":
                widget = Widget.objects.filter(name=block.input["name"]).first()
                out = {"name": widget.name, "stock": widget.stock}
                results.append(
                    {"type": "tool_result", "tool_use_id": block.id, "content": json.dumps(out)}
                )
        messages.append({"role": "user", "content": results})


def drive(runs: int, warmup: int) -> None:
    import django

    django.setup()
    import anthropic
    from django.conf import settings

    from agents.models import AgentRun
    from agents.registry import toolset_get
    from agents.services import run_start
    from tests.toolbox.models import Widget

    for name, stock in WIDGETS.items():
        Widget.objects.get_or_create(name=name, defaults={"stock": stock})
    client = anthropic.Anthropic(
        api_key=settings.ANTHROPIC_API_KEY,
        base_url=settings.ANTHROPIC_BASE_URL,
        timeout=settings.ANTHROPIC_TIMEOUT,
        max_retries=settings.ANTHROPIC_MAX_RETRIES,
    )
    tools = toolset_get("toolbox").specs()

    def engine_run(timeout: float) -> tuple[float, AgentRun]:
        started = time.time()
        run = run_start(toolset="toolbox", user_message=USER_MESSAGE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = AgentRun.objects.filter(pk=run.pk, finished_at__isnull=False).first()
            if row is not None:
                assert row.status == "completed", (row.status, row.status_reason)
                assert row.turns == CALLS_PER_RUN, row.turns
                return row.finished_at.timestamp() - started, row
            # The time is the run's own finished_at: looking sooner would only load the machine
            # the engine runs on (two cores here) with this benchmark's queries.
            time.sleep(0.05)
        raise SystemExit(f"run {run.pk} did not finish within {timeout:.0f} s")

    # The first run waits for the cluster to come up.
    _, first = engine_run(timeout=90)
    raw_args = dict(
        model=first.model, max_tokens=first.max_tokens, system=first.system, tools=tools
    )
    engine, raw, engine_cache, raw_cache = [], [], [], []
    pause, spread = random.Random(10), settings.Q_CLUSTER.get("poll", 0.5)
    for index in range(warmup + runs):
        # Runs start at random moments, as work arrives, not in step with the broker's poll.
        time.sleep(pause.uniform(0, spread))
        seconds, row = engine_run(timeout=60)
        t0 = time.perf_counter()
        calls, raw_share = raw_run(client, **raw_args)
        raw_seconds = time.perf_counter() - t0
        assert calls == CALLS_PER_RUN, calls
        if index >= warmup:
            engine.append(seconds)
            raw.append(raw_seconds)
            engine_cache.append(row.cache_read_fraction)
            raw_cache.append(raw_share)
    print(
        json.dumps(
            {"engine": engine, "raw": raw, "engine_cache": engine_cache, "raw_cache": raw_cache}
        )
    )


# --- the orchestrator: database, fake, workers, cells -----------------------------------------


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True
    )


def cluster_stop(process: subprocess.Popen) -> None:
    """Ask the cluster to stop (it stops its own workers); kill what is left after 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per cell")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--latencies", default="0,200", help="model latencies, ms")
    parser.add_argument("--brokers", default="orm,redis")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args.runs, args.warmup)
        return

    import psycopg

    from tests.fakes.anthropic import FakeAnthropic

    latencies = [int(ms) for ms in args.latencies.split(",")]
    brokers = args.brokers.split(",")
    name = f"cs_bench_{os.getpid()}"
    admin = args.postgres.replace("postgres://", "postgresql://").rstrip("/") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        version = conn.execute("SHOW server_version").fetchone()[0].split()[0]
    fake = FakeAnthropic().start()
    # The fake's replies go out in two writes (headers, body); with Nagle's algorithm on, the
    # second waits for the client's delayed ACK, about 40 ms a call on loopback that no real
    # API adds. Off here, for this fake only, so both sides see a prompt server.
    fake._server.RequestHandlerClass.disable_nagle_algorithm = True
    calls = len(brokers) * len(latencies) * (args.runs + args.warmup + 1) * 2 * CALLS_PER_RUN
    for _ in range(calls + 30):
        fake.push(responder(fake))
    base_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ANTHROPIC_"))},
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": f"{args.postgres.rstrip('/')}/{name}",
        "TEST_ANTHROPIC_BASE_URL": fake.url,
        "LOG_LEVEL": "WARNING",
    }
    base_env.pop("REDIS_URL", None)
    results = []
    cluster = None
    try:
        began = time.monotonic()
        manage(base_env, "migrate", "--noinput")
        print(f"migrated in {time.monotonic() - began:.0f} s", file=sys.stderr)
        for broker in brokers:
            env = {**base_env, "Q_CLUSTER_NAME": f"bench-{os.getpid()}-{broker}"}
            if broker == "redis":
                env["REDIS_URL"] = args.redis
            cluster = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            for ms in latencies:
                fake.latency = ms / 1000
                began = time.monotonic()
                out = subprocess.run(
                    [sys.executable, __file__, "--drive", f"--runs={args.runs}",
                     f"--warmup={args.warmup}"],
                    cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, text=True,
                )  # fmt: skip
                timings = json.loads(out.stdout.strip().splitlines()[-1])
                results.append(
                    (broker, ms, timings["engine"], timings["raw"], timings["engine_cache"],
                     timings["raw_cache"])
                )  # fmt: skip
                took = time.monotonic() - began
                print(
                    f"{broker} broker, {ms} ms: {args.runs} runs in {took:.0f} s", file=sys.stderr
                )
            began = time.monotonic()
            cluster_stop(cluster)
            cluster = None
            print(f"cluster stopped in {time.monotonic() - began:.0f} s", file=sys.stderr)
    finally:
        if cluster is not None:
            cluster_stop(cluster)
        fake.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    workers = os.environ.get("Q_WORKERS", "2")
    print(
        f"PostgreSQL {version}, {workers} qcluster workers, {args.runs} runs per cell of "
        f"{CALLS_PER_RUN} model calls (2 × lookup_widget, then end_turn); times are medians.\n"
    )
    print(
        "| broker | model latency | engine per run | engine p95 | raw SDK per run "
        "| added per model call | engine / raw | input read from cache, engine / raw |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for broker, ms, engine, raw, engine_cache, raw_cache in results:
        e, r = statistics.median(engine) * 1000, statistics.median(raw) * 1000
        label = "ORM (PostgreSQL)" if broker == "orm" else "Redis"
        print(
            f"| {label} | {ms} ms | {e:.1f} ms | {percentile(engine, 0.95) * 1000:.1f} ms "
            f"| {r:.1f} ms | {(e - r) / CALLS_PER_RUN:.1f} ms | {e / r:.2f}× "
            f"| {statistics.mean(engine_cache):.0%} / {statistics.mean(raw_cache):.0%} |"
        )


if __name__ == "__main__":
    main()
