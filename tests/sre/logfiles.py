"""Log files for the SRE watchdog's tests: real files in tmp_path, sources, the seed's logs.

Imported by conftest.py, so these fixtures are there for every test in tests/sre."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from sre.models import LogSource
from sre.services import log_source_scan, sre_scan

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _sre_settings(settings):
    settings.SRE_LOG_SOURCES = ""
    settings.SRE_SCAN_MAX_BYTES = 64 * 1024 * 1024
    settings.SRE_MAX_LINE_BYTES = 64 * 1024
    settings.SRE_SETTLE_SECONDS = 10
    settings.SRE_WINDOW_MINUTES = 5
    settings.SRE_SPIKE_MIN = 10
    settings.SRE_SPIKE_FACTOR = 3.0
    settings.SRE_BASELINE_WINDOWS = 12
    settings.SRE_DEDUPE_SECONDS = 60
    settings.SRE_REQUEST_MATCH_SECONDS = 60
    settings.SRE_AGENT_RUNS_PER_HOUR = 4
    settings.TIME_ZONE = "UTC"


class LogFile:
    """A log file on disk that tests write, append to, rotate and truncate."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, text: str | bytes) -> LogFile:
        data = text.encode() if isinstance(text, str) else text
        self.path.write_bytes(data)
        return self

    def append(self, text: str | bytes) -> LogFile:
        data = text.encode() if isinstance(text, str) else text
        with open(self.path, "ab") as f:
            f.write(data)
        return self

    def rotate(self, suffix: str = ".1") -> Path:
        """Rotation by rename (logrotate's default): the live file becomes `<name><suffix>`."""
        target = self.path.with_name(self.path.name + suffix)
        os.rename(self.path, target)
        return target

    def copytruncate(self, suffix: str = ".1") -> Path:
        """logrotate's copytruncate: copy the live file aside, then truncate it in place."""
        target = self.path.with_name(self.path.name + suffix)
        shutil.copyfile(self.path, target)
        with open(self.path, "r+b") as f:
            f.truncate(0)
        return target

    def age(self, seconds: float = 3600) -> LogFile:
        """Make the file look quiet (its last write long ago)."""
        past = time.time() - seconds
        os.utime(self.path, (past, past))
        return self

    @property
    def size(self) -> int:
        return self.path.stat().st_size


@pytest.fixture
def logs(tmp_path):
    def make(name: str) -> LogFile:
        return LogFile(tmp_path / name)

    return make


@pytest.fixture
def source(db):
    def make(kind: str, path: Path | str, **extra) -> LogSource:
        return LogSource.objects.create(kind=kind, path=str(path), **extra)

    return make


def scan_one(src: LogSource, **kwargs):
    """One scan of one source, as a fresh process would do it (no state but the database)."""
    return log_source_scan(source_id=src.pk, **kwargs)


def scan_all(**kwargs):
    return sre_scan(**kwargs)


@pytest.fixture
def seed_files(tmp_path):
    """The seed's example: a Django error log with `KeyError: 'user_profile'` in api.py making
    500s, and the NGINX access log of the same morning."""
    django_log = tmp_path / "error.log"
    access_log = tmp_path / "access.log"
    shutil.copyfile(DATA / "seed-django-error.log", django_log)
    shutil.copyfile(DATA / "seed-nginx-access.log", access_log)
    return {"django": django_log, "nginx_access": access_log}
