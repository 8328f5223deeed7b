"""Lines into events, and the offset up to which a scan has consumed them.

NGINX logs have one event per line (an access log's common lines, not 5xx, are only counted by
minute and route: `nginx.access_block_count`, many lines at a time). Python logs (Django,
gunicorn) have records that may go on for many lines with a traceback: a record ends where the
next head line starts. The offset a scan may save (`consumed`) never passes the start of a record still open, so a traceback is not
split between scans. At the end of what was read, the open record is taken when:
- the file is final (rotated away), or
- it is structurally complete (its traceback ended with the exception line, groups closed) and
  does not announce a traceback still to come (`Internal Server Error: ...` alone), or
- the file has been quiet for the settle time (a writer that stopped mid-record), or
- nothing else could be consumed and the byte cap was reached (so a scan always moves on).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from sre.logs import nginx, pylog
from sre.logs.tail import Block, Line
from sre.logs.tracebacks import (
    CAUSE,
    CLOSE_RE,
    CONTEXT,
    FRAME_RE,
    parse_traceback,
    starts_traceback,
)

MAX_EVENT_LINES = 5000
MAX_EVENT_BYTES = 1 << 20
UNPARSED_SAMPLES = 5
_CONTROL_RE = re.compile("[\x00-\x08\x0e-\x1f]")


class Unparsed:
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def decode(data: bytes) -> str:
    text = data.decode("utf-8", "replace").rstrip("\r")
    return _ANSI_RE.sub("", text) if "\x1b" in text else text


def is_binary(text: str) -> bool:
    """Control characters, or mostly undecodable bytes: not text any log writes."""
    if _CONTROL_RE.search(text):
        return True
    bad = text.count("\ufffd")
    return bad > 0 and bad * 5 > len(text)


class Assembler:
    """Common counters; subclasses turn lines into parsed events.

    The counters (`lines`, `unparsed`, `cut`, `samples`) cover the lines before `consumed` only:
    a line held back with an open record is counted when the record is taken, so a line read
    again by the next scan is counted once.
    """

    def __init__(self, *, start: int):
        self.consumed = start
        self.start = start
        self.lines = 0
        self.unparsed = 0
        self.cut = 0
        self.samples: list[str] = []

    def _unparsed(self, text: str) -> Unparsed:
        self.unparsed += 1
        if len(self.samples) < UNPARSED_SAMPLES:
            self.samples.append(text[:500])
        return Unparsed(text)

    def feed(self, line: Line) -> list:
        raise NotImplementedError

    def feed_block(self, block: Block) -> list:
        """Many whole lines at once (none over the cap); by default, one by one."""
        out: list = []
        pos = block.start
        for data in block.data.split(b"\n")[:-1]:
            end = pos + len(data) + 1
            out.extend(self.feed(Line(pos, end, data)))
            pos = end
        return out

    def take_requests(self) -> dict[tuple[datetime, str], int]:
        """Requests counted without an event of their own since the last call, by (minute, route)."""
        return {}

    def finish(self, *, eof: bool, final: bool, quiet: bool) -> list:
        return []


class LineAssembler(Assembler):
    """One event per line (NGINX access and error logs)."""

    def __init__(self, *, start: int, parse: Callable[[str], object | None]):
        super().__init__(start=start)
        self.parse = parse

    def feed(self, line: Line) -> list:
        self.consumed = line.end
        if line.data is None:
            return []
        self.lines += 1
        self.cut += line.cut
        return self._items(line.data)

    def _items(self, data: bytes) -> list:
        """The event of one line's bytes: parsed, unparsed, or none for a blank line."""
        text = decode(data)
        if not text.strip():
            return []
        item = self.parse(text)
        return [self._unparsed(text) if item is None else item]


class AccessAssembler(LineAssembler):
    """NGINX access logs: blocks through the fast path, which counts the common lines.

    A line the fast path takes (not a 5xx) becomes no event: it is added to `requests` by
    minute and route, which is all a scan stores of it. Every other line is parsed as a line.
    """

    def __init__(self, *, start: int):
        super().__init__(start=start, parse=nginx.parse_access)
        self.requests: dict[tuple[datetime, str], int] = {}

    def feed_block(self, block: Block) -> list:
        counted = nginx.access_block_count(block.data)
        if counted is None:
            return super().feed_block(block)
        lines, requests, others = counted
        self.lines += lines
        self.consumed = block.end
        mine = self.requests
        for key, n in requests.items():
            mine[key] = mine.get(key, 0) + n
        return [item for data in others for item in self._items(data)]

    def take_requests(self) -> dict[tuple[datetime, str], int]:
        requests, self.requests = self.requests, {}
        return requests


