"""Every parser on realistic lines; lines nobody can parse are counted, never fatal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sre.logs import nginx, pylog
from sre.logs.classify import classify
from sre.logs.tracebacks import parse_traceback
from sre.models import Incident, LogCheckpoint, Occurrence
from tests.sre.logfiles import DATA, scan_one

UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15"


# --- NGINX access -----------------------------------------------------------------------------


def test_combined_access_line():
    line = (
        '203.0.113.7 - alice [14/Mar/2025:09:26:53 +0100] "GET /api/users/42/profile?x=1%202 '
        f'HTTP/2.0" 500 145 "https://shop.example.com/a \\x22quoted\\x22" "{UA}"'
    )
    entry = nginx.parse_access(line)
    assert entry.time == datetime(2025, 3, 14, 8, 26, 53, tzinfo=UTC)
    assert (entry.status, entry.method, entry.path) == (500, "GET", "/api/users/42/profile")
    assert entry.remote_addr == "203.0.113.7" and entry.line == line


def test_common_format_and_extra_fields_after_combined():
    assert (
        nginx.parse_access(
            '10.0.0.1 - - [14/Mar/2025:09:26:53 +0000] "POST /login HTTP/1.1" 302 0'
        ).status
        == 302
    )
    extended = (
        '10.0.0.1 - - [14/Mar/2025:09:26:53 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8.5" 0.012 "-"'
    )
    assert nginx.parse_access(extended).status == 200


def test_a_tls_handshake_sent_to_the_http_port_is_a_request_without_a_path():
    line = r'45.9.20.1 - - [14/Mar/2025:09:26:53 +0000] "\x16\x03\x01\x00\xFC\x01\x00\x00\xF8\x03\x03" 400 157 "-" "-"'
    entry = nginx.parse_access(line)
    assert (entry.status, entry.method, entry.path) == (400, "", "")


def test_documented_json_access_line():
    line = (
        '{"time":"2025-03-14T09:26:53+00:00","remote_addr":"203.0.113.7",'
        '"request_id":"5c3f0a9e2b7d4c1f8e6a9b0c1d2e3f40","method":"GET",'
        '"uri":"/api/users/42/profile?tab=1","status":502,"body_bytes_sent":157,'
        '"request_time":30.004,"upstream_status":"502","upstream_response_time":"30.001",'
        '"upstream_addr":"127.0.0.1:8000","http_referer":"","http_user_agent":"curl/8.5.0"}'
    )
    entry = nginx.parse_access(line)
    assert entry.time == datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
    assert (entry.status, entry.path, entry.request_id) == (
        502,
        "/api/users/42/profile",
        "5c3f0a9e2b7d4c1f8e6a9b0c1d2e3f40",
    )
    assert entry.upstream_status == "502" and entry.request_time == pytest.approx(30.004)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "not a log line",
        '{"status": "abc"}',
        '{"time": "yesterday", "status": 200}',
        "[1, 2, 3]",
        '10.0.0.1 - - [99/Foo/2025:09:26:53 +0000] "GET / HTTP/1.1" 200 5 "-" "-"',
    ],
)
def test_access_lines_that_are_not_access_lines(line):
    assert nginx.parse_access(line) is None


# --- NGINX error ------------------------------------------------------------------------------

REFUSED = (
    "2025/03/14 09:41:07 [error] 31#31: *5123 connect() failed (111: Connection refused) while "
    'connecting to upstream, client: 203.0.113.7, server: shop.example.com, request: "GET '
    '/api/users/42/profile HTTP/1.1", upstream: "http://127.0.0.1:8000/api/users/42/profile", '
    'host: "shop.example.com", referrer: "https://shop.example.com/account"'
)


def test_error_line_with_all_its_fields():
    entry = nginx.parse_error(REFUSED)
    assert (entry.level, entry.pid, entry.connection) == ("error", 31, 5123)
    assert entry.message == (
        "connect() failed (111: Connection refused) while connecting to upstream"
    )
    assert entry.fields == {
        "client": "203.0.113.7",
        "server": "shop.example.com",
        "request": "GET /api/users/42/profile HTTP/1.1",
        "upstream": "http://127.0.0.1:8000/api/users/42/profile",
        "host": "shop.example.com",
        "referrer": "https://shop.example.com/account",
    }
    assert entry.request_path == "/api/users/42/profile"
    assert entry.time.isoformat() == "2025-03-14T09:41:07+00:00"


def test_upstream_refused_is_an_infrastructure_signal_keyed_by_the_upstream():
    signal = classify(nginx.parse_error(REFUSED))
    assert (signal.category, signal.infra_kind) == ("infrastructure", "upstream_refused")
    assert signal.title == "Upstream connection refused (127.0.0.1:8000)"
    assert signal.request_path == "/api/users/42/profile"


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (
            "upstream timed out (110: Connection timed out) while reading response header from upstream",
            "upstream_timeout",
        ),
        (
            "upstream prematurely closed connection while reading response header from upstream",
            "upstream_closed",
        ),
        (
            "recv() failed (104: Connection reset by peer) while reading response header from upstream",
            "upstream_closed",
        ),
        ("no live upstreams while connecting to upstream", "upstream_unavailable"),
        (
            "connect() to unix:/run/gunicorn.sock failed (2: No such file or directory) while connecting to upstream",
            "upstream_unavailable",
        ),
    ],
)
def test_other_upstream_failures(message, kind):
    line = f"2025/03/14 09:41:07 [error] 31#31: *7 {message}, client: 10.0.0.1, server: _"
    assert classify(nginx.parse_error(line)).infra_kind == kind


def test_a_missing_static_file_is_counted_but_no_incident():
    line = (
        '2025/03/14 09:41:07 [error] 31#31: *9 open() "/usr/share/nginx/html/favicon.ico" failed '
        '(2: No such file or directory), client: 10.0.0.1, server: _, request: "GET /favicon.ico HTTP/1.1"'
    )
    entry = nginx.parse_error(line)
    assert entry.fields["request"] == "GET /favicon.ico HTTP/1.1"
    assert classify(entry) is None
    notice = "2025/03/14 09:41:07 [notice] 1#1: signal process started"
    assert (
        nginx.parse_error(notice).level == "notice" and classify(nginx.parse_error(notice)) is None
    )


# --- Python logging heads -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "level", "logger", "message"),
    [
        (
            "2025-03-14 09:26:53,120 ERROR django.request Internal Server Error: /api/x",
            "ERROR",
            "django.request",
            "Internal Server Error: /api/x",
        ),
        (
            "2025-03-14 09:26:53,120 - django.request - ERROR - Internal Server Error: /api/x",
            "ERROR",
            "django.request",
            "Internal Server Error: /api/x",
        ),
        (
            "ERROR 2025-03-14 09:26:53,120 log 812 140233 Internal Server Error: /api/x",
            "ERROR",
            "",
            "log 812 140233 Internal Server Error: /api/x",
        ),
        (
            "[2025-03-14 09:31:02 +0000] [812] [CRITICAL] WORKER TIMEOUT (pid:1045)",
            "CRITICAL",
            "",
            "WORKER TIMEOUT (pid:1045)",
        ),
        (
            "ERROR:django.request:Internal Server Error: /api/x",
            "ERROR",
            "django.request",
            "Internal Server Error: /api/x",
        ),
        (
            "Internal Server Error: /api/x",
            "ERROR",
            "django.request",
            "Internal Server Error: /api/x",
        ),
    ],
)
def test_python_log_heads(line, level, logger, message):
    head = pylog.parse_head(line)
    assert (head.level, head.logger, head.message) == (level, logger, message)
    assert pylog.request_path_of(head.message) == "/api/x" or "WORKER" in message


def test_heads_carry_their_time_and_gunicorn_its_pid():
    head = pylog.parse_head(
        "[2025-03-14 09:31:02 +0200] [812] [INFO] Booting worker with pid: 1102"
    )
    assert head.time == datetime(2025, 3, 14, 7, 31, 2, tzinfo=UTC) and head.pid == 812
    naive = pylog.parse_head("2025-03-14 09:26:53,120 ERROR x.y boom")
    assert naive.time == datetime(2025, 3, 14, 9, 26, 53, 120000, tzinfo=UTC)


@pytest.mark.parametrize(
    "line",
    ['  File "x.py", line 1, in f', "KeyError: 'x'", "Traceback (most recent call last):", "hello"],
)
def test_lines_that_are_not_heads(line):
    assert pylog.parse_head(line) is None


# --- Tracebacks ---------------------------------------------------------------------------


def seed_record(index: int) -> list[str]:
    text = (DATA / "seed-django-error.log").read_text()
    records, current = [], []
    for line in text.splitlines():
        if pylog.parse_head(line) and current:
            records.append(current)
            current = []
        current.append(line)
    records.append(current)
    return records[index]


def test_a_real_django_500_with_a_direct_cause_and_carets():
    tb = parse_traceback(seed_record(0))
    assert tb.complete
    assert [(u.type, u.relation) for u in tb.units] == [("KeyError", ""), ("LookupError", "cause")]
    assert tb.final.message == "account 7: no user_profile in the upstream reply"
    frames = tb.units[1].frames
    assert [f.function for f in frames] == ["inner", "_get_response", "orders"]
    # Caret lines are not source: the source line is kept, the ^^^^ and ~~~~ are not.
    assert tb.units[0].frames[0].source_line == 'profile = reply["user_profile"]'
    assert frames[0].lineno == 55


def test_a_real_django_500_during_handling_of_another():
    record = seed_record(-1)
    assert record[0].endswith("Internal Server Error: /api/users/9/preferences")
    tb = parse_traceback(record)
    assert [(u.type, u.message, u.relation) for u in tb.units] == [
        ("KeyError", "'user_profile'", ""),
        ("KeyError", "'preferences'", "context"),
    ]


RECURSION = """Traceback (most recent call last):
  File "/srv/shop/shop/tree.py", line 12, in render
    return walk(node)
           ^^^^^^^^^^
  File "/srv/shop/shop/tree.py", line 4, in walk
    return walk(node.parent)
           ^^^^^^^^^^^^^^^^^
  File "/srv/shop/shop/tree.py", line 4, in walk
    return walk(node.parent)
           ^^^^^^^^^^^^^^^^^
  File "/srv/shop/shop/tree.py", line 4, in walk
    return walk(node.parent)
           ^^^^^^^^^^^^^^^^^
  [Previous line repeated 995 more times]
