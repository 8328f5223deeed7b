"""Random text, garbage bytes, huge lines and invalid UTF-8 through the log readers and parsers.

The parsers never raise and return what they say (an event or None); what they return can be
classified; and a whole file of garbage read by a scan is consumed and counted line by line:
every line is an event, part of a record, or counted as unparsed; none is lost or counted twice.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sre.logs import fingerprint, nginx, pylog
from sre.logs.assemble import Unparsed, decode, make_assembler
from sre.logs.classify import Signal, classify
from sre.logs.fingerprint import route_of
from sre.logs.scan import FileScan
from sre.logs.tail import Line, _lines_within
from sre.logs.tracebacks import ParsedTraceback, parse_traceback
from sre.services.windows import window_start
from tests.sre.logfiles import DATA

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MAX_LINE = 256  # the smallest line cap a scan takes (FileScan raises lower ones to it)

ACCESS_LINES = [
    *(DATA / "seed-nginx-access.log").read_text().splitlines()[:5],
    '10.0.0.1 - - [14/Mar/2025:09:26:53 +0000] "POST /login HTTP/1.1" 302 0',
    '{"time_iso8601":"2025-03-14T09:26:53+00:00","status":"502","request_uri":"/a?b=1",'
    '"request_id":"r1","upstream_status":"502","request_time":"0.5","remote_addr":"1.2.3.4"}',
    '{"time_local":"14/Mar/2025:09:26:53 +0000","status":504,"request":"GET /x HTTP/1.1"}',
]
ERROR_LINES = [
    "2025/03/14 09:41:07 [error] 31#31: *5123 connect() failed (111: Connection refused) while "
    'connecting to upstream, client: 10.0.0.1, server: shop, request: "GET /x HTTP/1.1", '
    'upstream: "http://127.0.0.1:8000/x", host: "shop.example.com"',
    "2025/03/14 09:41:07 [crit] 31#31: *1 upstream timed out (110: Connection timed out)",
    '2025/03/14 09:41:07 [error] 31#31: open() "/srv/static/x.png" failed (2: No such file)',
]
PY_LINES = (DATA / "seed-django-error.log").read_text().splitlines()[:40] + [
    "[2025-03-14 09:31:02 +0000] [812] [CRITICAL] WORKER TIMEOUT (pid:1045)",
    "ERROR 2025-03-14 09:26:53,120 views 812 Internal Server Error: /api/profile",
    "ERROR:django.request:Internal Server Error: /api/profile",
    "Internal Server Error: /api/profile",
    "  + Exception Group Traceback (most recent call last):",
    '  |   File "/srv/shop/shop/sync.py", line 31, in sync_all',
    "  | ExceptionGroup: unhandled errors in a TaskGroup (2 sub-exceptions)",
    "  +-+---------------- 1 ----------------",
    "    | Traceback (most recent call last):",
    "    | KeyError: 'user_profile'",
    "  +------------------------------------",
    "    [Previous line repeated 996 more times]",
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
    '  File "<string>", line 1',
    "SyntaxError: invalid syntax",
]


@st.composite
def mutated(draw, lines: list[str]) -> str:
    """A realistic line with a few random edits: deep enough to reach every branch."""
    text = draw(st.sampled_from(lines))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "digits", "cut"]))
        if op == "insert":
            text = text[:at] + draw(st.text(max_size=8)) + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 6)) :]
        elif op == "digits":
            text = text[:at] + str(draw(st.integers(-(10**30), 10**30))) + text[at:]
        else:
            text = text[:at]
    return text


def stamp(dt: datetime, offset_minutes: int, style: str) -> str:
    sign = "+" if offset_minutes >= 0 else "-"
    hh, mm = divmod(abs(offset_minutes), 60)
    if style == "local":
        return f"{dt:%d/%b/%Y:%H:%M:%S} {sign}{hh:02d}{mm:02d}"
    return f"{dt:%Y-%m-%dT%H:%M:%S}{sign}{hh:02d}:{mm:02d}"


# Every year, every zone NGINX and Python can print: the edges of datetime's range included.
any_time = st.builds(
    stamp,
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.integers(-(24 * 60 - 1), 24 * 60 - 1),
    st.sampled_from(["local", "iso"]),
)
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**40), 10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    any_time,
)
json_access = st.builds(
    lambda fields, extra: json.dumps({**extra, **fields}),
    st.fixed_dictionaries(
        {},
        optional={
            "status": st.one_of(json_scalar, st.integers(100, 599).map(str)),
            "time": st.one_of(json_scalar, any_time),
            "time_iso8601": any_time,
            "time_local": any_time,
            "request": json_scalar,
            "request_uri": st.one_of(json_scalar, st.text().map(lambda t: "/" + t)),
            "method": json_scalar,
            "request_time": json_scalar,
            "request_id": json_scalar,
            "upstream_status": json_scalar,
            "remote_addr": json_scalar,
        },
    ),
    st.dictionaries(st.text(max_size=5), json_scalar, max_size=3),
)
combined_access = st.builds(
    lambda addr, time, request, status: f'{addr} - - [{time}] "{request}" {status} 1 "-" "ua"',
    st.sampled_from(["10.0.0.1", "::1", "-"]),
    any_time.filter(lambda t: "/" in t),
    st.one_of(st.text(max_size=30), st.sampled_from(["GET /a%ff%00/b?x HTTP/1.1", "\\x16\\x03"])),
    st.integers(0, 999).map(lambda n: f"{n:03d}"),
)
garbage = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(decode),
    st.text(max_size=20).map(lambda t: t * 200),  # longer than any line cap
)


def minute_route(entry: nginx.AccessEntry) -> tuple[datetime, str]:
    """What the traffic windows count an access entry under."""
    return entry.time.replace(second=0, microsecond=0), route_of(entry.path) or "(no path)"


def assert_storable(time: datetime) -> None:
    """A parsed time must be one the windows and the database can hold."""
    assert time.tzinfo is not None
    time.astimezone(UTC)
    window_start(time)


def assert_classifies(item) -> None:
    signal = classify(item)
    assert signal is None or isinstance(signal, Signal)
    if signal is not None:
        assert signal.fingerprint and signal.title.strip() == signal.title.strip()
        assert_storable(signal.time)


@FUZZ
@given(st.one_of(garbage, mutated(ACCESS_LINES), json_access, combined_access))
@example('{"status": Infinity, "time": "2025-03-14T09:00:00+00:00"}')  # int(inf) raised
@example('{"status": 99999999999999999999, "time": "2025-03-14T09:00:00+00:00"}')
@example('{"status": -5, "time": "2025-03-14T09:00:00+00:00"}')
@example('1 - - [01/Jan/0001:00:00:00 +2359] "GET / HTTP/1.1" 500 1')  # before year 1 in UTC
@example('{"status": 500, "time": "9999-12-31T23:59:59-23:59"}')  # after year 9999 in UTC
def test_access_parser_on_anything(line):
    entry = nginx.parse_access(line)
    if entry is None:
        return
    assert isinstance(entry, nginx.AccessEntry)
    # What is stored: a status an HTTP server sends (a small positive integer), a real time.
    assert 0 <= entry.status <= 999
    assert_storable(entry.time)
    assert len(entry.path) <= 2000 and len(entry.method) <= 16
    assert_classifies(entry)


COMMON = '10.0.0.1 - - [14/Mar/2025:09:26:53 +0000] "GET /api/users/7/profile?x=1 HTTP/1.1" 200 5'


# Bytes at the edges of the fast path's shape: delimiters, an ANSI escape, a no-break space and
# an Arabic-Indic digit in UTF-8 (space and digit to the parser's Unicode `\s` and `\d`).
EDGES = [b" ", b'"', b"\\", b"?", b"{", b"\r", b"\x1b[0m", b"\xc2\xa0", b"\xd9\xa5", b"5"]


@st.composite
def mutated_bytes(draw, lines: list[str]) -> bytes:
    """A realistic line with a few bytes changed: the edges of the fast path's shape."""
    data = bytearray(draw(st.sampled_from(lines)).encode())
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(
            st.one_of(
                st.binary(min_size=1, max_size=3),
                st.sampled_from(EDGES),
            )
        )
    return bytes(data)


