"""A writer, logrotate and the scan, at random on real files: every line read once, counted exactly.

Hypothesis drives a log writer (whole lines, lines split across writes, huge lines, garbage,
invalid UTF-8), rotation by rename and by copytruncate, and scans (some with a small byte
budget) of one source, and checks after every scan that what was read is exactly a prefix of
everything written, in order:
- `bytes_read` is that prefix's length: every complete line (and the kept part of a line over
  the cap) of an access log; a Python log may hold back a record still being written;
- `lines_read`, `cut_lines` and `unparsed_lines` count the lines that start in that prefix,
  each once however the scans split them;
- an access log's 5xx lines are stored once each, and the traffic windows count every request
  and every 5xx once.
At the end the writer finishes and a last scan (the file quiet by then) has read everything.

Left out, as the tailer's docstring says it cannot recover them:
- a rotated file compressed before its last lines were read (`rotate_compressed` only runs when
  every byte was read), and a rotation after it before a scan has found the new file: the file
  read last being gone, the tailer reads the live file from its start and nothing beside it;
- a line the writer is still writing when the file is rotated: the rest would go to a file
  the tailer treats as finished (rename) or to the truncated file (copytruncate), so each
  rotation first lets the writer finish its line;
- copytruncate of a file the last scan consumed nothing of, or whose first line is not unique
  (a traceback's `Traceback (most recent call last):`): the tailer tells a file from its copy
  and from the same file grown by their first bytes (see `plan_read`).
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from sre.logs.tail import file_id
from sre.models import ErrorRequest, LogCheckpoint, LogSource, TrafficWindow
from sre.services import log_source_scan

pytestmark = pytest.mark.django_db
MAX_LINE = 256
BASE = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
STATUSES = [200, 204, 301, 404, 499, 500, 502, 503, 504]


class LogWriter(RuleBasedStateMachine):
    """One log source, its writer and its rotations; subclasses say what a line is."""

    kind = ""

    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="fuzz-tail-")
        self.live = os.path.join(self.dir, "app.log")
        self.stream = bytearray()  # every byte written, in the order the files hold them
        self.lines: list[dict] = []  # what was written: start/end in the stream, and facts
        self.pending = bytearray()  # complete lines the writer has not written yet
        self.next_id = 0
        self.read_to = 0  # bytes_read after the last scan
        self.gz = 0
        self.lost_file = False  # the file read last was compressed away; no scan since
        self.live_start = 0  # where the live file's bytes start in the stream

    def teardown(self):
        try:
            if hasattr(self, "src"):
                self.finish()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    @initialize()
    def start(self):
        TrafficWindow.objects.all().delete()
        self.src = LogSource.objects.create(kind=self.kind, path=self.live, read_existing=True)

    # --- the writer ---------------------------------------------------------------------------

    def queue(self, data: bytes, unique: bool = True, **facts) -> None:
        """A line (without its break) the writer will write."""
        self.next_id += 1
        start = len(self.stream) + len(self.pending)
        self.pending += data + b"\n"
        self.lines.append({"start": start, "end": start + len(data) + 1, "unique": unique, **facts})

    def uid(self) -> int:
        return self.next_id + 1

    @precondition(lambda self: self.pending)
    @rule(n=st.integers(1, 400))
    def write(self, n):
        """The next n bytes the writer has: a line, part of one, or many."""
        self._write(len(self.pending) if n >= 400 else n)

    def _write(self, n: int) -> None:
        data, self.pending = bytes(self.pending[:n]), self.pending[n:]
        if data:
            with open(self.live, "ab") as f:
                f.write(data)
            self.stream += data

    def finish_line(self) -> None:
        """Write the rest of a line begun in the file (a writer flushes before it reopens)."""
        if self.stream and self.stream[-1:] != b"\n":
            self._write(self.pending.index(b"\n") + 1)

    @rule(raw=st.binary(max_size=60), huge=st.booleans())
    def garbage(self, raw, huge):
        # Its own marker first: no two files start alike (files are told apart by their head).
        data = f"!{self.uid()}:".encode() + raw.replace(b"\n", b"") * (30 if huge else 1)
        self.queue(data, garbage=True)

    # --- rotation -----------------------------------------------------------------------------

    def shift(self) -> None:
        """app.log.N becomes app.log.N+1, newest last, as logrotate does."""
        numbered = sorted(
            (int(name.rsplit(".", 1)[1]), name)
            for name in os.listdir(self.dir)
            if name.startswith("app.log.") and name.rsplit(".", 1)[1].isdigit()
        )
        for n, name in reversed(numbered):
            os.rename(os.path.join(self.dir, name), f"{self.live}.{n + 1}")

    @precondition(lambda self: os.path.exists(self.live) and not self.lost_file)
    @rule()
    def rotate_rename(self):
        self.finish_line()
        self.shift()
        os.rename(self.live, self.live + ".1")  # the writer's next line makes a new file
        self.live_start = len(self.stream)

    def copy_allowed(self) -> bool:
        if not os.path.exists(self.live) or self.lost_file:
            return False
        first = next((line for line in self.lines if line["start"] == self.live_start), None)
        if first is not None and not first["unique"]:
            return False  # left out (see the module docstring)
        row = LogCheckpoint.objects.filter(source=self.src).first()
        # Nothing of the file consumed yet: left out (see the module docstring).
        return not (row and row.offset == 0 and row.file_id == file_id(os.stat(self.live)))

    @precondition(copy_allowed)
    @rule()
    def rotate_copytruncate(self):
        self.finish_line()
        self.shift()
        shutil.copyfile(self.live, self.live + ".1")
        with open(self.live, "r+b") as f:
            f.truncate(0)
        self.live_start = len(self.stream)

    # Lines not read yet would be lost (see the module docstring), and so would the rest of a
    # line read up to its cut.
    @precondition(
        lambda self: (
            os.path.exists(self.live)
            and self.read_to == len(self.stream)
            and self.stream[-1:] in (b"", b"\n")
        )
    )
    @rule()
    def rotate_compressed(self):
        self.gz += 1
        with open(self.live, "rb") as f:
            data = f.read()
        with open(f"{self.live}.{self.gz}.gz", "wb") as f:
            f.write(gzip.compress(data))
        os.unlink(self.live)
        self.lost_file = True
        self.live_start = len(self.stream)

    # --- scans --------------------------------------------------------------------------------

    @rule(budget=st.none() | st.integers(1, 3000))
    def scan(self, budget):
        """A scan; some with a small SRE_SCAN_MAX_BYTES (raised to two lines' cap, 514 bytes)."""
        from django.conf import settings as django_settings

        old = django_settings.SRE_SCAN_MAX_BYTES
        if budget is not None:
            django_settings.SRE_SCAN_MAX_BYTES = budget
        try:
            self._scan()
        finally:
            django_settings.SRE_SCAN_MAX_BYTES = old
        self.check(capped=budget is not None)

    def _scan(self, now=None):
        found = os.path.exists(self.live)
        report = log_source_scan(source_id=self.src.pk, now=now)
        assert not report.error, report.error
        self.lost_file &= not found

    def finish(self):
        self._write(len(self.pending))
        for _ in range(1 + len(self.stream) // (1 << 20)):
            self._scan(now=timezone.now() + timedelta(hours=1))
        self.check(capped=False, quiet=True)
        assert self.read_to == len(self.stream)

    # --- what must hold -----------------------------------------------------------------------

    def readable(self) -> int:
        """Where a scan of everything written stops: after the last complete line, or at the
        end of an unfinished line whose unread part is over the cap (its start is kept as a
        cut line, the rest skipped as it comes)."""
        done = max(self.stream.rfind(b"\n") + 1, self.read_to)
        return len(self.stream) if len(self.stream) - done > MAX_LINE else done

    def started(self, upto: int) -> list[dict]:
        """The lines that start before `upto` (an unfinished one over the cap included)."""
        return [line for line in self.lines if line["start"] < upto]

    def check(self, *, capped: bool, quiet: bool = False) -> None:
        row = LogCheckpoint.objects.get(source=self.src)
        read, readable = row.bytes_read, self.readable()
        assert self.read_to <= read <= readable
        self.read_to = read
        lines = self.started(read)
        assert row.lines_read == len(lines)
        lengths = [min(line["end"], len(self.stream)) - line["start"] for line in lines]
        # A line's length without its break; an unfinished one (read up to its cut) is over the cap.
        cut = sum(
            n - 1 > MAX_LINE or line["end"] > read for n, line in zip(lengths, lines, strict=True)
        )
        assert row.cut_lines == cut
        self.check_events(row, lines, readable, capped=capped, quiet=quiet)

    def check_events(self, row, lines, readable: int, *, capped: bool, quiet: bool) -> None:
        raise NotImplementedError


class AccessLog(LogWriter):
    kind = "nginx_access"

    @rule(
        statuses=st.lists(st.sampled_from(STATUSES), min_size=1, max_size=6),
        style=st.integers(0, 3),
    )
    def requests(self, statuses, style):
        for status in statuses:
            n = self.uid()
            ua = {0: b"curl/8.5", 1: b"bad \xff\xfe\xc3( utf-8", 2: b"A" * 700, 3: b"\x00\x1b[31m"}
            time = BASE + timedelta(seconds=7 * n)
            line = (
                (
                    f'10.0.{n // 250}.{n % 250} - - [{time:%d/%b/%Y:%H:%M:%S} +0000] "GET /p/{n} '
                    f'HTTP/1.1" {status} 12 "-" "'
                ).encode()
                + ua[style]
                + b'"'
            )
            self.queue(line, id=n, status=status)

    def check_events(self, row, lines, readable, *, capped, quiet):
        if not capped:
            assert row.bytes_read == readable
        requests = [line for line in lines if "status" in line]
        assert row.unparsed_lines == len(lines) - len(requests)
        errors = sorted(line["id"] for line in requests if line["status"] >= 500)
        stored = ErrorRequest.objects.filter(source=self.src).values_list("path", flat=True)
        assert sorted(int(p.rsplit("/", 1)[1]) for p in stored) == errors
        totals = TrafficWindow.objects.filter(route="").aggregate(
            requests=Sum("requests"), errors=Sum("server_errors")
        )
        assert (totals["requests"] or 0, totals["errors"] or 0) == (len(requests), len(errors))


HEAD = "{time:%Y-%m-%d %H:%M:%S},000 ERROR django.request Internal Server Error: /p/{n}"
TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "/srv/shop/shop/api.py", line {n}, in profile',
    '    profile = reply["user_profile"]',
    "              ~~~~~^^^^^^^^^^^^^^^^",
    "KeyError: 'user_profile {n}'",
]


class PythonLog(LogWriter):
    kind = "django"

    @rule(
        shape=st.sampled_from(["info", "traceback", "alone", "huge", "bad_utf8", "binary"]),
    )
    def record(self, shape):
        n = self.uid()
        time = BASE + timedelta(seconds=7 * n)
        head = HEAD.format(time=time, n=n)
        if shape == "info":
            lines = [f"{time:%Y-%m-%d %H:%M:%S},000 INFO shop.jobs job {n} done"]
        elif shape == "alone":  # announces a traceback that never comes: taken once quiet
            lines = [head]
        else:
            lines = [head] + [t.format(n=n) for t in TRACEBACK]
        data = [line.encode() for line in lines]
        if shape == "huge":
            data[2] += b" " * 600
        elif shape == "bad_utf8":
            data[2] += b" # caf\xe9 \xff"
        elif shape == "binary":
            data.insert(3, b"\x00\x01\x02 binary")
        for i, line in enumerate(data):
            self.queue(line, unique=i == 0, record=n)

    def check_events(self, row, lines, readable, *, capped, quiet):
        if quiet:
            assert row.bytes_read == readable
        # Garbage lines are unparsed (alone, or binary inside a record); nothing else is.
        binary = sum(
            1 for line in lines if self.stream[line["start"] : line["start"] + 1] == b"\x00"
        )
        assert row.unparsed_lines >= binary


def run(machine, examples: int, steps: int) -> None:
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )


def test_an_access_log_is_read_once_whatever_the_writer_and_logrotate_do(settings):
    settings.SRE_MAX_LINE_BYTES = MAX_LINE
    run(AccessLog, examples=60, steps=50)


def test_a_python_log_is_read_once_whatever_the_writer_and_logrotate_do(settings):
    settings.SRE_MAX_LINE_BYTES = MAX_LINE
    run(PythonLog, examples=40, steps=50)
