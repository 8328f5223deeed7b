"""The tool registry: domains declare their tools once and group them into toolsets.

`agents` imports no domain app; `support` and `sre` call `toolset_register` from their
AppConfig.ready().
"""

from __future__ import annotations

import functools
import json
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
    """A transient failure: an outage, a timeout, a 5xx. The same work may succeed later.

    Raised by a handler, the outcome is not known yet: the call is tried again, with the same
    idempotency key, after a growing delay (only tools that are safe to retry; for others it is
    recorded as a failure). Raised while checks gather live data, the checks are tried again
    later. Either way the attempts are capped, and then the call fails visibly.
    """


# Exceptions the engine treats as transient wherever they come from: worth another try.
TRANSIENT = (RetryLater, TimeoutError, ConnectionError)


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
    """What a proposal's checks found: the checks, and a note for the reviewer."""

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
    # For consequential tools: when the checks run ("proposal", "approval", "execution"), the
    # validated input they judge (edited or proposed), what `gather` read, the domain's row.
    phase: str = ""
    value: Any = None
    evidence: Any = None
    record: Any = None
    attempt: int = 0

    def subject_pk(self, subject_type: str, what: str) -> int:
        """The primary key of what the run is about, if it is a `subject_type`."""
        if self.run.subject_type != subject_type or not self.run.subject_id:
            raise ToolError(f"This run is not about {what}.")
        return int(self.run.subject_id)


Handler = Callable[[ToolContext, pydantic.BaseModel], Any]
# authorize(context, user) raises PermissionDenied or InvalidTransition.
Authorize = Callable[[ToolContext, Any], None]


@dataclass(frozen=True)
class ProposalType:
    """What makes a tool consequential, declared once: the engine calls the rest.

    Like a workflow task type, it declares who may decide, what is checked, the domain's row of
    what the call would do and its evidence page; the engine owns the state. Each function takes
    the call's `ToolContext` (with `phase`, `value`, `evidence` and `record` filled in).
    Checks run when the call is proposed, again at every approval and right before execution.
    """

    # The Django permission ("app_label.codename") that may approve or reject a call.
    permission: str
    # The domain's row for the call (a subclass of agents.models.ProposalRecord), or None.
    model: Any = None
    # Reads live data outside any transaction (a payments service, a git tree). Raise
    # RetryLater (or let a TimeoutError/ConnectionError through) for an outage.
    gather: Callable[[ToolContext], Any] | None = None
    # Records the domain row from the first evidence, in the proposing transaction; once.
    propose: Callable[[ToolContext], Any] | None = None
    # The checks, in the deciding transaction and under `lock`: they may count other proposals.
    check: Callable[[ToolContext], Preparation] | None = None
    # Calls with the same key are checked and decided one at a time (a customer, a repository).
    lock: Callable[[ToolContext], str] | None = None
    # How many different people must approve the input judged.
    approvals: Callable[[ToolContext], int] | None = None
    # One line for the inbox and the notices: amount and customer, file, recipient.
    summary: Callable[[ToolContext], str] | None = None
    # The domain's own rules on who may decide what (raise PermissionDenied/InvalidTransition).
    authorize: Authorize | None = None
    # Called in the transaction where the call starts waiting for people (record), and in that
    # of its closing however it closes (succeeded, failed, rejected, blocked, expired,
    # cancelled): (record, status).
    on_wait: Callable[[Any], None] | None = None
    on_close: Callable[[Any, str], None] | None = None
    # The review page's evidence, and what it needs beside the record.
    template: str = "agents/proposals/_input.html"
    context: Callable[[Any, ToolCall], dict[str, Any]] | None = None
    # The form that turns a reviewer's edit into edited input (see agents.admin.forms);
    # None with `editable` True means the generic JSON edit; `editable` False: approve or reject.
    edit_form: Any = None
    editable: bool = True
    # Hours a proposal may wait before it expires; None: AGENTS_APPROVAL_TTL_HOURS.
    ttl_hours: Callable[[], float] | None = None
    # Whether Slack may offer Approve / Reject for this record (when the tool allows Slack).
    slack_decidable: Callable[[Any], bool] | None = None
    # One line on what came of it, once it ran (for the notice): "Pull request #4 open: …".
    outcome: Callable[[Any, ToolCall], str] | None = None


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_model: type[pydantic.BaseModel]
    handler: Handler
    # A consequential tool's proposal: a person approves every call before it runs. None runs
    # the tool at once (look-ups, reads).
    proposal: ProposalType | None = None
    # True when running the handler twice with the same idempotency key acts only once, so an
    # execution a crash interrupted may be run again. Read-only tools are idempotent.
    idempotent: bool | None = None

    def __post_init__(self) -> None:
        unbounded = numbers_unbounded(self.input_model)
        if unbounded:
            raise ValueError(
                f"Tool {self.name!r}: every number in its input needs a lower and an upper bound "
                f"(what the domain allows and the database holds): {', '.join(unbounded)}."
            )

    @property
    def requires_approval(self) -> bool:
        return self.proposal is not None

    @property
    def approval_permission(self) -> str | None:
        return self.proposal.permission if self.proposal else None

    @property
    def safe_to_retry(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return not self.requires_approval

    def input_schema(self) -> dict[str, Any]:
        return _schema(self.input_model)

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema(),
        }

    def validate(self, data: Any) -> pydantic.BaseModel:
        """Validate strictly, as JSON: no string to number, no bool to int, no unknown field."""
        if isinstance(data, dict):
            known = set()
            for name, info in self.input_model.model_fields.items():
                known |= {name, info.alias or name}
            unknown = sorted(str(k) for k in data if k not in known)
            if unknown:
                raise pydantic.ValidationError.from_exception_data(
                    self.input_model.__name__,
                    [
                        {"type": "extra_forbidden", "loc": (key,), "input": data[key]}
                        for key in unknown
                    ],
                )
        try:
            text = json.dumps(data, allow_nan=False)
        except (TypeError, ValueError):
            text = "null"  # not JSON at all: let validation say what is wrong
        return self.input_model.model_validate_json(text, strict=True)


