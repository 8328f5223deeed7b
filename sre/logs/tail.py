"""Which bytes of a log to read next: only what was appended, across rotation and truncation.

A checkpoint names the file being read by device and inode, a SHA-256 of its first bytes (up to
HEAD_BYTES) and the offset of the first byte not yet consumed. Each scan makes a plan:

- the checkpoint's file is still there (the live file or a rotated sibling, found by inode) and
  its head is unchanged: read on from the offset, then every newer file from its start;
- the file is shorter than the offset, or its head changed (truncation, copytruncate): finish the
  copy if a sibling starts with the old head and reaches the offset, then every newer copy (more
  copytruncates since) and the file from 0;
- the file is gone (rotated and compressed, or deleted): read the live file from its start;
- compressed siblings (by name or by magic bytes) are never read.

A source with no checkpoint starts at the end of its live file (at the last line break) unless
told to read from the start, when its uncompressed rotated siblings are read first, oldest to
newest (`access.log-20240501`, then `access.log.2`, `access.log.1`, then `access.log`).

Known blind spots (tests/sre/test_fuzz_tail.py leaves them out, each with its reason): a
copytruncate is missed when the last scan had consumed nothing of the file, or when the file's
head is not unique to it (a copy and the file grown look alike by their first bytes); after a
compressed rotation, a second rotation before the next scan leaves the uncompressed one unread.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

HEAD_BYTES = 1024
CHUNK_BYTES = 1 << 20
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z", ".zip")
COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", b"PK\x03\x04")
_NUMBERED = re.compile(r"\.(\d{1,4})")
_DATED = re.compile(r"[-._](\d{8}(?:\d{2,6})?|\d{4}-\d{2}-\d{2}(?:[-_T]?\d{2,6})?)(?:[-.]\d+)?")


@dataclass(frozen=True)
class Checkpoint:
    file_id: str  # "device:inode"; "" while the live file did not exist yet
    file_path: str
    head_hash: str
    head_len: int
    offset: int


@dataclass(frozen=True)
class Segment:
    path: str
    file_id: str
    start: int
    final: bool  # a rotated file: nothing more will be written to it


@dataclass
class Plan:
    segments: list[Segment]
    notes: list[str]
    # Saved as is when there is nothing to read (a new source starting at the file's end).
    checkpoint: Checkpoint | None = None


@dataclass(frozen=True)
class Line:
    start: int
    end: int  # offset just past the line (and its line break)
    data: bytes | None  # None: the dropped rest of an over-long line
    cut: bool = False  # longer than the line cap: only its first bytes are kept


def file_id(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


def head_digest(path: str, length: int = HEAD_BYTES) -> tuple[str, int]:
    with open(path, "rb") as f:
        return head_digest_of(f, length)


def head_digest_of(f, length: int = HEAD_BYTES) -> tuple[str, int]:
    f.seek(0)
    data = f.read(length)
    return hashlib.sha256(data).hexdigest(), len(data)


def is_compressed(path: str) -> bool:
    if path.endswith(COMPRESSED_SUFFIXES):
        return True
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError:
        return True
    return magic.startswith(COMPRESSED_MAGIC)


def rotated_siblings(live_path: str) -> list[str]:
    """Uncompressed rotated copies of a log, oldest first (dated names, then .N descending)."""
    directory, name = os.path.split(live_path)
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return []
    numbered: list[tuple[int, str]] = []
    dated: list[tuple[str, str]] = []
    for entry in entries:
        if not entry.startswith(name) or entry == name or entry.endswith(COMPRESSED_SUFFIXES):
            continue
        suffix = entry[len(name) :]
        path = os.path.join(directory, entry)
        if m := _NUMBERED.fullmatch(suffix):
            numbered.append((int(m.group(1)), path))
        elif _DATED.fullmatch(suffix):
            dated.append((suffix, path))
    ordered = [p for _, p in sorted(dated)] + [p for _, p in sorted(numbered, reverse=True)]
    return [p for p in ordered if os.path.isfile(p) and not is_compressed(p)]


def _stat(path: str) -> os.stat_result | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st if os.path.isfile(path) else None


def end_checkpoint(path: str, st: os.stat_result) -> Checkpoint:
    """A checkpoint at the end of the file's last complete line."""
    with open(path, "rb") as f:
        head_hash, head_len = head_digest_of(f)
        size = st.st_size
        back = min(size, 1 << 16)
        f.seek(size - back)
        tail = f.read(back)
    newline = tail.rfind(b"\n")
    if newline >= 0:
        offset = size - back + newline + 1
    elif back == size:
        offset = 0  # the whole file is one unfinished line
    else:
        offset = size  # no line break in the last 64 KiB: start past the giant line
    return Checkpoint(file_id(st), path, head_hash, head_len, offset)