access_bytes = st.one_of(
    mutated_bytes([*ACCESS_LINES, COMMON]),
    st.one_of(mutated(ACCESS_LINES), combined_access, json_access, garbage).map(
        lambda t: t.encode("utf-8", "surrogatepass")
    ),
    st.binary(max_size=80),
)


@FUZZ
@given(st.lists(access_bytes, max_size=20))
@example([COMMON.encode()])
@example([COMMON.replace("200", "503").encode(), b"", b"\r", b" "])
@example([COMMON.replace(" - - ", " \xa0 - ").encode()])  # a Unicode space: not \S for str
@example([COMMON.replace("200", "\u0662\u0660\u0660").encode()])  # Arabic-Indic digits are \d
@example([COMMON.replace("/api", "/\x1b[1mapi").encode()])  # decode drops ANSI escapes
@example([COMMON.replace("14/Mar", "30/Feb").encode()])  # a minute that is no date
@example([COMMON.replace("+0000", "+2400").encode()])
@example([COMMON.replace("2025:09:26:53 +0000", "0001:00:00:30 +0001").encode()])
@example([COMMON.replace('profile?x=1 HTTP/1.1"', 'p\\" 200 1 x" 500 5').encode()])
@example([COMMON.replace("GET /api", "GET  /api").encode()])
@example([COMMON.replace("/api/users/7/profile", "/a%00%ff/7").encode()])
def test_the_fast_path_counts_what_parse_access_returns(lines):
    """A block's lines counted at once: each as `parse_access` sees it, the others in order."""
    raw = [line.replace(b"\n", b" ") for line in lines]
    got = nginx.access_block_count(b"".join(line + b"\n" for line in raw))
    expected = [nginx.parse_access(decode(line)) for line in raw]
    if got is None:
        # Only for a line of the common shape whose time does not parse: read line by line.
        assert None in expected
        assert any(nginx.access_block_count(line + b"\n") is None for line in raw)
        return
    n, counts, others = got
    assert n == len(raw)
    taken: Counter = Counter()
    rest = []
    for line, entry in zip(raw, expected, strict=True):
        one = nginx.access_block_count(line + b"\n")
        assert one is not None and one[0] == 1
        if one[1]:
            # Taken by the fast path: exactly what parse_access returns, and never a 5xx.
            assert entry is not None and entry.status < 500
            assert one[1] == {minute_route(entry): 1} and one[2] == []
            taken.update(one[1])
        else:
            # Left for parse_access, as it is (an empty line: nothing to parse).
            assert one[2] == ([line] if line else [])
            rest += one[2]
    assert Counter(counts) == taken and others == rest