@functools.cache
@functools.cache
def _schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The model's JSON schema, built once per model (every step sends every tool's)."""
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema


def numbers_unbounded(model: type[pydantic.BaseModel]) -> list[str]:
    """The input fields that take a number without both a lower and an upper bound."""
    found = []
    for name, prop in (_schema(model).get("properties") or {}).items():
        options = prop.get("anyOf") or [prop]
        for option in options:
            if option.get("type") not in ("integer", "number"):
                continue
            low = "minimum" in option or "exclusiveMinimum" in option
            high = "maximum" in option or "exclusiveMaximum" in option
            if not (low and high):
                found.append(name)
    return found


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


def tool_of(call: ToolCall) -> Tool | None:
    """The registered tool of a call, or None once its toolset or tool is gone."""
    try:
        return tool_get(call.run.toolset, call.tool_name)
    except UnknownToolset:
        return None


def proposal_type_of(call: ToolCall) -> ProposalType | None:
    tool = tool_of(call)
    return tool.proposal if tool is not None else None


def consequential_tools() -> list[tuple[Toolset, Tool]]:
    """Every registered tool that a person approves, with its toolset: the inbox's kinds."""
    return [(ts, t) for ts in _toolsets.values() for t in ts.tools.values() if t.proposal]


# --- subjects: what a run or an audit row is about ("support.ticket" 12) ----------------------

_subject_urls: dict[str, Callable[[str], str]] = {}


def subject_url_register(subject_type: str, url: Callable[[str], str]) -> None:
    """Let the engine's pages link to a domain's subject: `url(subject_id)` is its page."""
    _subject_urls[subject_type] = url


def subject_url(subject_type: str, subject_id: str) -> str:
    """The page of a subject, or "" when its domain registered none or the id is not one."""
    url = _subject_urls.get(subject_type)
    if url is None or not subject_id:
        return ""
    try:
        return url(subject_id)
    except Exception:  # an id the domain's URL refuses (NoReverseMatch, ValueError)
        return ""
