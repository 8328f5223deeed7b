"""A local HTTP server that speaks the Anthropic Messages API, for the real SDK to talk to.

Tests script its replies (tool_use, text, every stop reason, error statuses with retry-after)
and read back every request the SDK sent. Like the real API it rejects malformed requests
with a 400 `invalid_request_error` — a tool_use left unanswered, a tool_result for an unknown
id, a missing model — so engine bugs surface as they would in production. `push_hold` keeps
the next request unanswered until released, then drops it: a model call in flight. `latency`
(seconds, 0 by default) is how long each Messages request waits before its answer, as a model
thinking would; benchmarks set it, tests leave it at 0.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.hold import Hold
from tests.fakes.server import LocalServer

Responder = Callable[[dict[str, Any]], "Scripted"]


def _without_cache_control(value: Any) -> Any:
    if isinstance(value, list):
        return [_without_cache_control(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    return value


def _has_cache_control(value: Any) -> bool:
    if isinstance(value, list):
        return any(_has_cache_control(v) for v in value)
    return isinstance(value, dict) and "cache_control" in value


@dataclass
class Scripted:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without an answer


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeAnthropic(LocalServer):
    def __init__(self, *, latency: float = 0.0) -> None:
        self.latency = latency
        self.requests: list[Recorded] = []
        self._script: deque[Scripted | Responder] = deque()
        self._ids = itertools.count(1)
        self._cached_prefixes: set[str] = set()
        self._lock = threading.Lock()
        self._serve(ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class()))

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.base

    # --- scripting -----------------------------------------------------------------------
    def push(self, item: Scripted | Responder) -> None:
        self._script.append(item)

    def push_message(
        self,
        content: list[dict[str, Any]],
        *,
        stop_reason: str,
        output_tokens: int = 40,
    ) -> None:
        self.push(lambda body: self._message(body, content, stop_reason, output_tokens))

    def push_text(self, text: str, *, stop_reason: str = "end_turn") -> None:
        self.push_message([{"type": "text", "text": text}], stop_reason=stop_reason)

    def push_tool_use(
        self,
        *calls: tuple[str, dict[str, Any]],
        text: str | None = None,
        stop_reason: str = "tool_use",
    ) -> list[str]:
        """Script one reply asking for each (name, input) in order; returns the tool_use ids."""
        ids = [f"toolu_fake_{next(self._ids):04d}" for _ in calls]
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        content += [
            {"type": "tool_use", "id": id_, "name": name, "input": input_}
            for id_, (name, input_) in zip(ids, calls, strict=True)
        ]
        self.push_message(content, stop_reason=stop_reason)
        return ids

    def push_error(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        retry_after: float | None = None,
        times: int = 1,
    ) -> None:
        for _ in range(times):
            headers = {}
            if retry_after is not None:
                headers["retry-after"] = str(retry_after)
                headers["retry-after-ms"] = str(int(retry_after * 1000))
            self.push(
                Scripted(
                    status,
                    {"type": "error", "error": {"type": error_type, "message": message}},
                    headers,
                )
            )

    def push_overloaded(self, *, times: int = 1, retry_after: float = 0.01) -> None:
        self.push_error(529, "overloaded_error", "Overloaded", retry_after=retry_after, times=times)

    def push_hold(self) -> Hold:
        """Hold the next request unanswered until released, then drop the connection."""
        hold = Hold()

        def held(body: dict[str, Any]) -> Scripted:
            hold.hold()
            return Scripted(0, {}, drop=True)

        self.push(held)
        return hold

    @property
    def pending(self) -> int:
        return len(self._script)

    @property
    def message_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith("/v1/messages")]

    # --- the API -------------------------------------------------------------------------
    def _message(
        self, body: dict[str, Any], content: list[dict[str, Any]], stop_reason: str, out: int
    ) -> Scripted:
        number = next(self._ids)

        # Prompt caching as the API does it: a prefix up to a breakpoint is written once and read
        # by every later request that starts with it. Breakpoints: the system prompt (and the
        # tools before it), and any message whose blocks carry cache_control.
        def plain(value: Any) -> str:
            return json.dumps(_without_cache_control(value), sort_keys=True)

        prefix = plain(body.get("system", "")) + plain(body.get("tools", []))
        messages = body["messages"]
        boundaries = [prefix] + [
            prefix + plain(messages[: k + 1]) for k in range(len(messages))
        ]  # boundaries[k]: the prefix through k messages
        marked = [0] if _has_cache_control(body.get("system")) else []
        marked += [k + 1 for k, m in enumerate(messages) if _has_cache_control(m.get("content"))]
        total = len(boundaries[-1]) // 4
        cache_read = cache_write = 0
        with self._lock:
            hit = max(
                (k for k, b in enumerate(boundaries) if b in self._cached_prefixes), default=-1
            )
            read_to = len(boundaries[hit]) // 4 if hit >= 0 else 0
            cache_read = read_to
            for k in marked:
                if k > hit:
                    self._cached_prefixes.add(boundaries[k])
            newest = max(marked, default=-1)
            if newest > hit:
                cache_write = len(boundaries[newest]) // 4 - read_to
        input_tokens = total - cache_read - cache_write
        return Scripted(
            200,
            {
                "id": f"msg_fake_{number:04d}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": content,
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": input_tokens,
                    "output_tokens": out,
                    "cache_creation_input_tokens": cache_write,
                    "cache_read_input_tokens": cache_read,
                },
            },
        )

    def _invalid(self, body: dict[str, Any], headers: dict[str, str]) -> str | None:
        if not headers.get("x-api-key") and not headers.get("authorization", "").startswith(
            "Bearer "
        ):
            return "an API key is required (x-api-key or Authorization: Bearer)"
        if not headers.get("anthropic-version"):
            return "anthropic-version header is required"
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "model: Field required"
        if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
            return "max_tokens: must be a positive integer"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: at least one message is required"
        if messages[0].get("role") != "user":
            return "messages: first message must use the user role"
        for tool in body.get("tools", []):
            if not tool.get("name") or tool.get("input_schema", {}).get("type") != "object":
                return f"tools: invalid tool definition {tool.get('name')!r}"
        for index, message in enumerate(messages):
            if index and message["role"] == messages[index - 1]["role"] == "assistant":
                return f"messages.{index}: two assistant messages in a row"
            content = message["content"]
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            asked = []
            if index and messages[index - 1]["role"] == "assistant":
                previous = messages[index - 1]["content"]
                asked = [b["id"] for b in previous if b.get("type") == "tool_use"]
            answered = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
            if message["role"] == "user":
                if answered and answered != asked[: len(answered)]:
                    return f"messages.{index}: tool_result blocks do not match the tool_use ids"
                if asked and sorted(answered) != sorted(asked):
                    return (
                        f"messages.{index}: `tool_use` ids were found without `tool_result` "
                        "blocks immediately after"
                    )
                for block in blocks:
                    if block.get("type") == "tool_result" and not isinstance(
                        block.get("content"), str | list
                    ):
                        return f"messages.{index}: tool_result content must be text or blocks"
        last = messages[-1]
        if last["role"] == "assistant" and any(
            b.get("type") == "tool_use" for b in last["content"]
        ):
            return "messages: the final assistant message has tool_use without tool_result"
        return None

    def _respond(self, path: str, headers: dict[str, str], raw: bytes) -> Scripted:
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return self._error(400, "invalid_request_error", "body is not valid JSON")
        self.requests.append(Recorded(path=path, headers=headers, body=body))
        if not path.startswith("/v1/messages"):
            return self._error(404, "not_found_error", f"no route {path}")
        if problem := self._invalid(body, headers):
            return self._error(400, "invalid_request_error", problem)
        with self._lock:
            item = self._script.popleft() if self._script else None
        if item is None:
            return self._error(500, "api_error", "fake Anthropic: no reply scripted for this call")
        return item(body) if callable(item) else item

    @staticmethod
    def _error(status: int, kind: str, message: str) -> Scripted:
        return Scripted(status, {"type": "error", "error": {"type": kind, "message": message}})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # Headers and body go out in separate writes: without this each answer waits for the
            # client's delayed ACK (about 40 ms), which no real API server adds.
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                scripted = fake._respond(self.path, headers, raw)
                if fake.latency > 0 and self.path.startswith("/v1/messages"):
                    time.sleep(fake.latency)
                if scripted.drop:
                    self.close_connection = True
                    return
                payload = json.dumps(scripted.body).encode()
                self.send_response(scripted.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.send_header("request-id", f"req_fake_{len(fake.requests):04d}")
                # The SDK would retry a 4xx/5xx on its own judgement; say what the API says.
                for key, value in scripted.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