def plan_read(live_path: str, checkpoint: Checkpoint | None, *, from_start: bool) -> Plan:
    """Decide which files to read, from where, for one scan of one source."""
    live = _stat(live_path)
    notes: list[str] = []
    siblings = rotated_siblings(live_path)
    ordered: list[tuple[str, os.stat_result]] = [
        (p, st) for p in siblings if (st := _stat(p)) is not None
    ]
    if live is not None:
        ordered.append((live_path, live))

    def segments_from(index: int, first_start: int) -> list[Segment]:
        return [
            Segment(p, file_id(st), first_start if i == index else 0, final=p != live_path)
            for i, (p, st) in enumerate(ordered)
            if i >= index
        ]

    if checkpoint is None or not checkpoint.file_id:
        if checkpoint is None and not from_start:
            if live is None:
                return Plan(
                    [], [f"{live_path} does not exist yet; it will be read from its start."]
                )
            cp = end_checkpoint(live_path, live)
            notes.append(f"new source: starts at the end of {live_path} (byte {cp.offset}).")
            return Plan([], notes, checkpoint=cp)
        if not ordered:
            return Plan([], [f"{live_path} does not exist yet."])
        if len(ordered) > 1:
            notes.append(f"reading from the start: {len(ordered) - 1} rotated file(s) first.")
        return Plan(segments_from(0, 0), notes)

    index = next(
        (i for i, (_, st) in enumerate(ordered) if file_id(st) == checkpoint.file_id), None
    )
    if index is None:
        # A file moved to another filesystem keeps its content but not its inode.
        index = _find_by_head(ordered, checkpoint)
        if index is None:
            if live is None:
                return Plan([], [f"{live_path} is missing; the file read last is gone too."])
            notes.append(
                f"the file read last ({checkpoint.file_path}) is gone (compressed or deleted); "
                f"reading {live_path} from its start. Lines written to it after the last scan "
                "may be missed (rotate with delaycompress)."
            )
            return Plan([Segment(live_path, file_id(live), 0, final=False)], notes)
        notes.append(f"found the file read last at {ordered[index][0]} by its first bytes.")
        return Plan(segments_from(index, checkpoint.offset), notes)

    path, st = ordered[index]
    if st.st_size >= checkpoint.offset and _head_matches(path, checkpoint):
        if index < len(ordered) - 1:
            notes.append(f"rotated: finishing {path} from byte {checkpoint.offset}.")
        return Plan(segments_from(index, checkpoint.offset), notes)

    # Truncated in place (copytruncate, `> file`) or rewritten: the old content may live on
    # in a copy beside it.
    copy = _find_copy(ordered, checkpoint, exclude=path)
    if copy is None:
        notes.append(f"truncated: {path} is read again from its start.")
        return Plan(segments_from(index, 0), notes)
    copy_path, copy_st = ordered[copy]
    notes.append(f"truncated: finishing its copy {copy_path} from byte {checkpoint.offset}.")
    # Copies made by later rotations (newer than the one found) are read whole, then the file.
    later = [s for s in segments_from(min(copy + 1, index), 0) if s.path != copy_path]
    return Plan(
        [Segment(copy_path, file_id(copy_st), checkpoint.offset, final=True)] + later, notes
    )


def _head_matches(path: str, checkpoint: Checkpoint) -> bool:
    try:
        digest, length = head_digest(path, checkpoint.head_len)
    except OSError:
        return False
    return length == checkpoint.head_len and digest == checkpoint.head_hash