RecursionError: maximum recursion depth exceeded"""


def test_previous_line_repeated():
    tb = parse_traceback(RECURSION.splitlines())
    assert tb.complete and tb.final.type == "RecursionError"
    assert [f.repeat for f in tb.final.frames] == [0, 0, 0, 995]


GROUP = """  + Exception Group Traceback (most recent call last):
  |   File "/srv/shop/shop/sync.py", line 31, in sync_all
  |     async with asyncio.TaskGroup() as tg:
  |   File "/usr/lib/python3.11/asyncio/taskgroups.py", line 147, in __aexit__
  |     raise me from None
  | ExceptionGroup: unhandled errors in a TaskGroup (2 sub-exceptions)
  +-+---------------- 1 ----------------
    | Traceback (most recent call last):
    |   File "/srv/shop/shop/sync.py", line 12, in pull
    |     data = reply["user_profile"]
    |            ~~~~~^^^^^^^^^^^^^^^^
    | KeyError: 'user_profile'
    +---------------- 2 ----------------
    | ExceptionGroup: retries (1 sub-exception)
    +-+---------------- 1 ----------------
      | TimeoutError: upstream took 30 s
      +------------------------------------"""


def test_an_exception_group_with_a_nested_group():
    tb = parse_traceback(GROUP.splitlines())
    assert tb.complete
    assert [(u.depth, u.type, u.is_group) for u in tb.units] == [
        (0, "ExceptionGroup", True),
        (1, "KeyError", False),
        (1, "ExceptionGroup", True),
        (2, "TimeoutError", False),
    ]
    assert [f.function for f in tb.units[1].frames] == ["pull"]
    assert tb.units[1].frames[0].source_line == 'data = reply["user_profile"]'
    assert tb.final.line == "ExceptionGroup: unhandled errors in a TaskGroup (2 sub-exceptions)"
    # Without its closing line the group is not finished yet.
    assert not parse_traceback(GROUP.splitlines()[:-1]).complete


def test_an_unfinished_traceback_is_not_complete():
    lines = seed_record(0)
    assert parse_traceback(lines[:6]).complete  # ends on an exception line: cannot tell
    assert not parse_traceback(lines[:8]).complete  # stops at the separator
    assert not parse_traceback(lines[:4]).complete  # stops in the frames


# --- gunicorn, and whole files --------------------------------------------------------------

GUNICORN = """[2025-03-14 09:30:01 +0000] [812] [INFO] Starting gunicorn 22.0.0
[2025-03-14 09:30:01 +0000] [812] [INFO] Listening at: unix:/run/gunicorn.sock (812)
[2025-03-14 09:30:01 +0000] [1045] [INFO] Booting worker with pid: 1045
[2025-03-14 09:31:02 +0000] [812] [CRITICAL] WORKER TIMEOUT (pid:1045)
[2025-03-14 09:31:02 +0000] [1045] [ERROR] Error handling request /api/reports/export
Traceback (most recent call last):
  File "/srv/shop/.venv/lib/python3.11/site-packages/gunicorn/workers/sync.py", line 134, in handle
    self.handle_request(listener, req, client, addr)
  File "/srv/shop/.venv/lib/python3.11/site-packages/gunicorn/workers/sync.py", line 177, in handle_request
    respiter = self.wsgi(environ, resp.start_response)
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/shop/shop/reports.py", line 40, in export
    rows = list(build_rows(query))
           ^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/shop/.venv/lib/python3.11/site-packages/gunicorn/workers/base.py", line 204, in handle_abort
    sys.exit(1)
