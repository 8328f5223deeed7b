"""The checkpoint rules, on real files: append, restart, rotation, truncation, caps."""

from __future__ import annotations

import gzip
import os
from datetime import timedelta

import pytest
from django.utils import timezone

from sre.logs import nginx, scan, tail
from sre.models import ErrorRequest, LogCheckpoint, Occurrence
from sre.services import scan as scan_service
from tests.sre.logfiles import scan_one

pytestmark = pytest.mark.django_db


def lines(*ids: int) -> str:
    """Access-log lines, each a 500 on its own path, so what was read is exactly known."""
    return "".join(
        f'10.0.0.1 - - [14/Mar/2025:09:00:{i % 60:02d} +0000] "GET /p/{i} HTTP/1.1" 500 1 "-" "ua"\n'
        for i in ids
    )


def read_ids() -> list[int]:
    """Every line stored so far, in the order read (a line read twice shows twice)."""
    return [
        int(p.rsplit("/", 1)[1])
        for p in ErrorRequest.objects.order_by("pk").values_list("path", flat=True)
    ]


def checkpoint(src) -> LogCheckpoint:
    return LogCheckpoint.objects.get(source=src)


@pytest.fixture
def access(logs, source):
    log = logs("access.log")
    log.write(lines(1, 2))
    src = source("nginx_access", log.path)
    return log, src


def test_a_new_source_starts_at_its_end_then_reads_only_what_is_appended(access):
    log, src = access
    report = scan_one(src)
    assert read_ids() == [] and checkpoint(src).offset == log.size
    assert "new source: starts at the end" in report.notes[0]
    log.append(lines(3, 4))
    scan_one(src)
    assert read_ids() == [3, 4]
    scan_one(src)
    assert read_ids() == [3, 4]


def test_a_new_source_told_to_read_existing_starts_at_byte_0(logs, source):
    log = logs("access.log").write(lines(1, 2))
    src = source("nginx_access", log.path, read_existing=True)
    scan_one(src)
    assert read_ids() == [1, 2]


def test_a_new_source_starts_after_its_last_complete_line(logs, source):
    log = logs("access.log").write(lines(1) + lines(2)[:20])
    src = source("nginx_access", log.path)
    scan_one(src)
    assert checkpoint(src).offset == len(lines(1))
    log.append(lines(2)[20:] + lines(3))
    scan_one(src)
    assert read_ids() == [2, 3]


def test_an_unfinished_line_waits_for_its_end(access):
    log, src = access
    scan_one(src)
    log.append(lines(3) + lines(4)[:30])
    scan_one(src)
    assert read_ids() == [3]
    log.append(lines(4)[30:])
    scan_one(src)
    assert read_ids() == [3, 4]


def test_a_restart_neither_rereads_nor_skips(access):
    log, src = access
    scan_one(src)
    for batch in ([5, 6], [7], [8, 9, 10]):
        log.append(lines(*batch))
        # A fresh process: no cache, no state but the database.
        nginx._time_cache.clear()
        scan_one(src)
    assert read_ids() == [5, 6, 7, 8, 9, 10]


def test_the_checkpoint_is_saved_only_with_what_was_stored(access, monkeypatch):
    log, src = access
    scan_one(src)
    log.append(lines(*range(10, 20)))
    monkeypatch.setattr(scan, "BATCH_ITEMS", 3)
    # One line a read: a batch is cut between reads, so here every three lines.
    monkeypatch.setattr(tail, "CHUNK_BYTES", len(lines(10)))
    real_store = scan_service._batch_store
    calls = {"n": 0}

    def store_then_crash(*args, **kwargs):
        calls["n"] += 1
        real_store(*args, **kwargs)
        if calls["n"] == 2:
            raise RuntimeError("the worker died here")

    monkeypatch.setattr(scan_service, "_batch_store", store_then_crash)
    with pytest.raises(RuntimeError):
        scan_one(src)
    # The first batch and its checkpoint were committed; the second rolled back with its lines.
    assert read_ids() == [10, 11, 12]
    assert checkpoint(src).offset == len(lines(1, 2, 10, 11, 12))
    monkeypatch.setattr(scan_service, "_batch_store", real_store)
    scan_one(src)
    assert read_ids() == list(range(10, 20))


