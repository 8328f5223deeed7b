"""A local HTTP server speaking the part of Slack's Web API the project uses, for the real slack-sdk.

Methods: chat.postMessage, chat.update, conversations.history, users.info, views.open, and
response_url endpoints (`response_url(name)`). Bodies may be JSON or form-encoded, as the SDK
sends them; JSON-string `metadata`, `blocks` and `view` fields are decoded.

Channels are created on first post by name ("#refunds" and "refunds" are the same channel) and
answered with an ID ("C0001"); like Slack, chat.update and conversations.history take the ID only.

`fail_next` makes the next calls of a method fail: with a Slack error, an HTTP status, or (with
`after_effect=True`) an HTTP 500 sent after the call has really taken effect, as when the
answer to a post is lost. `hold_next` lets the next call of a method take effect and holds its
answer until released, then drops it (kill the worker meanwhile).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.hold import Hold
from tests.fakes.server import LocalServer

API_PREFIX = "/api/"
RESPOND_PREFIX = "/respond/"
RESPOND = "respond"  # the `fail_next` name of the response_url endpoints
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")
JSON_FIELDS = ("metadata", "blocks", "view", "attachments")
BOT = {"user": "UFAKEBOT", "bot_id": "BFAKEBOT", "app_id": "AFAKEAPP", "team": "TFAKE"}


@dataclass
class _Failure:
    error: str | None
    status: int
    times: int
    after_effect: bool


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, data: dict[str, Any], status: int = 200) -> _Answer:
        return cls(status, json.dumps(data).encode())


class FakeSlack(LocalServer):
    def __init__(self, *, token: str = "xoxb-test") -> None:
        self.token = token
        self.messages: list[dict[str, Any]] = []  # every posted message, oldest first
        self.updates: list[dict[str, Any]] = []  # chat.update bodies that matched a message
        self.views_opened: list[dict[str, Any]] = []  # {"trigger_id": ..., "view": {...}}
        self.responses: list[tuple[str, dict[str, Any]]] = []  # (response_url name, body)
        self.requests: list[tuple[str, dict[str, Any]]] = []  # (method or "respond", body)
        self.users: dict[str, str] = {}  # user ID -> email ("" for a profile without one)
        self.channels: dict[str, str] = {}  # channel name (no "#") -> ID
        self._history: dict[str, list[dict[str, Any]]] = {}  # channel ID -> messages
        self._failures: dict[str, list[_Failure]] = {}
        self._holds: dict[str, list[Hold]] = {}
        self._channel_numbers = itertools.count(1)
        self._view_numbers = itertools.count(1)
        self._last_ts_us = 0
        self._lock = threading.RLock()
        self._serve(ThreadingHTTPServer(("127.0.0.1", 0), self._handler()), poll=0.02)

    @property
    def url(self) -> str:
        return f"{self.base}{API_PREFIX}"

    # ---- set-up and assertions for tests

    def response_url(self, name: str) -> str:
        return f"{self.base}{RESPOND_PREFIX}{name}"

    def user_add(self, user_id: str, email: str) -> None:
        with self._lock:
            self.users[user_id] = email

    def channel_id(self, channel: str) -> str:
        """The ID of the channel named `channel` ("#refunds" or "refunds"), made if new."""
        with self._lock:
            found = self._channel(channel, create=True)
            assert found, f"{channel!r} looks like a channel ID this fake never issued"
            return found

    def channel_messages(self, channel: str) -> list[dict[str, Any]]:
        """The messages posted to `channel` (a name or an ID), oldest first."""
        with self._lock:
            found = self._channel(channel, create=False)
            return list(self._history.get(found or "", []))

    def failures_clear(self) -> None:
        """Slack answers normally again."""
        with self._lock:
            self._failures.clear()

    def fail_next(
        self,
        method: str,
        *,
        error: str | None = None,
        status: int = 200,
        times: int = 1,
        after_effect: bool = False,
    ) -> None:
        """Make the next `times` calls of `method` ("chat.postMessage", "respond", ...) fail."""
        assert error or status != 200 or after_effect, "fail_next needs an error or a status"
        with self._lock:
            failure = _Failure(error, status, times, after_effect)
            self._failures.setdefault(method, []).append(failure)

    def hold_next(self, method: str) -> Hold:
        """Let the next call of `method` take effect, then hold its answer until released."""
        hold = Hold()
        with self._lock:
            self._holds.setdefault(method, []).append(hold)
        return hold

    def requests_of(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [body for name, body in self.requests if name == method]

    @staticmethod
    def sign(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
        """The headers Slack signs a request to the app with (the v0 scheme)."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        base = b"v0:" + stamp.encode() + b":" + body
        digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}

    # ---- the server side

    def _channel(self, channel: Any, *, create: bool) -> str | None:
        """The ID of `channel` (a name or an ID); None when it is not there and not made."""
        if not isinstance(channel, str) or not channel.strip("#"):
            return None
        if channel in self._history:
            return channel
        if CHANNEL_ID.fullmatch(channel):
            return None  # an ID Slack never issued
        name = channel.lstrip("#")
        if name not in self.channels:
            if not create:
                return None
            self.channels[name] = f"C{next(self._channel_numbers):04d}"
            self._history[self.channels[name]] = []
        return self.channels[name]

    def _ts_next(self) -> str:
        micros = max(time.time_ns() // 1000, self._last_ts_us + 1)
        self._last_ts_us = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _failure_take(self, method: str) -> _Failure | None:
        queue = self._failures.get(method) or []
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        return failure

    def _api(self, method: str, body: dict[str, Any], auth: str) -> _Answer:
        with self._lock:
            self.requests.append((method, body))
            failure = self._failure_take(method)
            if failure and not failure.after_effect:
                return _failed(failure, json_body=True)
            answer = _Answer.of(self._method(method, body, auth))
            if failure:
                return _failed(failure, json_body=True, after_effect=True)
            return answer

    def _method(self, method: str, body: dict[str, Any], auth: str) -> dict[str, Any]:
        token = auth.removeprefix("Bearer ").strip() if auth else str(body.get("token") or "")
        if not token:
            return {"ok": False, "error": "not_authed"}
        if token != self.token:
            return {"ok": False, "error": "invalid_auth"}
        handler = {
            "chat.postMessage": self._post,
            "chat.update": self._update,
            "conversations.history": self._conversation_history,
            "users.info": self._user_info,
            "views.open": self._view_open,
        }.get(method)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        return handler(body)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel"), create=True)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if not body.get("text") and not body.get("blocks"):
            return {"ok": False, "error": "no_text"}
        if "metadata" in body and not _metadata_valid(body["metadata"]):
            return {"ok": False, "error": "invalid_metadata_format"}
        ts = self._ts_next()
        message = {**body, "channel": channel, "ts": ts}
        self.messages.append(message)
        self._history[channel].append(message)
        return {"ok": True, "channel": channel, "ts": ts, "message": _public(message, True)}

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = body.get("channel")
        if not isinstance(channel, str) or channel not in self._history:
            return {"ok": False, "error": "channel_not_found"}
        found = [m for m in self._history[channel] if m["ts"] == str(body.get("ts"))]
        if not found:
            return {"ok": False, "error": "message_not_found"}
        if "metadata" in body and not _metadata_valid(body["metadata"]):
            return {"ok": False, "error": "invalid_metadata_format"}
        message = found[0]
        # As in Slack, a field left out keeps its previous value.
        for field in ("text", "blocks", "metadata", "attachments"):
            if field in body:
                message[field] = body[field]
        message["edited"] = {"user": BOT["user"], "ts": self._ts_next()}
        self.updates.append(body)
        return {
            "ok": True,
            "channel": channel,
            "ts": message["ts"],
            "text": message.get("text", ""),
            "message": _public(message, True),
        }

    def _conversation_history(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = body.get("channel")
        if not isinstance(channel, str) or channel not in self._history:
            return {"ok": False, "error": "channel_not_found"}
        try:
            oldest = float(body.get("oldest") or 0)
            latest = float(body.get("latest") or "inf")
            limit = min(max(int(body.get("limit") or 100), 1), 999)
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        inclusive = _flag(body.get("inclusive"))
        with_metadata = _flag(body.get("include_all_metadata"))
        ordered = sorted(
            (
                m
                for m in self._history[channel]
                if m.get("thread_ts") in (None, m["ts"]) or _flag(m.get("reply_broadcast"))
                if (oldest <= float(m["ts"]) <= latest)
                if inclusive or float(m["ts"]) not in (oldest, latest)
            ),
            key=lambda m: float(m["ts"]),
            reverse=True,
        )
        cursor = str(body.get("cursor") or "")
        if cursor:
            try:
                start = base64.b64decode(cursor, validate=True).decode().removeprefix("next_ts:")
                ordered = [m for m in ordered if float(m["ts"]) <= float(start)]
            except ValueError:
                return {"ok": False, "error": "invalid_cursor"}
        page, rest = ordered[:limit], ordered[limit:]
        next_cursor = base64.b64encode(f"next_ts:{rest[0]['ts']}".encode()).decode() if rest else ""
        return {
            "ok": True,
            "messages": [_public(m, with_metadata) for m in page],
            "has_more": bool(rest),
            "pin_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _user_info(self, body: dict[str, Any]) -> dict[str, Any]:
        user_id = str(body.get("user") or "")
        if user_id not in self.users:
            return {"ok": False, "error": "user_not_found"}
        email = self.users[user_id]
        name = email.split("@")[0] if email else user_id.lower()
        profile: dict[str, Any] = {"real_name": name, "display_name": name}
        if email:
            profile["email"] = email
        return {"ok": True, "user": {"id": user_id, "name": name, "profile": profile}}

    def _view_open(self, body: dict[str, Any]) -> dict[str, Any]:
        view = body.get("view")
        if not body.get("trigger_id") or not isinstance(view, dict) or not view.get("type"):
            return {"ok": False, "error": "invalid_arguments"}
        self.views_opened.append({"trigger_id": body["trigger_id"], "view": view})
        return {"ok": True, "view": {"id": f"V{next(self._view_numbers):04d}", **view}}

    def _respond(self, name: str, body: dict[str, Any]) -> _Answer:
        with self._lock:
            self.requests.append((RESPOND, body))
            failure = self._failure_take(RESPOND)
            if failure and not failure.after_effect:
                return _failed(failure, json_body=False)
            self.responses.append((name, body))
            if failure:
                return _failed(failure, json_body=False, after_effect=True)
            return _Answer(200, b"ok", "text/plain; charset=utf-8")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # Headers and body go out in separate writes: without this each answer waits for the
            # client's delayed ACK (about 40 ms), which no real API server adds.
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                self._serve(b"")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                self._serve(self.rfile.read(length))

            def _serve(self, raw: bytes) -> None:
                parts = urlsplit(self.path)
                body = _decode(raw, self.headers.get("content-type", ""))
                for key, values in parse_qs(parts.query, keep_blank_values=True).items():
                    body.setdefault(key, values[0])
                if parts.path.startswith(RESPOND_PREFIX):
                    name = unquote(parts.path.removeprefix(RESPOND_PREFIX))
                    answer = fake._respond(name, body)
                elif parts.path.startswith(API_PREFIX):
                    method = parts.path.removeprefix(API_PREFIX)
                    with fake._lock:
                        held = fake._holds.get(method) or []
                        hold = held.pop(0) if held else None
                    answer = fake._api(method, body, self.headers.get("Authorization", ""))
                    if hold is not None:
                        hold.hold()  # outside the lock: the fake goes on answering others
                        self.close_connection = True
                        return
                else:
                    answer = _Answer(404, b"not found", "text/plain; charset=utf-8")
                self.send_response(answer.status)
                self.send_header("content-type", answer.content_type)
                self.send_header("content-length", str(len(answer.body)))
                for header, value in answer.headers:
                    self.send_header(header, value)
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def _decode(raw: bytes, content_type: str) -> dict[str, Any]:
    """The request body as a dict, with JSON-string fields decoded."""
    text = raw.decode()
    if content_type.startswith("application/json"):
        body = json.loads(text or "{}")
    else:
        body = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
    for field in JSON_FIELDS:
        value = body.get(field)
        if isinstance(value, str) and value[:1] in "[{":
            with contextlib.suppress(ValueError):
                body[field] = json.loads(value)
    return body


def _failed(failure: _Failure, *, json_body: bool, after_effect: bool = False) -> _Answer:
    """The answer for an injected failure."""
    status = failure.status
    if after_effect and status == 200:
        status = 500
    headers = (("Retry-After", "1"),) if status == 429 else ()
    if failure.error and not after_effect:
        if json_body:
            data = json.dumps({"ok": False, "error": failure.error}).encode()
            return _Answer(status, data, headers=headers)
        return _Answer(status if status != 200 else 404, failure.error.encode(), "text/plain")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    page = f"<html><body><h1>{status} {phrase}</h1></body></html>".encode()
    return _Answer(status, page, "text/html; charset=utf-8", headers)


def _public(message: dict[str, Any], with_metadata: bool) -> dict[str, Any]:
    """The message as Slack shows it in answers and history."""
    shown: dict[str, Any] = {"type": "message", **BOT, "text": message.get("text", "")}
    shown["ts"] = message["ts"]
    for field in ("blocks", "attachments", "thread_ts", "edited"):
        if message.get(field):
            shown[field] = message[field]
    if with_metadata and message.get("metadata"):
        shown["metadata"] = message["metadata"]
    return shown


def _metadata_valid(metadata: Any) -> bool:
    return (
        isinstance(metadata, dict)
        and isinstance(metadata.get("event_type"), str)
        and isinstance(metadata.get("event_payload"), dict)
    )


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")
