"""Reads the console's pages share: the approvals queue, a run's timeline, a call's context."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pydantic
from django.db.models import QuerySet
from django.utils import timezone

from agents.models import AgentRun, AuditEvent, ModelCall, Proposal, ToolCall
from agents.registry import UnknownToolset, consequential_tools, permission_list, toolset_get


def json_pretty(value: Any) -> str:
    """Format a JSON value for reading: indented, non-ASCII kept as is."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def json_readable(value: Any) -> str:
    """Format a value for reading; a string that holds a JSON object or list is indented too."""
    if not isinstance(value, str):
        return json_pretty(value)
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return json_pretty(parsed) if isinstance(parsed, dict | list) else value


# --- approvals --------------------------------------------------------------------------------


# The inbox's age filter: waiting longer than this many hours.
AGES = {"1h": 1, "1d": 24, "3d": 72}


def proposal_inbox(
    *,
    user: Any = None,
    kind: str = "",
    agent: str = "",
    older_than: str = "",
    mine: bool = False,
    second: bool = False,
) -> QuerySet[Proposal]:
    """Everything that waits on a person, oldest first, that the user may see.

    `kind` is a tool name, `agent` a toolset, `older_than` a key of AGES; `mine` keeps what the
    user may decide now (their permission, and not approved by them already); `second` keeps
    second (or later) approvals.
    """
    proposals = Proposal.objects.filter(tool_call__status=ToolCall.Status.AWAITING_APPROVAL)
    if user is not None and not user.has_perm("agents.view_toolcall"):
        # Someone who may approve but not read the whole log sees only their own kinds.
        proposals = proposals.filter(tool_call__approval_permission__in=_perms_of(user))
    if kind:
        proposals = proposals.filter(tool_name=kind)
    if agent:
        proposals = proposals.filter(toolset=agent)
    if older_than in AGES:
        cutoff = timezone.now() - timedelta(hours=AGES[older_than])
        proposals = proposals.filter(waiting_since__lt=cutoff)
    if mine and user is not None:
        proposals = proposals.filter(tool_call__approval_permission__in=_perms_of(user)).exclude(
            approvals__user=user
        )
    if second:
        proposals = proposals.filter(approvals__isnull=False).distinct()
    return (
        proposals.select_related("tool_call__run")
        .defer("tool_call__run__messages", "tool_call__run__system", "tool_call__result")
        .prefetch_related("approvals__user")
        .order_by("waiting_since", "tool_call_id")
    )


def _perms_of(user: Any) -> list[str]:
    return [perm for perm in permission_list() if user.has_perm(perm)]


def proposal_pending_count(*, user: Any = None) -> int:
    """Count what waits on a person (what the user may see, given one)."""
    return proposal_inbox(user=user).count()


def proposal_kinds() -> list[tuple[str, str]]:
    """The inbox's kinds: (tool name, label) for every consequential tool, once each."""
    seen: dict[str, str] = {}
    for _toolset, tool in consequential_tools():
        seen.setdefault(tool.name, tool.name.replace("_", " ").capitalize())
    return sorted(seen.items())


def approvals_can_view(*, user: Any) -> bool:
    """Say whether the user may see the approvals queue: auditors and approvers may."""
    if not (user.is_active and user.is_staff):
        return False
    if user.has_perm("agents.view_toolcall"):
        return True
    return any(user.has_perm(perm) for perm in permission_list())


def toolset_label(name: str) -> str:
    """Return a toolset's label, or its name once it is no longer registered."""
    try:
        return toolset_get(name).label
    except UnknownToolset:
        return name


# --- messages as the pages show them ----------------------------------------------------------


@dataclass
class Block:
    type: str
    text: str = ""
    name: str = ""
    id: str = ""
    json: str = ""
    is_error: bool = False


@dataclass
class Message:
    index: int
    role: str
    blocks: list[Block]
    at: datetime | None = None
    model_call: ModelCall | None = None

    @property
    def label(self) -> str:
        if self.role == "assistant":
            return "Claude"
        if self.blocks and all(b.type == "tool_result" for b in self.blocks):
            return "Tool results"
        return self.role.capitalize()


def _block(raw: Any) -> Block:
    if not isinstance(raw, dict):
        return Block(type="text", text=str(raw))
    kind = raw.get("type", "")
    if kind == "text":
        return Block(type="text", text=raw.get("text", ""))
    if kind == "tool_use":
        return Block(
            type="tool_use",
            name=raw.get("name", ""),
            id=raw.get("id", ""),
            json=json_pretty(raw.get("input")),
        )
    if kind == "tool_result":
        content = raw.get("content")
        if isinstance(content, list):
            text = "\n".join(
                b.get("text", "") if b.get("type") == "text" else json_pretty(b) for b in content
            )
        else:
            text = "" if content is None else json_readable(str(content))
        return Block(
            type="tool_result",
            id=raw.get("tool_use_id", ""),
            text=text,
            is_error=bool(raw.get("is_error")),
        )
    # Thinking, server tools and future block types: show them whole rather than drop them.
    return Block(type=kind or "unknown", json=json_pretty(raw))


