"""The SRE agent's tools, registered with the engine as the "sre" toolset.

read_file and search_code read the incident's scratch copy (the deployed commit plus the
agent's own edits, so Claude sees what it changed); edit_file changes only that copy. The live
tree is never written. Everything returned to Claude passes `text_redact`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from django.conf import settings
from pydantic import BaseModel, Field

from agents.models import AgentRun
from agents.notices import notice_send
from agents.prompts import prompt_register
from agents.registry import (
    Escalate,
    ProposalType,
    Tool,
    ToolContext,
    ToolError,
    Toolset,
    subject_url_register,
    toolset_register,
)
from agents.services import InvalidTransition
from sre.models import Incident, PatchProposal
from sre.services import patches
from sre.services.code import incident_scratch, text_redact
from sre.services.incidents import SUBJECT_TYPE, incident_escalate
from sre.services.publishing import incident_url, patch_publish
from sre.workspace import EditRefused, PathRefused, code_search, file_read

TOOLSET = "sre"


# More lines than any source file has: the bound keeps a line number a number.
LINE_MAX = 10_000_000


class ReadFile(BaseModel):
    path: str = Field(min_length=1, max_length=1000, description="Repository-relative path.")
    start_line: int | None = Field(
        default=None, ge=1, le=LINE_MAX, description="First line (1-based)."
    )
    end_line: int | None = Field(
        default=None, ge=1, le=LINE_MAX, description="Last line, inclusive."
    )


class SearchCode(BaseModel):
    query: str = Field(min_length=1, max_length=500, description="Text (or regex) to find.")
    regex: bool = Field(default=False, description="Treat the query as a Python regex.")


class EditFile(BaseModel):
    path: str = Field(min_length=1, max_length=1000, description="Repository-relative path.")
    search: str = Field(
        min_length=1, description="Exact text to replace; it must occur exactly once."
    )
    replace: str = Field(description="The text that replaces it.")


class CreatePullRequest(BaseModel):
    title: str = Field(min_length=3, max_length=200, description="The pull request's title.")
    root_cause: str = Field(
        min_length=10, max_length=5000, description="The root cause and how the edits fix it."
    )


class EscalateToHuman(BaseModel):
    reason: str = Field(min_length=3, max_length=2000, description="What a person must decide.")


def _incident(context: ToolContext) -> Incident:
    return Incident.objects.get(pk=context.subject_pk(SUBJECT_TYPE, "an incident"))


def read_file(context: ToolContext, value: ReadFile) -> str:
    scratch = incident_scratch(incident_id=_incident(context).pk)
    try:
        text = file_read(
            scratch.path,
            value.path,
            start=value.start_line,
            end=value.end_line,
            max_bytes=settings.SRE_READ_MAX_BYTES,
            deny=scratch.deny,
        )
    except PathRefused as error:
        raise ToolError(str(error)) from None
    except OSError as error:
        raise ToolError(f"{value.path!r} could not be read: {error.strerror}") from None
    return text_redact(text)


def search_code(context: ToolContext, value: SearchCode) -> str:
    scratch = incident_scratch(incident_id=_incident(context).pk)
    try:
        hits, cut = code_search(scratch.path, value.query, regex=value.regex, deny=scratch.deny)
    except ValueError as error:
        raise ToolError(str(error)) from None
    if not hits:
        return "No matches."
    lines = [f"{h.path}:{h.line}: {h.text}" for h in hits]
    if cut:
        lines.append(f"... more matches; only the first {len(hits)} are shown.")
    return text_redact("\n".join(lines))


def edit_file(context: ToolContext, value: EditFile) -> str:
    incident = _incident(context)
    scratch = incident_scratch(incident_id=incident.pk)
    try:
        relative = scratch.edit(value.path, value.search, value.replace)
    except (PathRefused, EditRefused) as error:
        raise ToolError(str(error)) from None
    return text_redact(
        f"Edited {relative} in the scratch copy (the live code is unchanged). The diff so far:\n"
        + scratch.diff()
    )


def create_pull_request(context: ToolContext, value: CreatePullRequest) -> dict:
    return patch_publish(patch_id=context.record.pk)


def escalate_to_human(context: ToolContext, value: EscalateToHuman) -> Escalate:
    incident = _incident(context)
    with contextlib.suppress(InvalidTransition):  # a person decided meanwhile; the run ends
        incident_escalate(incident_id=incident.pk, reason=f"The SRE agent: {value.reason}")
    note = "Handed over to a person."
    try:
        if notice_send(
            key=f"escalation:{context.tool_call.tool_use_id}",
            tool_name="escalate_to_human",
            text=f"Incident #{incident.pk} ({incident.title}) needs a person: {value.reason}",
            link=incident_url(incident.pk),
        ):
            note += " On-call was told on Slack."
    except Exception as error:  # a Slack outage must not keep the incident from a person
        note += f" The Slack notice failed: {error}"
    return Escalate(reason=value.reason, content=note)


def run_status_changed(run: AgentRun) -> None:
    """A run that ends without a patch under review hands its incident to a person."""
    if not run.is_finished or run.subject_type != SUBJECT_TYPE:
        return
    incident = Incident.objects.filter(pk=int(run.subject_id)).first()
    if incident is None or incident.status != Incident.Status.INVESTIGATING:
        return
    with contextlib.suppress(InvalidTransition):
        incident_escalate(
            incident_id=incident.pk,
            reason=f"The SRE agent's run #{run.pk} ended ({run.get_status_display().lower()}) "
            "without a patch under review.",
        )


def _incident_url(subject_id: str) -> str:
    from django.urls import reverse

    return reverse("admin:sre_incident_change", args=[int(subject_id)])


def register() -> Toolset:
    prompt_register(name="sre", version=1, template="prompts/sre/v1.txt")
    subject_url_register(SUBJECT_TYPE, _incident_url)
    toolset = Toolset(
        name=TOOLSET,
        label="SRE watchdog",
        prompt="sre",
        replay_dir=str(Path(__file__).parent / "replays"),
        on_status_change=run_status_changed,
    )
    toolset.add(
        Tool(
            "read_file",
            "Read a file of the deployed code (with your edits), optionally a line range. "
            "Lines come numbered; secrets are masked.",
            ReadFile,
            read_file,
        )
    )
    toolset.add(
        Tool(
            "search_code",
            "Search the repository's tracked files for text (or a regex); bounded results.",
            SearchCode,
            search_code,
        )
    )
    toolset.add(
        Tool(
            "edit_file",
            "Replace the one occurrence of `search` with `replace` in a file of the scratch "
            "copy. The live code is never changed; a person reviews the diff.",
            EditFile,
            edit_file,
            idempotent=False,
        )
    )
    toolset.add(
        Tool(
            "create_pull_request",
            "Propose your edits as a pull request, with a title and the root cause. A person "
            "reviews the diff and the checks before anything is pushed.",
            CreatePullRequest,
            create_pull_request,
            proposal=ProposalType(
                permission=patches.PERMISSION,
                model=PatchProposal,
                gather=patches.patch_gather,
                propose=patches.patch_propose,
                check=patches.patch_check,
                summary=patches.patch_summary,
                on_wait=patches.patch_on_wait,
                on_close=patches.patch_on_close,
                template="sre/_patch_evidence.html",
                context=patches.patch_review_context,
                editable=False,  # approved as proposed; a rejection asks for another
                outcome=patches.patch_outcome,
            ),
            idempotent=True,  # every publishing step finds what an earlier attempt made
        )
    )
    toolset.add(
        Tool(
            "escalate_to_human",
            "Hand the incident to a person, with the reason. The run stops.",
            EscalateToHuman,
            escalate_to_human,
        )
    )
    return toolset_register(toolset)
