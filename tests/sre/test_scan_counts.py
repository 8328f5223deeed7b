"""The checkpoint's counters across scans: each complete line counted once, however it is split.

A record still open at the end of what was read (a traceback cut mid-write, a line whose break
has not been written yet) is held back and read again by the next scan; it is counted then,
once, with the bytes it was stored with.
"""

from __future__ import annotations

import pytest

from sre.models import LogCheckpoint, Occurrence
from tests.sre.logfiles import scan_one
from tests.sre.test_tail import END, FRAMES, HEAD, lines

pytestmark = pytest.mark.django_db

INFO = "2025-03-14 09:26:00,000 INFO shop.jobs warm-up done\n"


def counts(src) -> tuple[int, int, int, int]:
    cp = LogCheckpoint.objects.get(source=src)
    return cp.lines_read, cp.bytes_read, cp.unparsed_lines, cp.cut_lines


def test_a_traceback_held_back_by_one_scan_is_counted_once_by_the_next(logs, source):
    log = logs("error.log").write("")
    src = source("django", log.path)
    scan_one(src)
    log.append(INFO + HEAD + FRAMES)
    scan_one(src)
    # Only the INFO line was consumed: the open record waits, and is not counted yet.
    assert counts(src) == (1, len(INFO), 0, 0)
    log.append(END)
    scan_one(src)
    text = INFO + HEAD + FRAMES + END
    assert counts(src) == (text.count("\n"), len(text), 0, 0)
    assert Occurrence.objects.count() == 1


def test_a_record_whose_last_line_has_no_break_yet_is_counted_once(logs, source):
    log = logs("error.log").write("")
    src = source("django", log.path)
    scan_one(src)
    log.append(HEAD + FRAMES + END[:20])
    scan_one(src)
    assert counts(src) == (0, 0, 0, 0)
    log.append(END[20:])
    scan_one(src)
    text = HEAD + FRAMES + END
    assert counts(src) == (text.count("\n"), len(text), 0, 0)


def test_garbage_inside_a_held_back_record_is_counted_once(logs, source):
    log = logs("error.log").write("")
    src = source("django", log.path)
    scan_one(src)
    log.append(HEAD + FRAMES + "\x00\x01binary\x02\n")
    scan_one(src)
    assert counts(src) == (0, 0, 0, 0)
    assert LogCheckpoint.objects.get(source=src).unparsed_samples == []
    log.append(END)
    scan_one(src)
    text = HEAD + FRAMES + "\x00\x01binary\x02\n" + END
    assert counts(src) == (text.count("\n"), len(text), 1, 0)
    assert len(LogCheckpoint.objects.get(source=src).unparsed_samples) == 1


def test_a_line_over_the_cap_still_unfinished_at_a_scan_is_one_line(logs, source, settings):
    log = logs("access.log").write("")
    src = source("nginx_access", log.path)
    scan_one(src)
    settings.SRE_MAX_LINE_BYTES = 300
    long_line = lines(3)[:-1] + " " + "x" * 5000
    log.append(long_line)
    scan_one(src)
    # Its first bytes were taken (cut); the rest, when it comes, is skipped, not a new line.
    log.append("y" * 100 + "\n" + lines(4))
    scan_one(src)
    text = long_line + "y" * 100 + "\n" + lines(4)
    assert counts(src) == (2, len(text), 0, 1)


def test_a_long_line_cut_inside_an_open_record_is_counted_once(logs, source, settings):
    settings.SRE_MAX_LINE_BYTES = 300
    log = logs("error.log").write("")
    src = source("django", log.path)
    scan_one(src)
    long_frame = '  File "/srv/shop/shop/api.py", line 8, in profile' + " " * 1000
    log.append(HEAD + FRAMES + long_frame)
    scan_one(src)
    assert counts(src) == (0, 0, 0, 0)
    log.append("\n" + END)
    scan_one(src)
    text = HEAD + FRAMES + long_frame + "\n" + END
    assert counts(src) == (text.count("\n"), len(text), 0, 1)
