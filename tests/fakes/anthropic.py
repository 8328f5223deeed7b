"""A local HTTP server that speaks the Anthropic Messages API, for the real SDK to talk to.

Tests script its replies (tool_use, text, every stop reason, error statuses with retry-after)
and read back every request the SDK sent. Like the real API it rejects malformed requests
with a 400 `invalid_request_error` — a tool_use left unanswered, a tool_result for an unknown
id, a missing model — so engine bugs surface as they would in production. `push_hold` keeps
the next request unanswered until released, then drops it: a model call in flight. `latency`
(seconds, 0 by default) is how long each Messages request waits before its answer, as a model
thinking would; benchmarks set it, tests leave it at 0.

The Message Batches endpoints (create, retrieve, results as JSONL, cancel) answer from the same
script: each request of a new batch takes the next scripted reply, in order, as a Messages call
would (an error status becomes an `errored` result; `push_batch_result("expired")` scripts an
expired or canceled one). A batch stays `in_progress` until `batch_end()`; its results come
back in reverse order, to prove they are matched by `custom_id`.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
    batch_result: str = ""  # in a batch: "expired" or "canceled" instead of an answer


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
        self.batches: dict[str, FakeBatch] = {}
        self.duplicate_results = False  # each results line twice, as a retried download might
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
        return [r for r in self.requests if _is_messages(r.path)]

    @property
    def batch_requests(self) -> list[Recorded]:
        """Every call to the batches endpoints (create, retrieve, results, cancel)."""
        return [r for r in self.requests if r.path.startswith(BATCHES)]

    def push_batch_result(self, kind: str) -> None:
        """Script the next request in a batch to come back `expired` or `canceled`."""
        self.push(Scripted(0, {}, batch_result=kind))

    def batch_end(self, batch_id: str | None = None) -> None:
        """End a batch (or every open one): its results become readable."""
        with self._lock:
            for batch in self.batches.values():
                if batch_id in (None, batch.id) and batch.processing_status != "ended":
                    batch.processing_status = "ended"
                    batch.ended_at = datetime.now(UTC)

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
        if path.startswith(BATCHES):
            return self._batches(path, headers, body, method="POST")
        if not path.startswith("/v1/messages"):
            return self._error(404, "not_found_error", f"no route {path}")
        if problem := self._invalid(body, headers):
            return self._error(400, "invalid_request_error", problem)
        with self._lock:
            item = self._script.popleft() if self._script else None
        if item is None:
            return self._error(500, "api_error", "fake Anthropic: no reply scripted for this call")
        return item(body) if callable(item) else item

    # --- the Message Batches API ---------------------------------------------------------
    def _batches(
        self, path: str, headers: dict[str, str], body: dict[str, Any], *, method: str
    ) -> Scripted:
        keyed = headers.get("x-api-key") or headers.get("authorization", "").startswith("Bearer ")
        if not keyed or not headers.get("anthropic-version"):
            return self._error(401, "authentication_error", "an API key and anthropic-version")
        route = path.split("?", 1)[0][len(BATCHES) :]
        if method == "POST" and route == "":
            return self._batch_create(headers, body)
        match = re.fullmatch(r"/(msgbatch_\w+)(/results|/cancel)?", route)
        batch = self.batches.get(match.group(1)) if match else None
        if batch is None:
            return self._error(404, "not_found_error", f"no batch at {path}")
        action = match.group(2) or ""
        if method == "GET" and action == "":
            return Scripted(200, batch.as_json(self.base))
        if method == "GET" and action == "/results":
            if batch.processing_status != "ended":
                return self._error(400, "invalid_request_error", "the batch has not ended")
            lines = [json.dumps(r) for r in reversed(batch.results_now())]
            if self.duplicate_results:
                lines += lines
            return Scripted(200, {"jsonl": "\n".join(lines) + "\n"})
        if method == "POST" and action == "/cancel":
            with self._lock:
                if batch.processing_status != "ended":
                    batch.cancel_initiated_at = datetime.now(UTC)
                    batch.processing_status = "ended"
                    batch.ended_at = batch.cancel_initiated_at
                    batch.canceled = True
            return Scripted(200, batch.as_json(self.base))
        return self._error(405, "invalid_request_error", f"{method} {path} is not a route")

    def _batch_create(self, headers: dict[str, str], body: dict[str, Any]) -> Scripted:
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return self._error(400, "invalid_request_error", "requests: at least one is required")
        ids = [r.get("custom_id") for r in requests]
        if len(set(ids)) != len(ids) or not all(
            isinstance(i, str) and re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", i) for i in ids
        ):
            return self._error(400, "invalid_request_error", "custom_id: unique, [a-zA-Z0-9_-]")
        batch = FakeBatch(id=f"msgbatch_fake_{next(self._ids):04d}")
        for request in requests:
            params = request.get("params") or {}
            if params.get("stream"):
                result = _errored("invalid_request_error", "stream is not allowed in a batch")
            elif problem := self._invalid(params, headers):
                result = _errored("invalid_request_error", problem)
            else:
                with self._lock:
                    item = self._script.popleft() if self._script else None
                scripted = None if item is None else item(params) if callable(item) else item
                if scripted is None:
                    result = _errored("api_error", "fake Anthropic: no reply scripted")
                elif scripted.batch_result:
                    result = {"type": scripted.batch_result}
                elif scripted.drop or scripted.status != 200:
                    error = scripted.body.get("error") or {"type": "api_error", "message": ""}
                    result = _errored(error["type"], error["message"])
                else:
                    result = {"type": "succeeded", "message": scripted.body}
            batch.results.append({"custom_id": request["custom_id"], "result": result})
        with self._lock:
            self.batches[batch.id] = batch
        return Scripted(200, batch.as_json(self.base))

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
                if fake.latency > 0 and _is_messages(self.path):
                    time.sleep(fake.latency)
                self._answer(scripted)

            def do_GET(self) -> None:  # noqa: N802
                headers = {k.lower(): v for k, v in self.headers.items()}
                fake.requests.append(Recorded(path=self.path, headers=headers, body={}))
                if self.path.startswith(BATCHES):
                    scripted = fake._batches(self.path, headers, {}, method="GET")
                else:
                    scripted = fake._error(404, "not_found_error", f"no route {self.path}")
                self._answer(scripted)

            def _answer(self, scripted: Scripted) -> None:
                if scripted.drop:
                    self.close_connection = True
                    return
                if "jsonl" in scripted.body:
                    payload, kind = scripted.body["jsonl"].encode(), "application/binary"
                else:
                    payload, kind = json.dumps(scripted.body).encode(), "application/json"
                self.send_response(scripted.status)
                self.send_header("content-type", kind)
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


BATCHES = "/v1/messages/batches"


def _is_messages(path: str) -> bool:
    return path.startswith("/v1/messages") and not path.startswith(BATCHES)


def _errored(kind: str, message: str) -> dict[str, Any]:
    return {
        "type": "errored",
        "error": {"type": "error", "error": {"type": kind, "message": message}},
    }


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


@dataclass
class FakeBatch:
    id: str
    results: list[dict[str, Any]] = field(default_factory=list)
    processing_status: str = "in_progress"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime | None = None
    cancel_initiated_at: datetime | None = None
    canceled: bool = False

    def results_now(self) -> list[dict[str, Any]]:
        if not self.canceled:
            return self.results
        return [{"custom_id": r["custom_id"], "result": {"type": "canceled"}} for r in self.results]

    def as_json(self, base: str) -> dict[str, Any]:
        ended = self.processing_status == "ended"
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        for line in self.results_now():
            counts[line["result"]["type"] if ended else "processing"] += 1
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.processing_status,
            "request_counts": counts,
            "created_at": _time(self.created_at),
            "expires_at": _time(self.created_at + timedelta(hours=24)),
            "ended_at": _time(self.ended_at),
            "cancel_initiated_at": _time(self.cancel_initiated_at),
            "archived_at": None,
            "results_url": f"{base}{BATCHES}/{self.id}/results" if ended else None,
        }
