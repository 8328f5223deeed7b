"""NGINX access logs (`combined`, and the JSON `log_format` in docs/sre-logging.md) and error logs.

Access: `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
"$http_referer" "$http_user_agent"` (also `common`, and extra fields after it are ignored), or one
JSON object per line with at least a time and `status` (`$time_iso8601` or `$time_local`,
`$request_uri` or `$request`, `$request_id`, `$upstream_status`, `$request_time`).

Error: `2025/03/14 09:41:07 [error] 31#31: *5123 <message>, client: ..., server: ...,
request: "GET /x HTTP/1.1", upstream: "http://127.0.0.1:8000/x", host: "..."`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from operator import itemgetter
from urllib.parse import unquote

from django.utils import timezone as dj_timezone

from sre.logs.fingerprint import route_of
from sre.logs.pylog import in_range, parse_time

_Q = r'"(?P<{}>[^"\\]*(?:\\.[^"\\]*)*)"'
COMBINED_RE = re.compile(
    r"^(?P<addr>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "
    + _Q.format("request")
    + r" (?P<status>\d{3}) (?P<bytes>\d+|-)"
    + r"(?: "
    + _Q.format("referer")
    + " "
    + _Q.format("ua")
    + r")?(?P<rest>.*)$"
)
TIME_LOCAL_RE = re.compile(
    r"^(\d{2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$"
)
MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}
ERROR_RE = re.compile(
    r"^(?P<time>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) \[(?P<level>[a-z]+)\] "
    r"(?P<pid>\d+)#(?P<tid>\d+): (?:\*(?P<cid>\d+) )?(?P<rest>.*)$"
)
ERROR_FIELD_RE = re.compile(r', (?P<key>[a-z_]+): (?:"(?P<q>[^"\\]*(?:\\.[^"\\]*)*)"|(?P<v>[^,]*))')
ERROR_FIELDS = ("client", "server", "request", "upstream", "host", "referrer", "subrequest")
ERROR_LEVELS = ("error", "crit", "alert", "emerg")


@dataclass(slots=True)
class AccessEntry:
    time: datetime
    status: int
    method: str
    path: str  # decoded, without the query string
    remote_addr: str = ""
    request_id: str = ""
    upstream_status: str = ""
    request_time: float | None = None
    line: str = ""


@dataclass
class NginxError:
    time: datetime
    level: str
    pid: int
    connection: int | None
    message: str
    fields: dict[str, str] = field(default_factory=dict)
    line: str = ""

    @property
    def request_path(self) -> str:
        return split_request(self.fields.get("request", ""))[1]


_time_cache: dict[str, datetime] = {}


def parse_time_local(text: str) -> datetime | None:
    """`14/Mar/2025:09:26:53 +0000` (NGINX's $time_local), without the locale."""
    cached = _time_cache.get(text)
    if cached is not None:
        return cached
    m = TIME_LOCAL_RE.match(text)
    if not m or m.group(2) not in MONTHS:
        return None
    day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
    offset = timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == "+" else -1)
    try:
        value = datetime(
            int(year), MONTHS[mon], int(day), int(hh), int(mm), int(ss),
            tzinfo=timezone(offset) if offset else UTC,
        )  # fmt: skip
    except ValueError:
        return None
    if not in_range(value):
        return None
    if len(_time_cache) > 4096:
        _time_cache.clear()
    _time_cache[text] = value
    return value


def split_request(request: str) -> tuple[str, str]:
    """`GET /a/b?x=1 HTTP/1.1` -> ("GET", "/a/b"); anything else -> ("", "")."""
    parts = request.split(" ")
    if len(parts) < 2 or not parts[0].isalpha() or not parts[1].startswith("/"):
        return "", ""
    return parts[0][:16], unquote(parts[1].split("?", 1)[0])[:2000]


def parse_access(line: str) -> AccessEntry | None:
    if line.startswith("{"):
        return _parse_access_json(line)
    m = COMBINED_RE.match(line)
    if not m:
        return None
    time = parse_time_local(m.group("time"))
    if time is None:
        return None
    method, path = split_request(m.group("request"))
    return AccessEntry(time, int(m.group("status")), method, path, m.group("addr"), line=line)


def _parse_access_json(line: str) -> AccessEntry | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        status = int(data.get("status"))
    except (TypeError, ValueError, OverflowError):  # OverflowError: `Infinity`
        return None
    if not 0 <= status <= 999:  # what a three-digit $status can be
        return None
    raw_time = str(data.get("time") or data.get("time_iso8601") or data.get("@timestamp") or "")
    time = parse_time(raw_time) if raw_time[:1].isdigit() and "-" in raw_time[:5] else None
    if time is None:
        time = parse_time_local(str(data.get("time_local") or raw_time))
    if time is None:
        return None
    method = str(data.get("method") or data.get("request_method") or "")[:16]
    uri = str(data.get("uri") or data.get("request_uri") or data.get("path") or "")
    if not uri and data.get("request"):
        method, uri = split_request(str(data["request"]))
    path = unquote(uri.split("?", 1)[0])[:2000] if uri.startswith("/") else ""
    try:
        request_time = float(data["request_time"]) if "request_time" in data else None
    except (TypeError, ValueError):
        request_time = None
    return AccessEntry(
        time,
        status,
        method,
        path,
        str(data.get("remote_addr") or "")[:64],
        str(data.get("request_id") or "")[:64],
        str(data.get("upstream_status") or "")[:64],
        request_time,
        line,
    )


