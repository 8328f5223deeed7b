"""Model access: the Anthropic Messages API, or a replay of recorded replies.

Both backends return the SDK's own `anthropic.types.Message`; the rest of the engine cannot
tell them apart except by the run's `backend` label.
"""

from __future__ import annotations

import json
import re
import time
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import anthropic
from anthropic.types import Message
from anthropic.types.model_param import ModelParam
from django.conf import settings

from agents.registry import toolset_get

BACKENDS = ("anthropic", "replay")


class ModelError(Exception):
    """The model call did not produce a reply."""


class ModelUnavailable(ModelError):
    """A transient failure (rate limit, overload, 5xx, network): try again later."""

    def __init__(self, message: str, *, retry_after: float | None = None, request_id: str = ""):
        super().__init__(message)
        self.retry_after = retry_after
        self.request_id = request_id


class ModelRequestRejected(ModelError):
    """A failure that repeating the same request cannot fix (bad request, credentials)."""

    def __init__(self, message: str, *, request_id: str = ""):
        super().__init__(message)
        self.request_id = request_id


@dataclass(frozen=True)
class ModelRequest:
    toolset: str
    model: str
    system: str
    tools: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    max_tokens: int
    run_id: int = 0  # not sent; lets the replay backend keep tool_use ids unique per run

    def params(self) -> dict[str, Any]:
        """The Messages API parameters, with cache breakpoints on the tools, the system prompt
        and the newest turn: each call reads the whole conversation so far from the cache and
        writes only what is new (three of the API's four breakpoints)."""
        tools = [dict(tool) for tool in self.tools]
        if tools:
            tools[-1]["cache_control"] = {"type": "ephemeral"}
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": [
                {"type": "text", "text": self.system, "cache_control": {"type": "ephemeral"}}
            ],
            "messages": _newest_turn_cached(self.messages),
        }
        if tools:
            params["tools"] = tools
        return params