def _find_by_head(ordered, checkpoint: Checkpoint) -> int | None:
    if not checkpoint.head_len:
        return None
    for i in range(len(ordered) - 1, -1, -1):
        path, st = ordered[i]
        if st.st_size >= checkpoint.offset and _head_matches(path, checkpoint):
            return i
    return None


def _find_copy(ordered, checkpoint: Checkpoint, *, exclude: str) -> int | None:
    if not checkpoint.head_len:
        return None
    for i in range(len(ordered) - 1, -1, -1):
        path, st = ordered[i]
        if path != exclude and st.st_size >= checkpoint.offset and _head_matches(path, checkpoint):
            return i
    return None


def _lines_within(block: bytes, max_line: int) -> bool:
    """Whether no line of `block` is longer than `max_line` bytes.

    A longer line is a run of at least max_line + 1 bytes without a line break, and such a run
    holds a whole window of `half` bytes starting at a multiple of `half` (2 half - 1 <= run):
    when every such window has a line break, no line is too long, found with few `find` calls.
    """
    half = (max_line + 2) // 2
    find = block.find
    if all(find(b"\n", at, at + half) >= 0 for at in range(0, len(block) - half + 1, half)):
        return True
    return max(map(len, block.split(b"\n"))) <= max_line


@dataclass(frozen=True)
class Block:
    """Complete lines, each within the line cap, read at once: `data` ends with a line break."""

    start: int
    data: bytes

    @property
    def end(self) -> int:
        return self.start + len(self.data)


class LineReader:
    """Complete lines of an open file from an offset, reading at most `limit` bytes.

    A line longer than `max_line` is cut: its first `max_line` bytes are a line (`cut=True`) and
    the rest up to the line break is skipped, also by a later reader that starts inside it (an
    offset not just past a line break: the cut line's break had not been written yet). An
    unterminated last line is returned only when the file is final (rotated away).

    `pieces()` gives them as `Line`s, except that a read's worth of ordinary lines (none over the
    cap, none to skip) comes as one `Block`, for parsers that take many lines at once.
    """

    def __init__(self, f, *, start: int, limit: int, max_line: int, final: bool):
        self.f = f
        self.start = start
        self.limit = max(limit, 0)
        self.max_line = max_line
        self.final = final
        self.bytes_read = 0
        self.eof = False  # the end of the file was reached (not the byte limit)

    def pieces(self) -> Iterator[Line | Block]:
        f, max_line = self.f, self.max_line
        skipping = False
        if self.start > 0:
            # Inside a line (the rest of one cut earlier): skip to its end, do not count it again.
            f.seek(self.start - 1)
            skipping = f.read(1) != b"\n"
        f.seek(self.start)
        pos = self.start  # file offset of buf[0]
        buf = b""
        while True:
            want = min(CHUNK_BYTES, self.limit - self.bytes_read)
            data = f.read(want) if want > 0 else b""
            if not data:
                self.eof = want > 0
                break
            self.bytes_read += len(data)
            buf = buf + data if buf else data
            last = buf.rfind(b"\n") + 1
            if last and not skipping:
                block = buf[:last]
                if _lines_within(block, max_line):
                    # The common case: every complete line of this read, as they are.
                    yield Block(pos, block)
                    pos += last
                    buf = buf[last:]
                    last = 0
            if last:
                pieces = buf.split(b"\n")
                buf = pieces.pop()
                for piece in pieces:
                    end = pos + len(piece) + 1
                    if skipping:
                        skipping = False
                        yield Line(pos, end, None)
                    elif len(piece) > max_line:
                        yield Line(pos, end, piece[:max_line], cut=True)
                    else:
                        yield Line(pos, end, piece)
                    pos = end
            if len(buf) > max_line:
                # No line break within the cap: keep the start, drop the rest as it comes.
                end = pos + len(buf)
                yield Line(pos, end, None) if skipping else Line(pos, end, buf[:max_line], True)
                skipping = True
                pos, buf = end, b""
        if buf and self.final and self.eof:
            end = pos + len(buf)
            yield Line(pos, end, None) if skipping else Line(pos, end, buf)