# The fast path: one regex over a block of lines finds, in each line of the common shape, the
# minute, the zone and the path, and takes every other line whole. It accepts only lines that
# `parse_access` parses the same way: printable ASCII up to the byte count (so decoding and the
# Unicode `\S` and `\d` change nothing), no `{` first (JSON), no escape in the request, a month's
# name, a status below 500 (5xx lines are stored one by one, so they take the full parse). What
# follows the byte count is never looked at: COMBINED_RE's optional referer and user agent and
# its `rest` accept anything.
_FIELD = rb"[\x21-\x7e]+"
FAST_ACCESS_RE = re.compile(
    rb"(?:[\x21-\x7a\x7c-\x7e][\x21-\x7e]* " + _FIELD + b" " + _FIELD + b" "
    rb"\[(\d\d/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}:\d\d:\d\d)"
    rb":[0-5]\d ([+-]\d{4})\] "
    # The method, the path (up to `?`, a space or the quote), the query, the protocol. Each part
    # starts with a character the one before cannot take, so a line that fails is given up in
    # one pass (no backtracking through every split of a long path).
    rb'"[A-Za-z]+ (/[\x21\x23-\x3e\x40-\x5b\x5d-\x7e]*)(?:\?[\x21\x23-\x5b\x5d-\x7e]*)?'
    rb'(?: [\x20\x21\x23-\x5b\x5d-\x7e]*)?"'
    rb" [0-4]\d\d (?:\d+|-)[^\n]*|([^\n]*))\n"
)
_OTHER = itemgetter(3)
_CACHE_ENTRIES = 1 << 16
_CACHED_PATH_BYTES = 256
_minutes: dict[tuple[bytes, bytes], datetime | None] = {}
_routes: dict[bytes, str] = {}


def access_block_count(
    block: bytes,
) -> tuple[int, dict[tuple[datetime, str], int], list[bytes]] | None:
    """Count a block's common lines by (minute, route); return the other lines for parse_access.

    `block` is whole lines, each ending with a line break. Returns the number of lines, the
    counts of the lines the fast path took (none of them a 5xx) and the other non-empty lines in
    order, without their line break; or None when a line of the common shape has a time that does not
    parse (a 30 February, say): the caller then parses the block line by line.
    """
    found = FAST_ACCESS_RE.findall(block)
    counts: dict[tuple[datetime, str], int] = {}
    minute_get, route_get, count_get = _minutes.get, _routes.get, counts.get
    others = False
    for (minute, zone, target, _), n in Counter(found).items():
        if not minute:
            others = True
            continue
        at = minute_get((minute, zone), False)
        if at is False:
            at = _minute_of(minute, zone)
        if at is None:
            return None
        key = (at, route_get(target) or _route_of(target))
        counts[key] = count_get(key, 0) + n
    # The other lines in order; empty ones (no event, already counted as lines) left out.
    return len(found), counts, list(filter(None, map(_OTHER, found))) if others else []


def _minute_of(minute: bytes, zone: bytes) -> datetime | None:
    """The minute's start. Whether a time parses never depends on its second (00 to 59)."""
    if len(_minutes) >= _CACHE_ENTRIES:
        _minutes.clear()
    at = _minutes[(minute, zone)] = parse_time_local(f"{minute.decode()}:00 {zone.decode()}")
    return at


def _route_of(target: bytes) -> str:
    route = route_of(unquote(target.decode("ascii"))[:2000]) or "(no path)"
    # Long paths are not kept: the cache stays small whatever a log holds (64 KiB lines, say).
    if len(target) <= _CACHED_PATH_BYTES:
        if len(_routes) >= _CACHE_ENTRIES:
            _routes.clear()
        _routes[target] = route
    return route


def parse_error(line: str) -> NginxError | None:
    m = ERROR_RE.match(line)
    if not m:
        return None
    try:
        time = dj_timezone.make_aware(
            datetime.strptime(m.group("time"), "%Y/%m/%d %H:%M:%S"),
            dj_timezone.get_default_timezone(),
        )
    except ValueError:
        return None
    if not in_range(time):
        return None
    rest = m.group("rest")
    # The message ends where the trailing `, client: ...` fields begin.
    cut = len(rest)
    for key in ("client", "server"):
        at = rest.find(f", {key}: ")
        if at >= 0:
            cut = min(cut, at)
    fields = {}
    for fm in ERROR_FIELD_RE.finditer(rest, cut):
        if fm.group("key") in ERROR_FIELDS:
            fields[fm.group("key")] = (
                fm.group("q") if fm.group("q") is not None else fm.group("v")
            )[:2000]
    cid = m.group("cid")
    return NginxError(
        time=time,
        level=m.group("level"),
        pid=int(m.group("pid")),
        connection=int(cid) if cid else None,
        message=rest[:cut],
        fields=fields,
        line=line,
    )