def test_a_long_path_is_counted_but_not_kept_in_the_route_cache():
    path = "/a/" + "b" * 400 + "/7"
    line = COMMON.replace("/api/users/7/profile", path).encode() + b"\n"
    for _ in range(2):
        n, counts, others = nginx.access_block_count(line)
        assert (n, others) == (1, [])
        assert counts == {(datetime(2025, 3, 14, 9, 26, tzinfo=UTC), route_of(path)): 1}
    assert path.encode() not in nginx._routes


def test_a_long_request_without_its_quote_is_left_to_parse_access():
    """Given up in one pass: a regex that tried every split of the path took minutes here."""
    line = b'1.2.3.4 - - [14/Mar/2025:09:26:53 +0000] "GET /' + b"a" * 65000 + b"\n"
    assert nginx.access_block_count(line) == (1, {}, [line[:-1]])


def test_common_access_lines_take_the_fast_path():
    seed = (DATA / "seed-nginx-access.log").read_bytes()
    n, counts, others = nginx.access_block_count(seed)
    assert n == seed.count(b"\n")
    # Only the 5xx lines are left to parse one by one.
    assert [line.split(b'" ')[1][:3] for line in others] == [b"500"] * len(others)
    assert sum(counts.values()) + len(others) == n


@FUZZ
@given(st.one_of(garbage, mutated(ERROR_LINES)))
def test_error_log_parser_on_anything(line):
    entry = nginx.parse_error(line)
    if entry is not None:
        assert isinstance(entry, nginx.NginxError)
        assert_storable(entry.time)
        assert isinstance(entry.request_path, str)
        assert_classifies(entry)