def test_another_scan_moving_the_checkpoint_stops_this_one(access, monkeypatch):
    log, src = access
    scan_one(src)
    log.append(lines(3))
    real_store = scan_service._batch_store

    def meanwhile(*args, **kwargs):
        LogCheckpoint.objects.filter(source=src).update(offset=log.size)
        real_store(*args, **kwargs)

    monkeypatch.setattr(scan_service, "_batch_store", meanwhile)
    report = scan_one(src)
    assert "another scan moved" in report.error
    assert read_ids() == []


def test_rotation_by_rename_drains_the_old_file_then_reads_the_new_one(access):
    log, src = access
    scan_one(src)
    log.append(lines(3))
    rotated = log.rotate()
    with open(rotated, "a") as f:  # written before the server reopened its log
        f.write(lines(4))
    log.write(lines(5, 6))
    report = scan_one(src)
    assert read_ids() == [3, 4, 5, 6]
    assert any("rotated: finishing" in n for n in report.notes)
    assert checkpoint(src).file_path == str(log.path)
    log.append(lines(7))
    scan_one(src)
    assert read_ids() == [3, 4, 5, 6, 7]


def test_two_rotations_between_scans_read_every_file_in_order(access):
    log, src = access
    scan_one(src)
    log.append(lines(3))
    log.rotate(".1")
    log.write(lines(4))
    os.rename(log.path.with_name("access.log.1"), log.path.with_name("access.log.2"))
    log.rotate(".1")
    log.write(lines(5))
    scan_one(src)
    assert read_ids() == [3, 4, 5]


def test_a_rotated_file_already_compressed_is_skipped_and_the_new_file_read_from_0(access):
    log, src = access
    scan_one(src)
    log.append(lines(3))
    # logrotate without delaycompress: rename, create the new file, compress the old one.
    rotated = log.rotate()
    log.write(lines(4))
    gz = rotated.with_name("access.log.1.gz")
    gz.write_bytes(gzip.compress(rotated.read_bytes()))
    rotated.unlink()
    report = scan_one(src)
    assert read_ids() == [4]
    assert any("is gone (compressed or deleted)" in n for n in report.notes)


def test_copytruncate_finishes_the_copy_then_reads_the_file_from_0(access):
    log, src = access
    scan_one(src)
    log.append(lines(3))
    log.copytruncate()
    log.append(lines(4))
    report = scan_one(src)
    assert read_ids() == [3, 4]
    assert any("truncated: finishing its copy" in n for n in report.notes)


def test_two_copytruncates_between_scans_read_both_copies_then_the_file(access):
    log, src = access
    scan_one(src)
    log.append(lines(3))
    log.copytruncate()
    log.append(lines(4))
    os.rename(log.path.with_name("access.log.1"), log.path.with_name("access.log.2"))
    log.copytruncate()  # the newer copy holds 4 only: it was not read either
    log.append(lines(5))
    scan_one(src)
    assert read_ids() == [3, 4, 5]


def test_copytruncate_with_the_file_grown_past_the_offset_is_caught_by_its_head(access):
    log, src = access
    scan_one(src)
    log.copytruncate()
    log.append(lines(*range(100, 110)))  # longer than before: only the head tells
    scan_one(src)
    assert read_ids() == list(range(100, 110))


def test_truncation_starts_over_at_0(access):
    log, src = access
    scan_one(src)
    log.write(lines(9))  # `> access.log` then a new line: shorter than the offset
    report = scan_one(src)
    assert read_ids() == [9]
    assert any("truncated" in n for n in report.notes)