def _newest_turn_cached(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with a cache breakpoint on the last block of the last one (copied: the
    stored conversation is never changed)."""
    if not messages:
        return messages
    last = dict(messages[-1])
    content = last.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content or not isinstance(content[-1], dict):
        return messages
    content = [*content[:-1], {**content[-1], "cache_control": {"type": "ephemeral"}}]
    return [*messages[:-1], {**last, "content": content}]


@dataclass(frozen=True)
class ModelReply:
    message: Message
    request_id: str
    latency_ms: int
    batch: bool = False  # answered through the Message Batches API (priced at half)


_SONNET = re.compile(r"^claude-sonnet-(\d+)(?:-(\d+))?$")


def default_model() -> str:
    """The newest Sonnet that the installed anthropic SDK lists (undated aliases only)."""
    names = [arg for arg in typing.get_args(typing.get_args(ModelParam)[0])]
    sonnets = []
    for name in names:
        match = _SONNET.match(name)
        if match and (match.group(2) is None or len(match.group(2)) < 8):
            sonnets.append(((int(match.group(1)), int(match.group(2) or 0)), name))
    if not sonnets:
        raise ModelError("The installed anthropic SDK lists no Sonnet model; set ANTHROPIC_MODEL.")
    return max(sonnets)[1]


def configured_model() -> str:
    return settings.ANTHROPIC_MODEL or default_model()


def configured_backend() -> str:
    name = settings.AGENTS_LLM_BACKEND
    if name not in BACKENDS:
        raise ModelError(f"AGENTS_LLM_BACKEND must be one of {BACKENDS}, not {name!r}.")
    return name


def backend_get(name: str) -> AnthropicBackend | ReplayBackend:
    if name == "anthropic":
        return AnthropicBackend()
    if name == "replay":
        return ReplayBackend()
    raise ModelError(f"Unknown model backend {name!r}.")


@cache
def _client(
    api_key: str, base_url: str | None, timeout: float, max_retries: int
) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
    )


def _retry_after(error: anthropic.APIStatusError) -> float | None:
    value = error.response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _api_client() -> anthropic.Anthropic:
    """The configured client (refused without an API key): Messages and Message Batches."""
    if not settings.ANTHROPIC_API_KEY:
        raise ModelRequestRejected("ANTHROPIC_API_KEY is not set.")
    return _client(
        settings.ANTHROPIC_API_KEY,
        settings.ANTHROPIC_BASE_URL,
        settings.ANTHROPIC_TIMEOUT,
        settings.ANTHROPIC_MAX_RETRIES,
    )


@contextmanager
def _api_errors(what: str = "") -> Iterator[None]:
    """The SDK's errors as the engine's: worth a retry later (unavailable), or rejected."""
    prefix = f"{what}: " if what else ""
    try:
        yield
    except anthropic.APIStatusError as error:
        detail = f"{prefix}{error.status_code} {error.message}"
        if error.status_code in (408, 409, 429) or error.status_code >= 500:
            raise ModelUnavailable(
                detail, retry_after=_retry_after(error), request_id=error.request_id or ""
            ) from error
        raise ModelRequestRejected(detail, request_id=error.request_id or "") from error
    except anthropic.APIConnectionError as error:
        raise ModelUnavailable(f"{prefix}connection failed: {error}") from error


class AnthropicBackend:
    name = "anthropic"

    def create(self, request: ModelRequest) -> ModelReply:
        client = _api_client()
        started = time.monotonic()
        with _api_errors():
            raw = client.messages.with_raw_response.create(**request.params())
            message = raw.parse()
        latency = int((time.monotonic() - started) * 1000)
        return ModelReply(message=message, request_id=raw.request_id or "", latency_ms=latency)


@dataclass(frozen=True)
class BatchState:
    """What the Message Batches API says of one batch."""

    batch_id: str
    processing_status: str  # in_progress, canceling or ended
    request_counts: dict[str, int]
    expires_at: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True)
class BatchResult:
    """One line of an ended batch's results: a reply, or why there is none."""

    custom_id: str
    kind: str  # succeeded, errored, canceled or expired
    message: Message | None = None
    error: str = ""


def _batch_state(batch: Any) -> BatchState:
    return BatchState(
        batch_id=batch.id,
        processing_status=batch.processing_status,
        request_counts=batch.request_counts.to_dict(),
        expires_at=batch.expires_at,
        ended_at=batch.ended_at,
    )


def batch_create(requests: list[tuple[str, ModelRequest]]) -> BatchState:
    """Submit (custom_id, request) pairs as one Message Batch; each is sent as `create` would."""
    client = _api_client()
    with _api_errors("creating the batch"):
        batch = client.messages.batches.create(
            requests=[{"custom_id": cid, "params": req.params()} for cid, req in requests]
        )
    return _batch_state(batch)


def batch_retrieve(batch_id: str) -> BatchState:
    with _api_errors(f"reading batch {batch_id}"):
        return _batch_state(_api_client().messages.batches.retrieve(batch_id))


def batch_cancel(batch_id: str) -> BatchState:
    with _api_errors(f"cancelling batch {batch_id}"):
        return _batch_state(_api_client().messages.batches.cancel(batch_id))


def batch_results(batch_id: str) -> list[BatchResult]:
    """Every result of an ended batch, in the file's order (not the requests')."""
    results = []
    with _api_errors(f"reading the results of batch {batch_id}"):
        for line in _api_client().messages.batches.results(batch_id):
            result = line.result
            if result.type == "succeeded":
                results.append(BatchResult(line.custom_id, "succeeded", message=result.message))
            elif result.type == "errored":
                error = result.error.error
                text = f"{getattr(error, 'type', 'error')}: {getattr(error, 'message', '')}"
                results.append(BatchResult(line.custom_id, "errored", error=text))
            else:
                results.append(BatchResult(line.custom_id, result.type))
    return results


@dataclass(frozen=True)
class Recording:
    name: str
    match: str
    replies: list[dict[str, Any]]


def recordings_load(directory: str | Path) -> list[Recording]:
    recordings = []
    for path in sorted(Path(directory).glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        recordings.append(
            Recording(name=path.stem, match=data.get("match", ""), replies=data["replies"])
        )
    return recordings


def _first_user_text(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        if message["role"] != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            return content
        return "\n".join(b.get("text", "") for b in content if b.get("type") == "text")
    return ""


def _last_result_failed(messages: list[dict[str, Any]]) -> bool:
    content = messages[-1]["content"] if messages else []
    if isinstance(content, str):
        return False
    return any(b.get("type") == "tool_result" and b.get("is_error") for b in content)


class ReplayBackend:
    """Answers from recorded Messages API replies kept in the repository: no network, no cost.

    A recording is chosen by the first of its `match` strings found in the run's first user
    message; the n-th reply answers the n-th model call of the run.
    """

    name = "replay"

    def create(self, request: ModelRequest) -> ModelReply:
        toolset = toolset_get(request.toolset)
        if not toolset.replay_dir:
            raise ModelRequestRejected(f"Toolset {toolset.name!r} has no recorded replies.")
        text = _first_user_text(request.messages).casefold()
        turn = sum(1 for m in request.messages if m["role"] == "assistant")
        for recording in recordings_load(toolset.replay_dir):
            if recording.match.casefold() in text:
                break
        else:
            raise ModelRequestRejected(
                "No recorded reply matches this conversation; the replay backend only knows "
                "its recordings. Set ANTHROPIC_API_KEY to use Claude."
            )
        if turn >= len(recording.replies):
            data = {
                "id": f"msg_replay_{recording.name}_end",
                "type": "message",
                "role": "assistant",
                "model": request.model,
                "content": [{"type": "text", "text": "(The recording ends here.)"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }
        else:
            reply = recording.replies[turn]
            # A recording may answer differently when the last tool result was an error (a
            # rejected refund, say), so the demo stays truthful either way.
            if "on_error" in reply and _last_result_failed(request.messages):
                reply = reply["on_error"]
            data = json.loads(json.dumps({k: v for k, v in reply.items() if k != "on_error"}))
            data["model"] = request.model
            for block in data["content"]:
                if block.get("type") == "tool_use":
                    block["id"] = f"{block['id']}_run{request.run_id}"
        message = Message.model_validate(data)
        return ModelReply(
            message=message, request_id=f"replay-{recording.name}-{turn}", latency_ms=0
        )