def messages_render(messages: list[dict[str, Any]]) -> list[Message]:
    """Turn a Messages API conversation into blocks a template can show."""
    rendered = []
    for index, message in enumerate(messages):
        content = message.get("content")
        raw_blocks = (
            [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        )
        rendered.append(
            Message(
                index=index, role=message.get("role", ""), blocks=[_block(b) for b in raw_blocks]
            )
        )
    return rendered


# --- one tool call, for the review page -------------------------------------------------------


@dataclass
class Validation:
    valid: bool
    tool_known: bool
    recorded_errors: list[dict[str, Any]] | None
    current_errors: list[dict[str, Any]] = field(default_factory=list)
    schema: str = ""


@dataclass
class Checks:
    ran: bool  # False while the call is still being checked, or for calls from before checks
    items: list[dict[str, Any]]
    note: str = ""
    at: datetime | None = None
    phase: str = ""  # proposal, approval or execution
    error: str = ""  # why the last try could not check

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.items if not c.get("passed")]


def tool_call_checks(*, tool_call: ToolCall) -> Checks:
    """Return the latest checks of a proposal, when and where they ran, and their note."""
    event = (
        AuditEvent.objects.filter(tool_call=tool_call, kind="proposal.checked")
        .order_by("-created_at", "-id")
        .first()
    )
    proposal = Proposal.objects.filter(pk=tool_call.pk).first()
    if proposal is None or proposal.checked_at is None:
        return Checks(ran=False, items=list(tool_call.checks or []))
    return Checks(
        ran=True,
        items=list(proposal.checks),
        note=event.message if event else "",
        at=proposal.checked_at,
        phase=proposal.checked_in,
        error=proposal.check_error,
    )


def tool_call_conversation(*, tool_call: ToolCall) -> list[Message]:
    """Return the run's conversation up to and including the reply that proposed the call."""
    messages = messages_render(tool_call.run.messages)
    for message in messages:
        if message.role == "assistant" and any(
            b.type == "tool_use" and b.id == tool_call.tool_use_id for b in message.blocks
        ):
            return messages[: message.index + 1]
    return messages


def tool_call_validation(*, tool_call: ToolCall) -> Validation:
    """Check the proposed input against the tool's input model as registered now."""
    try:
        tool = toolset_get(tool_call.run.toolset).get(tool_call.tool_name)
    except UnknownToolset:
        tool = None
    if tool is None:
        return Validation(
            valid=False, tool_known=False, recorded_errors=tool_call.validation_errors
        )
    state = Validation(
        valid=True,
        tool_known=True,
        recorded_errors=tool_call.validation_errors,
        schema=json_pretty(tool.input_schema()),
    )
    try:
        tool.validate(tool_call.effective_input)
    except pydantic.ValidationError as error:
        state.valid = False
        state.current_errors = [
            {"loc": ".".join(str(p) for p in e["loc"]) or "input", "msg": e["msg"]}
            for e in error.errors(include_url=False)
        ]
    return state


# --- a run's timeline -------------------------------------------------------------------------


@dataclass
class Entry:
    at: datetime
    kind: str  # "message", "model_call", "tool_call" or "event"
    message: Message | None = None
    model_call: ModelCall | None = None
    tool_call: ToolCall | None = None
    event: AuditEvent | None = None


# Entries recorded in the same instant keep the order in which the engine writes them.
_KIND_ORDER = {"message": 0, "model_call": 0, "tool_call": 1, "event": 2}


def run_timeline(*, run: AgentRun) -> list[Entry]:
    """Merge the run's messages, model calls, tool calls and audit events in time order."""
    # Messages carry no time of their own: a reply takes the time of its model call (matched
    # by content), a user message of tool results the time of its `run.results_sent` event.
    model_calls = list(run.model_calls.order_by("created_at", "id"))
    tool_calls = list(run.tool_calls.select_related("decided_by").order_by("created_at", "id"))
    events = list(run.events.select_related("actor", "tool_call").order_by("created_at", "id"))

    replies = [c for c in model_calls if c.response and not c.error]
    sent_at = {
        tuple(e.data.get("tool_use_ids") or ()): e.created_at
        for e in events
        if e.kind == "run.results_sent"
    }
    entries: list[Entry] = []
    matched: set[int] = set()
    last = run.created_at
    for message in messages_render(run.messages):
        raw = run.messages[message.index]
        if message.role == "assistant":
            call = next(
                (
                    c
                    for c in replies
                    if c.pk not in matched and c.response.get("content") == raw["content"]
                ),
                None,
            )
            if call is not None:
                matched.add(call.pk)
                message.model_call = call
                last = call.created_at
        elif message.index > 0:
            ids = tuple(b.id for b in message.blocks if b.type == "tool_result")
            last = sent_at.get(ids, last)
        message.at = last
        entries.append(Entry(at=last, kind="message", message=message))
    entries += [
        Entry(at=c.created_at, kind="model_call", model_call=c)
        for c in model_calls
        if c.pk not in matched
    ]
    entries += [Entry(at=c.created_at, kind="tool_call", tool_call=c) for c in tool_calls]
    entries += [Entry(at=e.created_at, kind="event", event=e) for e in events]
    # sorted() is stable: messages keep their conversation order when times tie.
    return sorted(entries, key=lambda e: (e.at, _KIND_ORDER[e.kind]))
