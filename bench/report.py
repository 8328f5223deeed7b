"""Run every benchmark once and write docs/BENCHMARKS.md: the machine, the date, each table.

Each benchmark runs in its own process; what it prints goes to the terminal as it comes and,
its markdown tables included, into its section of the page. bench/RESULTS.md keeps the history
with comments; docs/BENCHMARKS.md is the latest run only, rewritten each time.

Usage:  .venv/bin/python bench/report.py [--postgres postgres://postgres@127.0.0.1:5432]
        [--redis redis://127.0.0.1:6379/15] [--out docs/BENCHMARKS.md] [--note "..."]
(`make bench` runs it.)
"""

from __future__ import annotations

import argparse
import ast
import datetime
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Bench:
    title: str
    script: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    about: str = ""


def benches(postgres: str, redis: str) -> list[Bench]:
    pid = os.getpid()
    return [
        Bench(
            "engine_vs_sdk.py — the engine against a raw SDK loop, through real workers",
            "bench/engine_vs_sdk.py",
            ["--runs", "20", "--postgres", postgres, "--redis", redis],
            about=(
                "With the ORM broker on PostgreSQL a NOTIFY wakes the idle cluster as a task "
                "is queued (agents/broker.py; on SQLite it looks every `Q_POLL`, 20 ms); Redis "
                "hands a task over as it is queued. The steps after the first continue in the "
                "same task. "
                "Added per model call = (engine − raw) / 3, from the medians; engine p95 is "
                "over the same runs. The cache column is the share of input tokens read from "
                "the prompt cache: the engine puts a breakpoint on the newest turn, the raw "
                "loop on the system prompt and tools only."
            ),
        ),
        Bench(
            "throughput.py — W workers on a batch of runs, and worker memory over 1,000 runs",
            "bench/throughput.py",
            ["--runs", "40", "--workers", "2,4", "--postgres", postgres, "--redis", redis],
        ),
        Bench(
            "engine_loop.py — the engine's cost per run, apart from the model (SQLite)",
            "bench/engine_loop.py",
            ["--runs", "50"],
            about=(
                "Its fake answers with Nagle's algorithm on, as the tests' fake does: up to about "
                "40 ms of each of the three model calls is the loopback's delayed ACK, neither "
                "the engine nor the SDK (engine_vs_sdk.py turns it off; its raw loop shows what "
                "a model call costs without it). Kept so that the figures compare with "
                "bench/RESULTS.md."
            ),
        ),
        Bench(
            "engine_loop.py — the same on PostgreSQL",
            "bench/engine_loop.py",
            ["--runs", "50"],
            env={"DATABASE_URL": f"{postgres.rstrip('/')}/cs_bench_loop_{pid}"},
        ),
        Bench(
            "console.py — the console at 1,000,000 tool calls and audit events (PostgreSQL)",
            "bench/console.py",
            ["--postgres", postgres, "--repeat", "15"],
            about=(
                "The database is made, filled by bench/console_load.py (COPY, secondary indexes "
                "rebuilt after) and dropped by the benchmark; p50 and p95 are over 15 requests "
                "per page after one to warm up, in the benchmark's own process (queries and "
                "rendering, no network)."
            ),
        ),
        Bench("redaction.py — masking secrets out of what is sent to Claude", "bench/redaction.py"),
        Bench(
            "sre_scan.py — reading logs against awk on the same file: MB/s, memory, the "
            "scheduled task after 1 MB",
            "bench/sre_scan.py",
            ["--mb", "50,500", "--postgres", postgres],
            about=(
                "The issue's figure is the 500 MB scan + store of the access log. CPU s is this "
                "process's time: compare it when the machine is busy. A fifth of the generated "
                "requests name a static file never seen before (/static/app.<random>.js), so the "
                "route cache misses more than it would on a real site."
            ),
        ),
    ]