class PyAssembler(Assembler):
    """Python logging records with their tracebacks (Django, gunicorn)."""

    def __init__(self, *, start: int, last_time: datetime | None, fallback_time: datetime):
        super().__init__(start=start)
        self.last_time = last_time
        self.fallback_time = fallback_time
        self._reset()

    def _reset(self) -> None:
        self.open_lines: list[str] | None = None
        self.open_head: pylog.Head | None = None
        self.open_start = 0
        self.open_end = 0
        self.open_bytes = 0
        self.open_cut = False
        self.tb_state = "none"  # none | frames | sep | done
        # The open record's lines, counted once it is taken: [lines, cut lines], garbage.
        self.open_counts = [0, 0]
        self.open_garbage: list[str] = []

    def feed(self, line: Line) -> list:
        if line.data is None:
            if self.open_lines is not None:
                self.open_end = line.end
            else:
                self.consumed = line.end
            return []
        text = decode(line.data)
        out = []
        if is_binary(text):
            # Binary or undecodable bytes belong to no record: counted, never kept in one.
            if self.open_lines is None:
                self._count(line)
                self.consumed = line.end
                out.append(self._unparsed(text))
            else:
                self._hold(line)
                self.open_end = line.end
                self.open_garbage.append(text)
            return out
        head = pylog.parse_head(text)
        # A traceback with no head line continues the open record when that record can carry
        # one (logger.exception and friends); otherwise it is a record of its own (an uncaught
        # exception printed to a captured stderr, after a gunicorn INFO line say).
        if (
            head is None
            and starts_traceback(text)
            and (
                self.open_lines is None
                or self.tb_state == "done"
                or self.open_head.level in ("INFO", "DEBUG")
            )
        ):
            head = pylog.Head(None, "", "", None, "")
        if head is not None:
            if self.open_lines is not None:
                out.extend(self._close())
            self._hold(line)
            self.open_lines, self.open_head = [text], head
            self.open_start, self.open_end = line.start, line.end
            self.open_bytes, self.open_cut = len(line.data), line.cut
            self.tb_state = "frames" if starts_traceback(text) else "none"
            return out
        if self.open_lines is None:
            self._count(line)
            self.consumed = line.end
            if text.strip():
                out.append(self._unparsed(text))
            return out
        self._hold(line)
        self.open_end = line.end
        self.open_cut |= line.cut
        if len(self.open_lines) < MAX_EVENT_LINES and self.open_bytes < MAX_EVENT_BYTES:
            self.open_lines.append(text)
            self.open_bytes += len(line.data)
        else:
            self.open_cut = True
        self._track(text)
        return out

    def _track(self, text: str) -> None:
        """Follow the open record's traceback closely enough to know whether it has ended."""
        stripped = text.strip()
        if not stripped:
            return
        body = text.lstrip(" ")
        if body[:2] in ("| ", "+ ") or body == "|":
            body = body[2:]
        if starts_traceback(text) or stripped.endswith("Traceback (most recent call last):"):
            self.tb_state = "frames"
        elif stripped in (CAUSE, CONTEXT):
            self.tb_state = "sep"
        elif CLOSE_RE.match(text):
            self.tb_state = "done"
        elif FRAME_RE.match(body) or text.startswith(" "):
            if self.tb_state == "sep":
                self.tb_state = "frames"
        elif self.tb_state == "frames":
            self.tb_state = "done"

    def _complete(self) -> bool:
        if self.tb_state in ("frames", "sep"):
            return False
        if self.tb_state == "none":
            return not pylog.expects_traceback(self.open_head.message)
        tb = parse_traceback(self.open_lines)
        return tb is None or tb.complete

    def finish(self, *, eof: bool, final: bool, quiet: bool) -> list:
        if self.open_lines is None:
            return []
        stuck = not eof and self.consumed == self.start
        if final or stuck or (eof and (quiet or self._complete())):
            if stuck:
                self.open_cut = True
            return self._close()
        return []

    def _count(self, line: Line) -> None:
        self.lines += 1
        self.cut += line.cut

    def _hold(self, line: Line) -> None:
        self.open_counts[0] += 1
        self.open_counts[1] += line.cut

    def _close(self) -> list:
        """The open record (after the garbage lines met inside it), now consumed and counted."""
        head, lines = self.open_head, self.open_lines
        if head.time is not None:
            time, exact = head.time, True
            self.last_time = head.time
        else:
            time, exact = self.last_time or self.fallback_time, False
        tb = parse_traceback(lines) if len(lines) > 1 or not head.message else None
        record = pylog.PyRecord(
            time=time,
            time_exact=exact,
            level=head.level,
            logger=head.logger,
            pid=head.pid,
            message=head.message,
            lines=lines,
            traceback=tb,
            request_path=pylog.request_path_of(head.message),
            cut=self.open_cut,
        )
        self.lines += self.open_counts[0]
        self.cut += self.open_counts[1]
        out: list = [self._unparsed(text) for text in self.open_garbage]
        out.append(record)
        self.consumed = self.open_end
        self._reset()
        return out


def make_assembler(
    kind: str, *, start: int, last_time: datetime | None, fallback_time: datetime
) -> Assembler:
    if kind == "nginx_access":
        return AccessAssembler(start=start)
    if kind == "nginx_error":
        return LineAssembler(start=start, parse=nginx.parse_error)
    return PyAssembler(start=start, last_time=last_time, fallback_time=fallback_time)
