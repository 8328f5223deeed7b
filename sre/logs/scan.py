"""One scan of one log: the planned files read into batches of parsed events.

Each batch carries the checkpoint that is true once its events are stored; the service stores a
batch and saves its checkpoint in one transaction, so a crash between batches re-reads nothing
that was stored and skips nothing that was not. Batches never span two files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sre.logs.assemble import make_assembler
from sre.logs.tail import Checkpoint, Line, LineReader, file_id, head_digest_of, plan_read

BATCH_ITEMS = 5000
BATCH_BYTES = 8 << 20


@dataclass
class Batch:
    items: list
    checkpoint: Checkpoint
    bytes: int = 0  # bytes consumed by this batch
    lines: int = 0
    unparsed: int = 0
    cut: int = 0
    samples: list[str] = field(default_factory=list)
    last_time: datetime | None = None
    # Access-log requests counted without an event each (not 5xx): by (minute, route).
    requests: dict[tuple[datetime, str], int] = field(default_factory=dict)


class FileScan:
    def __init__(
        self,
        *,
        path: str,
        kind: str,
        checkpoint: Checkpoint | None,
        from_start: bool,
        max_bytes: int,
        max_line: int,
        settle_seconds: float,
        now: float,
        last_time: datetime | None,
    ):
        self.kind = kind
        self.plan = plan_read(path, checkpoint, from_start=from_start)
        self.notes = list(self.plan.notes)
        self.max_line = max(max_line, 256)
        self.budget = max(max_bytes, 2 * self.max_line + 2)
        self.settle_seconds = settle_seconds
        self.now = now
        self.last_time = last_time
        self.bytes_read = 0
        self.capped = False

    def batches(self) -> Iterator[Batch]:
        for segment in self.plan.segments:
            try:
                f = open(segment.path, "rb")  # noqa: SIM115 (closed below, across yields)
            except OSError as error:
                self.notes.append(f"cannot open {segment.path}: {error.strerror or error}")
                return
            with f:
                st = os.fstat(f.fileno())
                if file_id(st) != segment.file_id:
                    self.notes.append(f"{segment.path} was replaced during the scan; next time.")
                    return
                finished = yield from self._segment(f, st, segment)
            if not finished or self.budget <= 0:
                if self.budget <= 0:
                    self.capped = True
                return

    def _segment(self, f, st: os.stat_result, segment) -> Iterator[Batch]:
        head_hash, head_len = head_digest_of(f)
        quiet = self.now - st.st_mtime >= self.settle_seconds
        asm = make_assembler(
            self.kind,
            start=segment.start,
            last_time=self.last_time,
            fallback_time=datetime.fromtimestamp(st.st_mtime, UTC),
        )
        reader = LineReader(
            f, start=segment.start, limit=self.budget, max_line=self.max_line, final=segment.final
        )
        mark = {"consumed": segment.start, "lines": 0, "unparsed": 0, "cut": 0, "samples": 0}

        def cut_batch(items: list) -> Batch:
            batch = Batch(
                items=items,
                checkpoint=Checkpoint(
                    segment.file_id, segment.path, head_hash, head_len, asm.consumed
                ),
                bytes=asm.consumed - mark["consumed"],
                lines=asm.lines - mark["lines"],
                unparsed=asm.unparsed - mark["unparsed"],
                cut=asm.cut - mark["cut"],
                samples=asm.samples[mark["samples"] :],
                last_time=getattr(asm, "last_time", None),
                requests=asm.take_requests(),
            )
            mark.update(
                consumed=asm.consumed,
                lines=asm.lines,
                unparsed=asm.unparsed,
                cut=asm.cut,
                samples=len(asm.samples),
            )
            return batch

        items: list = []
        for piece in reader.pieces():
            items.extend(asm.feed(piece) if isinstance(piece, Line) else asm.feed_block(piece))
            if len(items) >= BATCH_ITEMS or asm.consumed - mark["consumed"] >= BATCH_BYTES:
                yield cut_batch(items)
                items = []
        items.extend(asm.finish(eof=reader.eof, final=segment.final, quiet=quiet))
        self.budget -= reader.bytes_read
        self.bytes_read += reader.bytes_read
        self.last_time = getattr(asm, "last_time", None) or self.last_time
        yield cut_batch(items)
        return reader.eof and getattr(asm, "open_lines", None) is None
