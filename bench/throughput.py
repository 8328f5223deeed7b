"""Throughput with W workers, and the workers' memory over many runs, through real qcluster.

Throughput: N runs (three model calls each: two lookups, then end_turn, as in
bench/engine_vs_sdk.py) are started at once, like a morning's tickets, on one cluster with W
worker processes; the model answers after `--latency` ms. With W workers busy all the time the
batch cannot take less than N × 3 × latency / W: throughput is that ideal over the measured
time, from the first `run_start` to the last run's `finished_at`.

Memory: one cluster of 2 workers carries `--rss-runs` runs (the model answering at once),
started 50 at a time; after every 100 runs the resident set size of each of the cluster's
processes is read from /proc. Flat means the last sample is within a few MB of the first.

Usage:  .venv/bin/python bench/throughput.py [--runs 40] [--workers 2,4] [--latency 200]
        [--brokers redis,orm] [--rss-runs 1000] [--postgres postgres://postgres@127.0.0.1:5432]
        [--redis redis://127.0.0.1:6379/15]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from engine_vs_sdk import CALLS_PER_RUN, USER_MESSAGE, WIDGETS, cluster_stop, manage, responder  # noqa: E402


def cluster_start(env: dict[str, str], workers: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env={**env, "Q_WORKERS": str(workers)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def group_rss_mb(pgid: int) -> list[float]:
    """Resident set size (MB) of every process in the process group, largest first."""
    sizes = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            status = (entry / "status").read_text()
        except (OSError, ProcessLookupError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return sorted(sizes, reverse=True)


def drive(broker: str, workers: list[int], runs: int, latency_ms: int, rss_runs: int) -> None:
    """One broker's cells, in a process whose Django queues to that broker."""
    import django

    django.setup()
    from agents.models import AgentRun
    from agents.services import run_start
    from tests.toolbox.models import Widget

    env = dict(os.environ)
    for widget, stock in WIDGETS.items():
        Widget.objects.get_or_create(name=widget, defaults={"stock": stock})

    def latency(ms: float) -> None:
        Path(env["BENCH_LATENCY_FILE"]).write_text(str(ms / 1000))
        time.sleep(0.05)

    def batch(count: int, timeout: float) -> float:
        """Start `count` runs at once; seconds until the last one finished."""
        started = time.time()
        ids = [run_start(toolset="toolbox", user_message=USER_MESSAGE).pk for _ in range(count)]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            open_runs = AgentRun.objects.filter(pk__in=ids, finished_at__isnull=True).count()
            if not open_runs:
                break
            time.sleep(0.02)
        else:
            raise SystemExit(f"{open_runs} of {count} runs did not finish in {timeout:.0f} s")
        done = AgentRun.objects.filter(pk__in=ids)
        bad = done.exclude(status="completed", turns=CALLS_PER_RUN).count()
        assert not bad, f"{bad} runs did not complete in {CALLS_PER_RUN} turns"
        return max(r.finished_at.timestamp() for r in done.only("finished_at")) - started

    rows, rss_rows = [], []
    for w in workers:
        latency(0)
        cluster = cluster_start(env, w)
        try:
            batch(w, timeout=90)  # the cluster is up and warm
            latency(latency_ms)
            rows.append((w, batch(runs, timeout=600)))
        finally:
            cluster_stop(cluster)
        print(f"{broker}, {w} workers: {rows[-1][1]:.2f} s", file=sys.stderr)
    if rss_runs:
        latency(0)
        cluster = cluster_start(env, 2)
        try:
            batch(2, timeout=90)
            done = 0
            while done < rss_runs:
                batch(50, timeout=300)
                done += 50
                if done % 100 == 0:
                    rss_rows.append((done, group_rss_mb(cluster.pid)))
        finally:
            cluster_stop(cluster)
    print(json.dumps({"rows": rows, "rss": rss_rows}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--workers", default="2,4")
    parser.add_argument("--latency", type=int, default=200, help="model latency, ms")
    parser.add_argument("--brokers", default="redis,orm")
    parser.add_argument("--rss-runs", type=int, default=1000)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--drive", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    if args.drive:
        drive(args.drive, workers, args.runs, args.latency, args.rss_runs)
        return

    import psycopg

    name = f"cs_bench_tp_{os.getpid()}"
    admin = args.postgres.replace("postgres://", "postgresql://").rstrip("/") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    latency_file = Path(tempfile.mkdtemp()) / "latency"
    latency_file.write_text("0")
    fake = LatencyFromFile(latency_file).start()
    fake._server.RequestHandlerClass.disable_nagle_algorithm = True
    brokers = args.brokers.split(",")
    calls = (len(brokers) * (sum(workers) + len(workers) * args.runs + args.rss_runs + 4)) * 3
    for _ in range(calls):
        fake.push(responder(fake))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ANTHROPIC_"))},
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": f"{args.postgres.rstrip('/')}/{name}",
        "TEST_ANTHROPIC_BASE_URL": fake.url,
        "LOG_LEVEL": "WARNING",
        "BENCH_LATENCY_FILE": str(latency_file),
    }
    env.pop("REDIS_URL", None)
    results = {}
    try:
        manage(env, "migrate", "--noinput")
        for broker in brokers:
            broker_env = {**env, "Q_CLUSTER_NAME": f"tp-{os.getpid()}-{broker}"}
            if broker == "redis":
                broker_env["REDIS_URL"] = args.redis
            rss = args.rss_runs if broker == brokers[0] else 0
            out = subprocess.run(
                [sys.executable, __file__, f"--drive={broker}", f"--workers={args.workers}",
                 f"--runs={args.runs}", f"--latency={args.latency}", f"--rss-runs={rss}"],
                cwd=ROOT, env=broker_env, check=True, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            results[broker] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        fake.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    print(
        f"{args.runs} runs started at once, {CALLS_PER_RUN} model calls each, the model answering "
        f"after {args.latency} ms; ideal = runs × calls × latency / workers.\n"
    )
    print("| broker | workers | measured | ideal | throughput (ideal / measured) |")
    print("| --- | --- | --- | --- | --- |")
    for broker, result in results.items():
        label = "Redis" if broker == "redis" else "ORM (PostgreSQL)"
        for w, seconds in result["rows"]:
            ideal = args.runs * CALLS_PER_RUN * args.latency / 1000 / w
            print(f"| {label} | {w} | {seconds:.2f} s | {ideal:.2f} s | {ideal / seconds:.1%} |")
    rss_rows = results[brokers[0]]["rss"]
    if rss_rows:
        print(
            f"\nWorker memory over {args.rss_runs} runs ({brokers[0]} broker, 2 workers; "
            "resident set size of each process of the cluster, largest first):\n"
        )
        print("| runs done | processes (MB) | total |")
        print("| --- | --- | --- |")
        for done, sizes in rss_rows:
            print(f"| {done} | {', '.join(f'{s:.0f}' for s in sizes)} | {sum(sizes):.0f} MB |")
        # django-q2 replaces a worker after `recycle` tasks (500 by default): compare samples
        # of the same processes, the first and the last taken before any was replaced.
        same = [row for row in rss_rows if len(row[1]) == len(rss_rows[0][1])]
        first, last = same[0], same[-1]
        print(
            f"\nFrom {first[0]} to {last[0]} runs, the same {len(first[1])} processes: "
            f"{sum(last[1]) - sum(first[1]):+.1f} MB in all, the largest "
            f"{max(last[1]) - max(first[1]):+.1f} MB."
        )
        if len(same) < len(rss_rows):
            print(
                "After that django-q2 replaced a worker (`recycle`, 500 tasks by default); "
                "the new one starts small."
            )


class LatencyFromFile:
    """The Messages API fake, its latency set by the driver process through a file."""

    def __new__(cls, path: Path):
        from tests.fakes.anthropic import FakeAnthropic

        class Fake(FakeAnthropic):
            @property
            def latency(self) -> float:
                try:
                    return float(path.read_text() or 0)
                except (OSError, ValueError):
                    return 0.0

            @latency.setter
            def latency(self, value: float) -> None:
                pass

        return Fake()


if __name__ == "__main__":
    main()
