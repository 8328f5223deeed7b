"""Parsed events into signals: what may become an incident, and of which category.

- a traceback in an error record: a code signal, grouped by its traceback fingerprint;
- an error record with no traceback: a message signal, grouped by its normalised text;
- infrastructure failures: gunicorn's WORKER TIMEOUT (and the SystemExit traceback of the
  aborted worker), workers killed (`Perhaps out of memory?`, the kernel's OOM killer) or exiting,
  NGINX failing to reach its upstream (refused, timed out, reset, no live upstreams), and
  502/504 responses with no traceback (the service first looks for an occurrence they belong to);
- other lines are counted and nothing more (NGINX's `open() ... failed` for a missing file, INFO).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sre.logs import fingerprint as fp
from sre.logs.nginx import AccessEntry, NginxError
from sre.logs.pylog import PyRecord

TITLE_CHARS = 300

CODE, MESSAGE, INFRASTRUCTURE = "code", "message", "infrastructure"

INFRA_TITLES = {
    "worker_timeout": "gunicorn worker timeout",
    "out_of_memory": "Worker killed (out of memory)",
    "worker_killed": "Worker killed by a signal",
    "worker_exit": "Worker exited with an error",
    "upstream_refused": "Upstream connection refused",
    "upstream_timeout": "Upstream timed out",
    "upstream_unavailable": "Upstream unavailable",
    "upstream_closed": "Upstream closed the connection",
    "bad_gateway": "502 Bad Gateway responses with no traceback",
    "gateway_timeout": "504 Gateway Timeout responses with no traceback",
}

_PY_INFRA = (
    ("worker_timeout", re.compile(r"WORKER TIMEOUT")),
    ("out_of_memory", re.compile(r"Perhaps out of memory|Out of memory: Kill|oom-kill|OOM killer")),
    ("worker_killed", re.compile(r"Worker \(pid:\d+\) was sent SIG")),
    ("worker_exit", re.compile(r"Worker \(pid:\d+\) exited with code|Worker failed to boot")),
)
_UPSTREAM = (
    ("upstream_refused", re.compile(r"\(111: |Connection refused")),
    ("upstream_timeout", re.compile(r"\(110: |timed out")),
    ("upstream_closed", re.compile(r"prematurely closed|\(104: |reset by peer")),
    ("upstream_unavailable", re.compile(r"no live upstreams|\(2: No such file|\(11: |\(13: ")),
)
_UPSTREAM_ADDR = re.compile(r"^[a-z]+://(unix:[^:]+|[^/]+)")
_UPSTREAM_IN_MESSAGE = re.compile(r"connect\(\) to (unix:\S+|\S+) failed")


@dataclass
class Signal:
    category: str
    fingerprint: str
    title: str
    time: datetime
    time_exact: bool = True
    loose: str = ""
    exception_type: str = ""
    exception_message: str = ""
    culprit: str = ""
    infra_kind: str = ""
    message: str = ""  # what a copy of the same event in another log would also say
    text: str = ""  # the event as logged: the sample
    request_path: str = ""
    dedupe: bool = False  # Python records may reach two logs (a file and captured stderr)
    match_first: bool = False  # a 502/504: attach to a matching occurrence when there is one


def _clip(text: str, n: int = TITLE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def classify(item: object) -> Signal | None:
    if isinstance(item, PyRecord):
        return _python(item)
    if isinstance(item, NginxError):
        return _nginx_error(item)
    if isinstance(item, AccessEntry) and item.status in (502, 504):
        kind = "bad_gateway" if item.status == 502 else "gateway_timeout"
        return _infra(kind, "", item.time, text=item.line, request_path=item.path, match_first=True)
    return None


def _infra(kind: str, key: str, time: datetime, **extra) -> Signal:
    title = INFRA_TITLES[kind] + (f" ({key})" if key else "")
    return Signal(
        category=INFRASTRUCTURE,
        fingerprint=fp.infrastructure_fingerprint(kind, key),
        title=_clip(title),
        time=time,
        infra_kind=kind,
        message=title,
        **extra,
    )


def _python(record: PyRecord) -> Signal | None:
    head = record.message
    tb = record.traceback
    for kind, pattern in _PY_INFRA:
        if pattern.search(head):
            return _infra(kind, "", record.time, time_exact=record.time_exact, text=record.text)
    if (
        tb is not None
        and tb.final.type == "SystemExit"
        and any(f.function == "handle_abort" for u in tb.units for f in u.frames)
    ):
        # gunicorn's sync worker aborted by the arbiter after the timeout.
        return _infra(
            "worker_timeout",
            "",
            record.time,
            time_exact=record.time_exact,
            text=record.text,
            request_path=record.request_path,
        )
    if not record.is_error:
        return None
    common = {
        "time": record.time,
        "time_exact": record.time_exact,
        "text": record.text,
        "request_path": record.request_path,
        "dedupe": True,
    }
    if tb is not None and tb.final.type:
        keys = fp.traceback_keys(tb)
        final = tb.final
        first = final.message.split("\n", 1)[0]
        title = final.line + (f" ({keys.culprit})" if keys.culprit else "")
        return Signal(
            category=CODE,
            fingerprint=keys.fingerprint,
            loose=keys.loose,
            title=_clip(title),
            exception_type=final.type[:255],
            exception_message=first[:1000],
            culprit=keys.culprit[:500],
            message=final.line[:1000],
            **common,
        )
    text = head or (record.lines[0] if record.lines else "")
    if not text.strip():
        return None
    return Signal(
        category=MESSAGE,
        fingerprint=fp.message_fingerprint(text),
        title=_clip(text),
        message=text[:1000],
        **common,
    )


def _nginx_error(entry: NginxError) -> Signal | None:
    if entry.level not in ("error", "crit", "alert", "emerg"):
        return None
    upstream = entry.fields.get("upstream", "")
    if "upstream" not in entry.message and not upstream:
        return None
    kind = next((k for k, pattern in _UPSTREAM if pattern.search(entry.message)), None)
    if kind is None:
        return None
    key = ""
    if (m := _UPSTREAM_ADDR.match(upstream)) or (m := _UPSTREAM_IN_MESSAGE.search(entry.message)):
        key = m.group(1)
    return _infra(kind, key[:200], entry.time, text=entry.line, request_path=entry.request_path)
