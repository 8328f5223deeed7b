"""The tool registry: domains declare their tools once and group them into toolsets.

`agents` imports no domain app; `support` and `sre` call `toolset_register` from their
AppConfig.ready().
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pydantic

if TYPE_CHECKING:
    from agents.models import AgentRun, ToolCall


class ToolError(Exception):
    """A handler's expected failure: its message goes back to Claude as an is_error result."""


class RetryLater(Exception):
    """A handler's answer that the outcome is not known yet (an outage mid-call).

    The call stays `executing` and the sweep runs it again, with the same idempotency key,
    once its claim is stale. Only tools that are safe to retry may raise it; for others it is
    recorded as a failure.
    """


@dataclass(frozen=True)
class Escalate:
    """A handler's answer that ends the run as escalated to a person."""

    reason: str
    content: Any = None


@dataclass(frozen=True)
class Check:
    """One policy check run before a person reviews a call; hard failures block approval."""

    name: str
    passed: bool
    detail: str = ""
    hard: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail, "hard": self.hard}


@dataclass(frozen=True)
class Preparation:
    """What a tool's `prepare` found: the checks, and a note for the reviewer."""

    checks: list[Check] = field(default_factory=list)
    note: str = ""

    @property
    def blocked(self) -> list[Check]:
        return [c for c in self.checks if c.hard and not c.passed]


@dataclass(frozen=True)
class ToolContext:
    run: AgentRun
    tool_call: ToolCall
    idempotency_key: uuid.UUID
    approved_by: Any = None  # the approving user, for tools that need approval
    edited: bool = False

    def subject_pk(self, subject_type: str, what: str) -> int:
        """The primary key of what the run is about, if it is a `subject_type`."""
        if self.run.subject_type != subject_type or not self.run.subject_id:
            raise ToolError(f"This run is not about {what}.")
        return int(self.run.subject_id)


Handler = Callable[[ToolContext, pydantic.BaseModel], Any]
Prepare = Callable[[ToolContext, pydantic.BaseModel], Preparation]
# authorize(tool_call, user, edited_input) raises PermissionDenied or InvalidTransition.
Authorize = Callable[["ToolCall", Any, "dict[str, Any] | None"], None]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_model: type[pydantic.BaseModel]
    handler: Handler
    # The Django permission ("app_label.codename") that may approve a call; None runs at once.
    approval_permission: str | None = None
    # True when running the handler twice with the same idempotency key acts only once, so an
    # execution a crash interrupted may be run again. Read-only tools are idempotent.
    idempotent: bool | None = None
    # Runs in a worker after the call is proposed and before anyone may approve it: policy
    # checks against live data. A failed hard check blocks the call; Claude is told why.
    prepare: Prepare | None = None
    # Runs in the approving service: the domain's own rules on who may approve what.
    authorize: Authorize | None = None
    # The domain's own review page for a call (its URL), when it has one; the generic
    # review page sends reviewers there.
    review_url: Callable[[ToolCall], str | None] | None = None

    @property
    def requires_approval(self) -> bool:
        return self.approval_permission is not None

    @property
    def safe_to_retry(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return not self.requires_approval

    def input_schema(self) -> dict[str, Any]:
        schema = self.input_model.model_json_schema()
        schema.pop("title", None)
        return schema

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema(),
        }

    def validate(self, data: Any) -> pydantic.BaseModel:
        return self.input_model.model_validate(data, strict=False)


@dataclass
class Toolset:
    name: str
    label: str
    prompt: str
    tools: dict[str, Tool] = field(default_factory=dict)
    # Recorded Messages API replies for the replay backend: a directory of JSON files.
    replay_dir: str | None = None
    # Called after commit when a run of this toolset starts waiting for approval or ends.
    on_status_change: Callable[[AgentRun], None] | None = None

    def add(self, tool: Tool) -> Tool:
        if tool.name in self.tools:
            raise ValueError(f"Tool {tool.name!r} is already in toolset {self.name!r}.")
        self.tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    def specs(self) -> list[dict[str, Any]]:
        return [tool.spec() for tool in self.tools.values()]


class UnknownToolset(LookupError):
    pass


_toolsets: dict[str, Toolset] = {}


def toolset_register(toolset: Toolset) -> Toolset:
    """Register a toolset; registering the same name again replaces it (reloads, tests)."""
    _toolsets[toolset.name] = toolset
    return toolset


def toolset_get(name: str) -> Toolset:
    try:
        return _toolsets[name]
    except KeyError:
        raise UnknownToolset(f"No toolset named {name!r} is registered.") from None


def toolset_list() -> list[Toolset]:
    return list(_toolsets.values())


def tool_get(toolset: str, name: str) -> Tool | None:
    return toolset_get(toolset).get(name)


def permission_list() -> set[str]:
    """Every permission that approves some registered tool."""
    return {
        tool.approval_permission
        for ts in _toolsets.values()
        for tool in ts.tools.values()
        if tool.approval_permission
    }


def tool_review_url(call: ToolCall) -> str | None:
    """The domain's review page for the call, if its tool has one."""
    try:
        tool = tool_get(call.run.toolset, call.tool_name)
    except UnknownToolset:
        return None
    return tool.review_url(call) if tool is not None and tool.review_url else None