@FUZZ
@given(
    st.one_of(
        garbage,
        mutated(PY_LINES),
        st.builds(lambda t, rest: f"{t.replace('T', ' ')} ERROR x.y {rest}", any_time, garbage),
    )
)
@example("0001-01-01 00:00:00+23:59 ERROR x.y boom")  # before year 1 in UTC
@example("9999-12-31 23:59:59-23:59 ERROR x.y boom")
def test_python_head_parser_on_anything(line):
    head = pylog.parse_head(line)
    if head is not None:
        assert isinstance(head, pylog.Head)
        if head.time is not None:
            assert_storable(head.time)
        assert isinstance(pylog.request_path_of(head.message), str)


@FUZZ
@given(st.lists(st.one_of(mutated(PY_LINES), garbage), max_size=30))
def test_traceback_parser_and_classification_on_anything(lines):
    tb = parse_traceback(lines)
    assert tb is None or (isinstance(tb, ParsedTraceback) and tb.units)
    if tb is not None:
        keys = fingerprint.traceback_keys(tb)
        assert keys.fingerprint
        assert tb.final in tb.units
    head = pylog.parse_head(lines[0]) if lines else None
    record = pylog.PyRecord(
        time=datetime(2025, 3, 14, tzinfo=UTC),
        time_exact=True,
        level=head.level if head else "ERROR",
        logger="",
        pid=None,
        message=head.message if head else "",
        lines=lines,
        traceback=tb,
    )
    assert_classifies(record)


# --- lines into events, counted -----------------------------------------------------------------

python_line = st.one_of(mutated(PY_LINES), garbage).map(lambda t: t.replace("\n", " "))


@FUZZ
@given(
    kind=st.sampled_from(["nginx_access", "nginx_error", "django"]),
    lines=st.lists(
        st.tuples(st.one_of(python_line, mutated(ACCESS_LINES)), st.booleans()), max_size=40
    ),
    data=st.data(),
)
def test_assemblers_count_each_line_once_it_is_consumed(kind, lines, data):
    """Fed lines one by one, an assembler counts exactly the lines before its `consumed`."""
    asm = make_assembler(kind, start=0, last_time=None, fallback_time=datetime.now(UTC))
    pos, ends, items = 0, [0], []
    for text, cut in lines:
        raw = text.encode("utf-8", "surrogatepass")
        line = Line(pos, pos + len(raw) + 1, raw, cut=cut)
        pos = line.end
        ends.append(pos)
        items += asm.feed(line)
        consumed = ends.index(asm.consumed)  # always at the end of a line
        assert asm.lines == consumed
        assert asm.cut == sum(c for _, c in lines[:consumed])
    items += asm.finish(eof=True, final=True, quiet=data.draw(st.booleans()))
    # A final file: everything is taken.
    assert asm.consumed == pos and asm.lines == len(lines)
    assert asm.cut == sum(c for _, c in lines)
    assert asm.unparsed == sum(isinstance(i, Unparsed) for i in items)
    for item in items:
        if not isinstance(item, Unparsed):
            assert_classifies(item)


