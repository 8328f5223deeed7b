"""Real worker processes (manage.py qcluster) on an on-disk database of their own."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
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
            if seen == expected:
                return
            time.sleep(0.3)
        raise AssertionError(f"{sql!r} gave {seen!r}, not {expected!r}, within {timeout}s")


REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(params=["orm", "redis"])
def site(request, tmp_path: Path, _anthropic_server) -> Iterator[Site]:
    """A site on this test run's database kind, with the ORM broker or with Redis."""
    default = settings.DATABASES["default"]
    cleanup = None
    if default["ENGINE"].endswith("postgresql"):
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
        url = f"sqlite:///{tmp_path / 'site.sqlite3'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ANTHROPIC_"))},
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": url,
        "TEST_ANTHROPIC_BASE_URL": _anthropic_server.url,
        "Q_WORKERS": "1",
        "LOG_LEVEL": "WARNING",
        "Q_CLUSTER_NAME": f"e2e-{uuid.uuid4().hex[:8]}",
    }
    env.pop("REDIS_URL", None)
    if request.param == "redis":
        env["REDIS_URL"] = REDIS_URL
    site = Site(url, env)
    site.manage("migrate", "--noinput")
    yield site
    for process in site.workers:
        site.worker_kill(process)
    if cleanup:
        cleanup()