SystemExit: 1
[2025-03-14 09:31:02 +0000] [1045] [INFO] Worker exiting (pid: 1045)
[2025-03-14 09:31:03 +0000] [812] [ERROR] Worker (pid:1045) exited with code 1
[2025-03-14 09:31:03 +0000] [1102] [INFO] Booting worker with pid: 1102
[2025-03-14 09:40:12 +0000] [812] [ERROR] Worker (pid:1102) was sent SIGKILL! Perhaps out of memory?
"""


@pytest.mark.django_db
def test_gunicorn_worker_timeout_and_oom_kill_are_escalated_infrastructure(logs, source):
    log = logs("gunicorn.log").write(GUNICORN)
    scan_one(source("gunicorn", log.path, read_existing=True))
    incidents = {i.infrastructure_kind: i for i in Incident.objects.all()}
    assert set(incidents) == {"worker_timeout", "worker_exit", "out_of_memory"}
    for incident in incidents.values():
        assert incident.category == "infrastructure" and incident.status == "escalated"
        assert incident.needs_escalation
    # The WORKER TIMEOUT line and the aborted worker's SystemExit traceback: one incident.
    assert incidents["worker_timeout"].occurrences == 2
    assert incidents["worker_timeout"].title == "gunicorn worker timeout"
    assert not Incident.objects.filter(category="code").exists()


@pytest.mark.django_db
def test_nginx_upstream_refused_becomes_an_escalated_incident(logs, source):
    log = logs("nginx-error.log").write(
        REFUSED + "\n" + REFUSED.replace("09:41:07", "09:41:09") + "\n"
    )
    scan_one(source("nginx_error", log.path, read_existing=True))
    incident = Incident.objects.get()
    assert (incident.infrastructure_kind, incident.status, incident.occurrences) == (
        "upstream_refused",
        "escalated",
        2,
    )


GARBAGE = b"".join(
    [
        b"\x00\x00\x00\x00\x7fELF\x02\x01\x01\n",
        b"\xff\xfe\xfa not utf-8 \xc3\x28\n",
        b"random words that are no log line\n",
    ]
)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["nginx_access", "nginx_error", "gunicorn", "django"])
def test_lines_nobody_can_parse_are_counted_never_fatal(kind, logs, source):
    log = logs(f"{kind}.log").write(GARBAGE)
    good = {
        "nginx_access": '10.0.0.1 - - [14/Mar/2025:09:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "-"\n',
        "nginx_error": REFUSED + "\n",
        "gunicorn": "[2025-03-14 09:31:02 +0000] [812] [CRITICAL] WORKER TIMEOUT (pid:1045)\n",
        "django": "2025-03-14 09:26:53,120 ERROR shop.jobs Nightly export failed\n",
    }[kind]
    log.append(good)
    src = source(kind, log.path, read_existing=True)
    report = scan_one(src)
    assert report.error == ""
    assert report.unparsed == 3
    cp = LogCheckpoint.objects.get(source=src)
    assert cp.unparsed_lines == 3 and cp.offset == log.size
    assert len(cp.unparsed_samples) == 3
    assert "\x00" not in "".join(cp.unparsed_samples)  # storable on PostgreSQL
    assert (kind == "nginx_access") or Occurrence.objects.count() == 1


@pytest.mark.django_db
def test_a_message_with_no_traceback_groups_by_its_text(logs, source):
    log = logs("error.log").write(
        "2025-03-14 09:26:53,120 ERROR shop.sync Sync of order 1842 for ada@example.com failed: "
        "https://api.example.com/v1/orders/1842 returned 503\n"
        "2025-03-14 09:27:53,120 ERROR shop.sync Sync of order 77 for bob@example.org failed: "
        "https://api.example.com/v1/orders/77 returned 503\n"
        "2025-03-14 09:28:53,120 WARNING shop.sync Sync slow\n"
    )
    scan_one(source("django", log.path, read_existing=True))
    incident = Incident.objects.get()
    assert (incident.category, incident.occurrences) == ("message", 2)


@pytest.mark.django_db
def test_a_bare_traceback_on_captured_stderr_after_an_info_line_is_its_own_record(logs, source):
    log = logs("gunicorn.log").write(
        "[2025-03-14 09:30:01 +0000] [1045] [INFO] Booting worker with pid: 1045\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/shop/shop/cron.py", line 3, in tick\n'
        "    1 / 0\n"
        "ZeroDivisionError: division by zero\n"
    )
    scan_one(source("gunicorn", log.path, read_existing=True))
    occurrence = Occurrence.objects.get()
    assert occurrence.incident.title == "ZeroDivisionError: division by zero (shop/cron.py in tick)"
    # No timestamp of its own: the time of the line before it.
    assert not occurrence.time_exact and occurrence.occurred_at.minute == 30