def expected_reads(data: bytes, max_line: int) -> tuple[int, list[bytes]]:
    """What a scan of a live file holding `data` consumes, and the lines it starts before that.

    Complete lines are read; the unfinished last line waits, unless it is already over the cap
    (then its first bytes are a cut line and the rest is skipped when it comes)."""
    last = data.rfind(b"\n") + 1
    pieces = data[:last].split(b"\n")[:-1] if last else []
    if len(data) - last > max_line:
        return len(data), [*pieces, data[last:]]
    return last, pieces


log_bytes = st.lists(
    st.one_of(
        st.binary(max_size=40),
        python_line.map(lambda t: t.encode("utf-8", "surrogatepass")),
        mutated(ACCESS_LINES).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.sampled_from([b"\n", b"\r\n", b"\xff\xfe\xc3(\n", b"\x1b[31mred\x1b[0m\n", b"\x00\n"]),
        st.binary(max_size=4).map(lambda b: b * 300),  # a huge line
    ),
    max_size=30,
).map(lambda parts: b"\n".join(parts))


@FUZZ
@given(kind=st.sampled_from(["nginx_access", "nginx_error", "django"]), data=log_bytes)
@example(kind="django", data=b"x" * 600)  # one huge unfinished line: taken cut, not twice
def test_a_scan_of_garbage_consumes_and_counts_every_line(kind, data, tmp_path):
    path = Path(tmp_path) / "fuzz.log"
    path.write_bytes(data)
    scan = FileScan(
        path=str(path),
        kind=kind,
        checkpoint=None,
        from_start=True,
        max_bytes=1 << 20,
        max_line=MAX_LINE,
        settle_seconds=0,  # quiet: an open record is taken at the end
        now=datetime.now(UTC).timestamp() + 60,
        last_time=None,
    )
    batches = list(scan.batches())
    consumed, pieces = expected_reads(data, MAX_LINE)
    if batches:
        assert batches[-1].checkpoint.offset == consumed
    assert sum(b.bytes for b in batches) == consumed
    assert sum(b.lines for b in batches) == len(pieces)
    assert sum(b.cut for b in batches) == sum(len(p) > MAX_LINE for p in pieces)
    items = [i for b in batches for i in b.items]
    unparsed = sum(isinstance(i, Unparsed) for i in items)
    assert sum(b.unparsed for b in batches) == unparsed
    texts = [decode(p[:MAX_LINE]) for p in pieces]
    nonblank = sum(bool(t.strip()) for t in texts)
    if kind == "django":
        # A line is in a record or counted unparsed (blank lines may sit inside a record).
        in_records = sum(len(i.lines) for i in items if isinstance(i, pylog.PyRecord))
        assert nonblank <= in_records + unparsed <= len(pieces)
    else:
        # One event per non-blank line: parsed (an event, or for an access log a request
        # counted by minute and route), or counted unparsed.
        requests = sum((Counter(b.requests) for b in batches), Counter())
        assert len(items) + sum(requests.values()) == nonblank
    if kind == "nginx_access":
        # The same as parsing each line by itself: the same lines unparsed, the same 5xx lines
        # as events, every request counted in its minute and route.
        expected = [nginx.parse_access(t) for t in texts if t.strip()]
        assert unparsed == expected.count(None)
        events = [i for i in items if not isinstance(i, Unparsed)]
        assert [e.line for e in events if e.status >= 500] == [
            e.line for e in expected if e is not None and e.status >= 500
        ]
        assert Counter(map(minute_route, events)) + requests == Counter(
            minute_route(e) for e in expected if e is not None
        )
    for item in items:
        if not isinstance(item, Unparsed):
            assert_classifies(item)


@FUZZ
@given(
    lines=st.lists(st.integers(0, 700), max_size=30),
    max_line=st.integers(1, 600),
)
def test_the_reader_tells_a_block_with_a_line_over_the_cap(lines, max_line):
    """Its window check says what the lines' lengths say, at every cap and every length."""
    block = b"".join(b"x" * n + b"\n" for n in lines)
    assert _lines_within(block, max_line) == all(n <= max_line for n in lines)
