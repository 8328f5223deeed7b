"""Python logging records (Django's error log, gunicorn's error log and captured stderr).

A record starts with a head line and may go on with a traceback. Head lines recognised:
- gunicorn: `[2025-03-14 09:31:02 +0000] [812] [CRITICAL] WORKER TIMEOUT (pid:1045)`;
- time first, as in `%(asctime)s %(levelname)s %(name)s %(message)s` (with `-`, `[...]` or a
  logger name before the level): `2025-03-14 09:26:53,120 ERROR django.request Internal ...`;
- level first, as in Django's documented "verbose" format: `ERROR 2025-03-14 09:26:53,120 ...`;
- logging's basicConfig default: `ERROR:django.request:Internal Server Error: /api/profile`;
- Django's message alone (a console handler without a formatter): `Internal Server Error: /x`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.utils import timezone

from sre.logs.tracebacks import ParsedTraceback

_LEVEL = r"DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL|EXCEPTION"
_TS = r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?: ?(?:Z|[+-]\d{2}:?\d{2}|UTC))?"
TIME_FIRST = re.compile(
    rf"^\[?(?P<ts>{_TS})\]?(?:\s+-)?\s+(?:\[(?P<pid>\d+)\]\s+)?"
    rf"(?:(?P<logger0>[A-Za-z_][\w.]*)(?:\s+-)?\s+)??\[?(?P<level>{_LEVEL})\]?:?(?:\s+-)?\s+(?P<rest>.*)$"
)
LEVEL_FIRST = re.compile(rf"^\[?(?P<level>{_LEVEL})\]?:?\s+\[?(?P<ts>{_TS})\]?\s+(?P<rest>.*)$")
LEVEL_COLON = re.compile(rf"^(?P<level>{_LEVEL}):(?P<logger>[\w.]+):(?P<rest>.*)$")
BARE = re.compile(r"^(?P<rest>Internal Server Error: .*)$")
LOGGER_RE = re.compile(r"^(?P<logger>[A-Za-z_]\w*(?:\.\w+)+):?\s+(?:-\s+)?(?P<msg>.*)$")
PATH_RE = re.compile(r"(?:Internal Server Error|Error handling request):? (?P<path>/\S*)")
EXPECTS_TRACEBACK_RE = re.compile(
    r"Internal Server Error:|Error handling request|Exception in worker process"
)

ERROR_LEVELS = frozenset({"ERROR", "CRITICAL", "FATAL", "EXCEPTION"})


@dataclass
class Head:
    time: datetime | None
    level: str
    logger: str
    pid: int | None
    message: str


@dataclass
class PyRecord:
    time: datetime
    time_exact: bool
    level: str
    logger: str
    pid: int | None
    message: str  # the head line's message
    lines: list[str]  # the record as logged, head included
    traceback: ParsedTraceback | None = None
    request_path: str = ""
    cut: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def is_error(self) -> bool:
        return self.level in ERROR_LEVELS or not self.level


def parse_time(text: str) -> datetime | None:
    """An ISO-like log timestamp; a naive one is taken in the site's time zone."""
    text = text.strip().replace(",", ".").replace("T", " ")
    if text.endswith("UTC"):
        text = text[:-3].strip() + "+00:00"
    elif text.endswith("Z"):
        text = text[:-1] + "+00:00"
    m = re.match(r"^(.*?:\d{2})(\.\d+)?\s?([+-]\d{2}):?(\d{2})?$", text)
    if m:
        frac = (m.group(2) or "")[:7]
        text = f"{m.group(1)}{frac}{m.group(3)}:{m.group(4) or '00'}"
    else:
        m = re.match(r"^(.*?:\d{2})(\.\d+)?$", text)
        if m:
            text = f"{m.group(1)}{(m.group(2) or '')[:7]}"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return value if in_range(value) else None


def in_range(value: datetime) -> bool:
    """Whether the time is one datetime can also hold in UTC (not year 1 east of UTC, say)."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        return False
    return True


def parse_head(line: str) -> Head | None:
    """The head line of a logging record, or None when the line does not start one."""
    logger = ""
    m = TIME_FIRST.match(line)
    if m:
        logger = m.group("logger0") or ""
    else:
        m = LEVEL_FIRST.match(line)
    if m:
        time = parse_time(m.group("ts"))
        if time is None:
            return None
        rest = m.group("rest")
        if not logger and (lm := LOGGER_RE.match(rest)):
            logger, rest = lm.group("logger"), lm.group("msg")
        pid = m.groupdict().get("pid")
        return Head(time, _level(m.group("level")), logger, int(pid) if pid else None, rest)
    if m := LEVEL_COLON.match(line):
        return Head(None, _level(m.group("level")), m.group("logger"), None, m.group("rest"))
    if m := BARE.match(line):
        return Head(None, "ERROR", "django.request", None, m.group("rest"))
    return None


def _level(level: str) -> str:
    level = level.upper()
    return {"WARN": "WARNING", "FATAL": "CRITICAL", "EXCEPTION": "ERROR"}.get(level, level)


def request_path_of(message: str) -> str:
    m = PATH_RE.search(message)
    return m.group("path")[:2000] if m else ""


def expects_traceback(message: str) -> bool:
    return bool(EXPECTS_TRACEBACK_RE.search(message))