def test_each_scan_reads_at_most_sre_scan_max_bytes(access, settings):
    log, src = access
    scan_one(src)
    log.append(lines(*range(10, 30)))
    settings.SRE_MAX_LINE_BYTES = 256
    settings.SRE_SCAN_MAX_BYTES = len(lines(10)) * 8 + 3  # 8 lines and a bit of the 9th
    report = scan_one(src)
    assert read_ids() == list(range(10, 18))
    assert any("SRE_SCAN_MAX_BYTES" in n for n in report.notes)
    for _ in range(3):
        scan_one(src)
    assert read_ids() == list(range(10, 30))


def test_a_line_over_the_cap_is_cut_and_counted_and_the_next_one_read(access, settings):
    log, src = access
    scan_one(src)
    settings.SRE_MAX_LINE_BYTES = 300
    log.append(lines(3)[:-1] + " " + "x" * 5000 + "\n" + lines(4))
    report = scan_one(src)
    assert report.cut == 1
    assert read_ids() == [3, 4]
    assert checkpoint(src).cut_lines == 1


def test_a_file_that_does_not_exist_yet_is_read_from_its_start_once_it_does(logs, source):
    log = logs("access.log")
    src = source("nginx_access", log.path)
    report = scan_one(src)
    assert "does not exist yet" in report.notes[0]
    log.write(lines(1, 2))
    scan_one(src)
    assert read_ids() == [1, 2]


def test_a_changed_path_starts_again_as_a_new_source(access, logs):
    log, src = access
    scan_one(src)
    other = logs("other.log").write(lines(7))
    src.path = str(other.path)
    src.save()
    report = scan_one(src)
    assert "path changed" in report.notes[0]
    other.append(lines(8))
    scan_one(src)
    assert read_ids() == [8]


HEAD = "2025-03-14 09:26:03,100 ERROR django.request Internal Server Error: /api/users/40/profile\n"
FRAMES = (
    "Traceback (most recent call last):\n"
    '  File "/srv/shop/.venv/lib/python3.11/site-packages/django/core/handlers/exception.py", line 55, in inner\n'
    "    response = get_response(request)\n"
    "               ^^^^^^^^^^^^^^^^^^^^^\n"
)
END = (
    '  File "/srv/shop/shop/api.py", line 8, in profile\n'
    '    profile = reply["user_profile"]\n'
    "              ~~~~~^^^^^^^^^^^^^^^^\n"
    "KeyError: 'user_profile'\n"
)


def test_a_traceback_is_never_split_between_scans(logs, source):
    log = logs("error.log").write("")
    src = source("django", log.path)
    scan_one(src)
    log.append("2025-03-14 09:26:00,000 INFO shop.jobs warm-up done\n" + HEAD + FRAMES)
    scan_one(src)
    assert not Occurrence.objects.exists()
    # The offset stays at the start of the unfinished record.
    assert checkpoint(src).offset == len("2025-03-14 09:26:00,000 INFO shop.jobs warm-up done\n")
    log.append(END)
    scan_one(src)
    occurrence = Occurrence.objects.get()
    assert occurrence.message == "KeyError: 'user_profile'"
    assert occurrence.incident.culprit == "shop/api.py in profile"
    assert "profile = reply" in occurrence.incident.sample_text


def test_a_head_that_announces_a_traceback_waits_until_the_file_is_quiet(logs, source):
    log = logs("error.log").write("")
    src = source("django", log.path)
    scan_one(src)
    log.append(HEAD)
    scan_one(src)
    assert not Occurrence.objects.exists()
    # Nothing more came: after the settle time it is taken as it is.
    scan_one(src, now=timezone.now() + timedelta(seconds=30))
    assert Occurrence.objects.get().incident.category == "message"


def test_a_traceback_cut_off_by_a_rotation_is_taken_from_the_rotated_file(logs, source):
    log = logs("error.log").write("")
    src = source("django", log.path)
    scan_one(src)
    log.append(HEAD + FRAMES)
    scan_one(src)
    log.rotate()
    log.write("")
    scan_one(src)
    assert Occurrence.objects.get().incident.title.startswith("Internal Server Error")
