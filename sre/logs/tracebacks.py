"""Python tracebacks as printed by the `traceback` module (3.8 to 3.13), parsed into data.

Handles chained exceptions (both separators), 3.11+ caret lines (`^^^^`, `~~~~`),
`[Previous line repeated N more times]`, SyntaxError's location lines, and exception groups:
`+ Exception Group Traceback` with its `| ` margins, numbered sub-exceptions and nested groups.
The result lists every exception in print order (the root cause first, the one that ended the
request last), each with its depth inside exception groups (0 outside any).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TB_HEADER = "Traceback (most recent call last):"
GROUP_HEADER = "Exception Group Traceback (most recent call last):"
CAUSE = "The above exception was the direct cause of the following exception:"
CONTEXT = "During handling of the above exception, another exception occurred:"

FRAME_RE = re.compile(r'^\s*File "(?P<file>[^"]*)", line (?P<line>\d+)(?:, in (?P<func>.+?))?\s*$')
REPEAT_RE = re.compile(r"^\s*\[Previous line repeated (?P<n>\d+) more times?\]\s*$")
CARET_RE = re.compile(r"^\s*[\^~]+[\s\^~]*$")
SUB_RE = re.compile(r"^ *(?:\+-)?\+-{16} (?:\d+|\.\.\.) -{16}\s*$")
CLOSE_RE = re.compile(r"^ *\+-{36}\s*$")
MARGIN_RE = re.compile(r"^(?P<ind>(?:  )+)(?P<m>[|+])(?: (?P<rest>.*))?$")
EXC_RE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::(?: (?P<msg>.*))?)?$")
GROUP_MSG_RE = re.compile(r"\(\d+ sub-exceptions?\)\s*$")
GROUP_START_RE = re.compile(r"^ *\+ Exception Group Traceback \(most recent call last\):\s*$")


@dataclass
class Frame:
    filename: str
    lineno: int | None
    function: str
    source: list[str] = field(default_factory=list)
    repeat: int = 0

    @property
    def source_line(self) -> str:
        """The source shown under the frame, whitespace collapsed ('' when none is shown)."""
        return " ".join(" ".join(self.source).split())


@dataclass
class ExceptionUnit:
    depth: int
    relation: str = ""  # "cause" / "context": the separator printed before this exception
    type: str = ""
    message: str = ""
    frames: list[Frame] = field(default_factory=list)
    is_group: bool = False

    @property
    def line(self) -> str:
        first = self.message.split("\n", 1)[0]
        return f"{self.type}: {first}" if first else self.type


@dataclass
class ParsedTraceback:
    units: list[ExceptionUnit]
    complete: bool

    @property
    def final(self) -> ExceptionUnit:
        """The exception that ended it: the last one printed outside any exception group."""
        for unit in reversed(self.units):
            if unit.depth == 0:
                return unit
        return self.units[-1]


def starts_traceback(line: str) -> bool:
    return line == TB_HEADER or bool(GROUP_START_RE.match(line))


def parse_traceback(lines: list[str]) -> ParsedTraceback | None:
    """Parse the lines of one logged traceback (anything before the first header is skipped)."""
    units: list[ExceptionUnit] = []
    cur: ExceptionUnit | None = None
    frame: Frame | None = None
    state = "start"  # start | frames | exc | sep | sub | closed
    relation = ""
    group_mode = False
    seen_header = False
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not group_mode and GROUP_START_RE.match(line):
            group_mode = True
        margin = 0
        if group_mode:
            if SUB_RE.match(line):
                state, cur, frame = "sub", None, None
                continue
            if CLOSE_RE.match(line):
                state, cur, frame = "closed", None, None
                continue
            if m := MARGIN_RE.match(line):
                margin = len(m.group("ind")) // 2
                line = m.group("rest") or ""
        depth = max(margin - 1, 0)
        stripped = line.strip()
        if not stripped:
            continue
        if stripped in (CAUSE, CONTEXT):
            relation = "cause" if stripped == CAUSE else "context"
            state, cur, frame = "sep", None, None
            continue
        if stripped in (TB_HEADER, GROUP_HEADER):
            seen_header = True
            cur = ExceptionUnit(depth=depth, relation=relation, is_group=stripped == GROUP_HEADER)
            units.append(cur)
            relation, frame, state = "", None, "frames"
            continue
        if not seen_header:
            continue
        if state == "frames":
            if m := FRAME_RE.match(line):
                func = m.group("func") or ""
                frame = Frame(m.group("file"), int(m.group("line")), func)
                cur.frames.append(frame)
                continue
            if m := REPEAT_RE.match(line):
                if frame is not None:
                    frame.repeat += int(m.group("n"))
                continue
            if line.startswith(" "):
                if frame is not None and not CARET_RE.match(line) and line.startswith("    "):
                    frame.source.append(stripped)
                continue
            _set_exception(cur, line)
            state = "exc"
            continue
        if state == "exc" and cur is not None and cur.depth == depth:
            cur.message = f"{cur.message}\n{line}" if cur.message else line
            continue
        if state in ("sub", "closed", "sep", "exc", "start") and EXC_RE.match(stripped):
            # An exception printed without a traceback: a sub-exception never raised.
            cur = ExceptionUnit(depth=depth, relation=relation)
            _set_exception(cur, stripped)
            units.append(cur)
            relation, frame, state = "", None, "exc"
    if not units:
        return None
    last = units[-1]
    complete = state == "closed" or (
        state == "exc" and (not group_mode or (last.depth == 0 and not last.is_group))
    )
    return ParsedTraceback(units=units, complete=complete)


def _set_exception(unit: ExceptionUnit, line: str) -> None:
    m = EXC_RE.match(line)
    if m:
        unit.type, unit.message = m.group("type"), m.group("msg") or ""
    else:
        unit.type, unit.message = "", line
    if unit.type.endswith("ExceptionGroup") or GROUP_MSG_RE.search(unit.message):
        unit.is_group = True
