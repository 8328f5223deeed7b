"""Real worker processes (manage.py qcluster) on an on-disk database of their own."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


class Site:
    """One deployment: a database, and any number of processes started and killed on it."""

    def __init__(self, url: str, env: dict[str, str]):
        self.url = url
        self.env = env
        self.workers: list[subprocess.Popen] = []

    def manage(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    def python(self, code: str) -> str:
        """Run code in a fresh process with Django set up; returns what it printed."""
        return self.manage("shell", "--no-imports", "-c", code).strip()

    def worker_start(self) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.workers.append(process)
        return process

    def worker_kill(self, process: subprocess.Popen) -> None:
        """Kill the worker and every process it forked, without a chance to clean up."""
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def sweep(self, *, minutes_later: float = 3) -> str:
        """Run the periodic sweep once, as its schedule would `minutes_later` from now.

        Later than now, so work queued less than the sweep's grace ago (a task a killed
        cluster had fetched and lost) counts as lost. Call it only while no worker is mid-task:
        every claim looks stale to it.
        """
        return self.python(
            "from datetime import timedelta\n"
            "from django.utils import timezone\n"
            "from agents.services import agents_sweep\n"
            f"print(agents_sweep(now=timezone.now() + timedelta(minutes={minutes_later})))"
        )

    def with_env(self, **changes: str) -> Site:
        """The same site (database, workers) seen by processes started with other settings."""
        other = Site(self.url, {**self.env, **changes})
        other.workers = self.workers
        return other

    def execute(self, *statements: str) -> None:
        if self.url.startswith("sqlite:"):
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as conn:
                for sql in statements:
                    conn.execute(sql)
            return
        with psycopg.connect(self.url.replace("postgres://", "postgresql://")) as conn:
            for sql in statements:
                conn.execute(sql)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.url.startswith("sqlite:"):
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as conn:
                return conn.execute(sql).fetchall()
        with psycopg.connect(self.url.replace("postgres://", "postgresql://")) as conn:
            return conn.execute(sql).fetchall()

    def wait_for(self, sql: str, expected: Any, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            rows = self.query(sql)
            seen = rows[0][0] if rows else None
            if seen == expected or (callable(expected) and seen is not None and expected(seen)):
                return
            time.sleep(0.3)
        raise AssertionError(f"{sql!r} gave {seen!r}, not {expected!r}, within {timeout}s")


REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_reachable() -> bool:
    host, _, rest = REDIS_URL.removeprefix("redis://").partition(":")
    try:
        with socket.create_connection((host, int(rest.split("/")[0] or 6379)), timeout=2):
            return True
    except OSError:
        return False


def on_postgresql() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


# The fault suite needs what production runs: PostgreSQL (row locks, real concurrency) and Redis.
needs_postgresql_and_redis = pytest.mark.skipif(
    not (on_postgresql() and redis_reachable()),
    reason="needs the test database on PostgreSQL and Redis at TEST_REDIS_URL",
)


def site_create(
    base_dir: Path, anthropic_url: str, *, broker: str, extra: dict[str, str] | None = None
) -> tuple[Site, Callable[[], None] | None]:
    """Migrate a database of this test run's kind; a Site on it with the ORM broker or Redis."""
    default = settings.DATABASES["default"]
    cleanup = None
    if on_postgresql():
        name = f"cs_e2e_{uuid.uuid4().hex[:10]}"
        admin = dict(
            host=default["HOST"] or "127.0.0.1",
            port=default["PORT"] or 5432,
            user=default["USER"],
            password=default["PASSWORD"] or None,
            dbname="postgres",
            autocommit=True,
        )
        with psycopg.connect(**admin) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        auth = default["USER"] + (f":{default['PASSWORD']}" if default["PASSWORD"] else "")
        url = f"postgres://{auth}@{admin['host']}:{admin['port']}/{name}"

        def cleanup() -> None:
            with psycopg.connect(**admin) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        url = f"sqlite:///{base_dir / 'site.sqlite3'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ANTHROPIC_"))},
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": url,
        "TEST_ANTHROPIC_BASE_URL": anthropic_url,
        "Q_WORKERS": "1",
        "LOG_LEVEL": "WARNING",
        "Q_CLUSTER_NAME": f"e2e-{uuid.uuid4().hex[:8]}",
        **(extra or {}),
    }
    env.pop("REDIS_URL", None)
    if broker == "redis":
        env["REDIS_URL"] = REDIS_URL
    site = Site(url, env)
    site.manage("migrate", "--noinput")
    return site, cleanup


def site_close(site: Site, cleanup: Callable[[], None] | None) -> None:
    for process in site.workers:
        site.worker_kill(process)
    if cleanup:
        cleanup()


@pytest.fixture(params=["orm", "redis"])
def site(request, tmp_path: Path, _anthropic_server) -> Iterator[Site]:
    """A site on this test run's database kind, with the ORM broker or with Redis."""
    made, cleanup = site_create(tmp_path, _anthropic_server.url, broker=request.param)
    yield made
    site_close(made, cleanup)


@pytest.fixture(scope="module")
def _world(request, tmp_path_factory, _anthropic_server):
    from tests.e2e.world import World

    base = tmp_path_factory.mktemp("world")
    made, env = World.build(base)
    broker = getattr(request.module, "BROKER", "redis" if redis_reachable() else "orm")
    made.site, cleanup = site_create(base, _anthropic_server.url, broker=broker, extra=env)
    yield made
    site_close(made.site, cleanup)
    made.stop()


@pytest.fixture
def world(_world, fake_anthropic):
    """The module's deployment with the fakes; the workers a test started are killed after it.

    What a test left unfinished is cancelled (by SQL, as no worker is left), so a later test's
    sweep never drives it on with that test's scripted replies.
    """
    yield _world
    for process in _world.site.workers:
        _world.site.worker_kill(process)
    _world.site.workers.clear()
    _world.site.execute(
        "UPDATE agents_toolcall SET status = 'cancelled' WHERE status IN "
        "('preparing', 'awaiting_approval', 'queued', 'executing')",
        "UPDATE agents_agentrun SET status = 'cancelled' WHERE status IN "
        "('queued', 'running', 'awaiting_approval')",
    )
