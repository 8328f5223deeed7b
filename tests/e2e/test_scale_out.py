"""Scale-out: two qcluster clusters on one Redis and one PostgreSQL, 500 runs, every step once.

Each run is three model calls (lookup_widget twice, read-only so no approval, then end_turn),
and its first step is queued twice, as an at-least-once broker may deliver it, so the clusters
race for the same step.
The Messages API fake answers from the conversation it is sent, never from the order requests
arrive, so however the clusters interleave the runs each one gets its own replies; the test then
counts, per run, the model calls at the fake and in the ModelCall table, the tool calls, and each
(run, turn) sent to the model: exactly once each, and every run completed.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Site, needs_postgresql_and_redis, site_close, site_create
from tests.fakes.anthropic import FakeAnthropic

pytestmark = [pytest.mark.e2e, needs_postgresql_and_redis]

RUNS = 500
CALLS_PER_RUN = 3  # lookup gear, lookup sprocket, end_turn
LOOKUPS = ("gear", "sprocket")
WORKERS_PER_CLUSTER = 2
MODEL_LATENCY = 0.02  # seconds per model call


MESSAGE = "Run {n:03d}: how many gears and sprockets are in stock?"


def user_message(n: int) -> str:
    return MESSAGE.format(n=n)


def run_key(body: dict[str, Any]) -> str:
    """Which run a request belongs to: its first user message (each run's is its own)."""
    first = body["messages"][0]["content"]
    return first if isinstance(first, str) else first[0]["text"]


def turn_of(body: dict[str, Any]) -> int:
    """How many replies the run has had: 0 for its first model call."""
    return sum(1 for m in body["messages"] if m["role"] == "assistant")


def responder(fake: FakeAnthropic):
    """Answer any run's request from its own conversation: lookup, lookup, end_turn."""

    def answer(body: dict[str, Any]):
        key, turn = run_key(body), turn_of(body)
        if turn < len(LOOKUPS):
            run = key.split(":")[0].split()[-1]
            block = {
                "type": "tool_use",
                "id": f"toolu_scale_{run}_{turn}",
                "name": "lookup_widget",
                "input": {"name": LOOKUPS[turn]},
            }
            return fake._message(body, [block], "tool_use", 20)
        text = {"type": "text", "text": "1000 gears and 500 sprockets are in stock."}
        return fake._message(body, [text], "end_turn", 20)

    return answer


def cluster_start(site: Site, log: Path) -> subprocess.Popen:
    """A qcluster whose output goes to a file (kept for a failure's post-mortem)."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=site.env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    site.workers.append(process)
    return process


def cpu_seconds(root_pid: int) -> float:
    """CPU time used so far by a process and every process under it (Linux /proc)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        ticks[int(entry)] = int(fields[11]) + int(fields[12])  # utime + stime
    family, grew = {root_pid}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in family} - family
        family |= more
        grew = bool(more)
    return sum(ticks.get(pid, 0) for pid in family) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def fake():
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture
def scale_site(tmp_path: Path, fake: FakeAnthropic):
    site, cleanup = site_create(
        tmp_path, fake.url, broker="redis", extra={"Q_WORKERS": str(WORKERS_PER_CLUSTER)}
    )
    yield site
    site_close(site, cleanup)


def test_two_clusters_take_500_runs_and_process_every_step_exactly_once(
    scale_site: Site, fake: FakeAnthropic, tmp_path: Path
):
    site = scale_site
    # A model that takes a moment, so a duplicate delivery often arrives mid-step.
    fake.latency = MODEL_LATENCY
    for _ in range(RUNS * CALLS_PER_RUN):
        fake.push(responder(fake))
    clusters = [cluster_start(site, tmp_path / f"cluster-{i}.log") for i in (1, 2)]
    # Both clusters are up and report to the one Redis before any work is queued.
    deadline = time.monotonic() + 60
    while site.python("from django_q.status import Stat\nprint(len(Stat.get_all()))") != "2":
        assert time.monotonic() < deadline, "the two clusters never both reported to Redis"
        time.sleep(0.5)
    cpu_before = [cpu_seconds(c.pid) for c in clusters]

    began = time.monotonic()
    site.manage(
        "shell",
        "--no-imports",
        "-c",
        "from django_q.tasks import async_task\n"
        "from tests.toolbox.models import Widget\n"
        "from agents.services import run_start\n"
        "Widget.objects.get_or_create(name='gear', defaults={'stock': 1000})\n"
        "Widget.objects.get_or_create(name='sprocket', defaults={'stock': 500})\n"
        f"for n in range({RUNS}):\n"
        f"    run = run_start(toolset='toolbox', user_message={MESSAGE!r}.format(n=n))\n"
        # Delivered twice, as an at-least-once broker may: the clusters race for the step.
        "    async_task('agents.tasks.run_advance_task', run.pk, run.step)",
        timeout=300,
    )
    site.wait_for(
        "SELECT count(*) FROM agents_agentrun WHERE finished_at IS NOT NULL", RUNS, timeout=600
    )
    wall = time.monotonic() - began
    time.sleep(2)  # anything delivered twice would land now
    cpu = [cpu_seconds(c.pid) - before for c, before in zip(clusters, cpu_before, strict=True)]
    print(
        f"\n{RUNS} runs x {CALLS_PER_RUN} model calls on 2 clusters x {WORKERS_PER_CLUSTER} "
        f"workers: {wall:.1f} s ({RUNS / wall:.1f} runs/s); cluster CPU {cpu[0]:.1f} s, "
        f"{cpu[1]:.1f} s"
    )

    # Every run completed, with its three turns.
    assert site.query("SELECT status, count(*) FROM agents_agentrun GROUP BY status") == [
        ("completed", RUNS)
    ]
    assert site.query("SELECT count(*) FROM agents_agentrun WHERE turns <> 3") == [(0,)]
    # At the fake: each run asked exactly three times, once for each turn.
    asked = collections.Counter((run_key(r.body), turn_of(r.body)) for r in fake.message_requests)
    assert len(fake.message_requests) == RUNS * CALLS_PER_RUN
    assert set(asked) == {(user_message(n), t) for n in range(RUNS) for t in range(3)}
    assert set(asked.values()) == {1}
    assert fake.pending == 0
    # In the ModelCall table: three per run, at three different steps, none an error.
    per_run = site.query(
        "SELECT r.id, count(m.id), count(DISTINCT m.step), "
        "count(*) FILTER (WHERE m.error <> '') "
        "FROM agents_agentrun r LEFT JOIN agents_modelcall m ON m.run_id = r.id GROUP BY r.id"
    )
    assert len(per_run) == RUNS
    assert {(calls, steps, errors) for _, calls, steps, errors in per_run} == {(3, 3, 0)}
    # Each lookup was run once, answered, on its own turn.
    calls = site.query(
        "SELECT run_id, count(*), count(DISTINCT turn), "
        "count(*) FILTER (WHERE status = 'succeeded') FROM agents_toolcall GROUP BY run_id"
    )
    assert len(calls) == RUNS
    assert {(n, turns, ok) for _, n, turns, ok in calls} == {(2, 2, 2)}
    # The duplicate deliveries found their step taken and did nothing, without failing.
    assert site.query("SELECT count(*) FROM django_q_task WHERE NOT success") == [(0,)]
    # The broker is drained, and both clusters did a share of the work.
    assert (
        site.python("from django_q.brokers import get_broker\nprint(get_broker().queue_size())")
        == "0"
    )
    assert all(c.poll() is None for c in clusters), "a cluster died"
    assert min(cpu) > 0.2 * sum(cpu), f"one cluster did almost nothing: {cpu}"