def docstring(script: str) -> str:
    """The first paragraph of a benchmark's docstring, on one line."""
    text = ast.get_docstring(ast.parse((ROOT / script).read_text())) or ""
    return " ".join(text.split("\n\n")[0].split())


def run(bench: Bench) -> tuple[int, str, float]:
    """Run one benchmark, echoing its output; returns its exit status, output and seconds."""
    env = {**os.environ, **bench.env}
    command = [sys.executable, bench.script, *bench.args]
    print(f"\n$ {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line.rstrip("\n"))
    return process.wait(), "\n".join(lines), time.monotonic() - started


def as_markdown(output: str) -> str:
    """Tables as printed; every other line a paragraph of its own."""
    blocks: list[str] = []
    table: list[str] = []
    for line in output.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            blocks.append("\n".join(table))
            table = []
        if line.strip():
            blocks.append(line.strip())
    if table:
        blocks.append("\n".join(table))
    return "\n\n".join(blocks)


def machine(postgres: str, redis_url: str) -> list[str]:
    cpu = ""
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        kib = int(next(line for line in info if line.startswith("MemTotal")).split()[1])
    try:
        import psycopg

        admin = postgres.replace("postgres://", "postgresql://").rstrip("/") + "/postgres"
        with psycopg.connect(admin) as conn:
            pg = "PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0].split()[0]
    except Exception as error:  # noqa: BLE001 — the page says what it could not find
        pg = f"PostgreSQL unreachable ({error.__class__.__name__})"
    try:
        import redis

        rd = "Redis " + redis.Redis.from_url(redis_url).info("server")["redis_version"]
    except Exception as error:  # noqa: BLE001
        rd = f"Redis unreachable ({error.__class__.__name__})"
    import sqlite3

    return [
        f"{os.cpu_count()} cores ({cpu or platform.processor() or platform.machine()}), "
        f"{kib / 1024 / 1024:.1f} GiB RAM, {platform.system()} {platform.release()}",
        f"Python {platform.python_version()}, {pg}, {rd}, SQLite {sqlite3.sqlite_version}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--note", default="", help="a sentence for the page, e.g. on the load")
    args = parser.parse_args()

    started = datetime.datetime.now().astimezone()
    load_before = os.getloadavg()
    sections, failed = [], []
    for bench in benches(args.postgres, args.redis):
        status, output, seconds = run(bench)
        body = as_markdown(output)
        if status:
            failed.append(bench.script)
            body += f"\n\n**Failed** (exit status {status}); the output above is all it printed."
        about = " ".join(part for part in (docstring(bench.script), bench.about) if part)
        command = " ".join([bench.script, *bench.args])
        prefix = " ".join(f"{k}={v}" for k, v in bench.env.items())
        sections.append(
            f"## {bench.title}\n\n{about}\n\n"
            f"`{(prefix + ' ' if prefix else '') + command}` ({seconds:.0f} s)\n\n{body}\n"
        )
    load_after = os.getloadavg()

    cores = os.cpu_count() or 1
    busiest = max(load_before[0], load_after[0], load_before[1], load_after[1])
    load = (
        f"Load average (1 min) {load_before[0]:.2f} before the run and {load_after[0]:.2f} after, "
        f"on {cores} cores."
    )
    if busiest > cores / 2:
        load += (
            " The load passed half the cores (the benchmarks' own workers, fakes and databases "
            "count, and so would any other work): the figures are noisier than on an idle "
            "machine; compare ratios measured in the same run rather than absolute times."
        )
    head = [
        "# Benchmarks",
        "",
        "The latest `make bench` (bench/report.py), rewritten by each run; bench/RESULTS.md "
        "keeps the history with comments. Numbers are wall-clock, from one run each.",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M %Z}",
        *(f"- {line}" for line in machine(args.postgres, args.redis)),
        f"- {load}",
    ]
    if args.note:
        head.append(f"- {args.note}")
    page = "\n".join(head) + "\n\n" + "\n".join(sections)
    Path(args.out).write_text(page)
    print(f"\nwrote {args.out}")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
