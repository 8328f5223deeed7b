"""Patch proposals: what the SRE watchdog declares for create_pull_request.

Where a patch stands is its proposal's, which the engine owns: checked when Claude proposes it
(the diff applies to the live tree, each changed Python file compiles, SRE_CHECK_COMMAND
passes), checked again at approval and right before publishing (it still applies, the scratch
copy still holds the reviewed diff), approved as proposed or rejected by someone with
sre.approve_patch. This module records the diff, keeps the incident in step, and answers
GitHub's word on the pull request.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from agents.audit import audit_record
from agents.models import ToolCall
from agents.registry import Check, Preparation, ToolContext
from agents.services import InvalidTransition, proposal_approve, proposal_reject
from sre.models import Incident, PatchProposal
from sre.services.code import incident_scratch, text_redact
from sre.services.incidents import (
    SUBJECT_TYPE,
    incident_make_branch,
    incident_propose_patch,
    incident_reinvestigate,
    incident_resolve,
)

PERMISSION = "sre.approve_patch"
APPLIES = "patch applies to the live tree"
SAME_DIFF = "the scratch copy still holds the reviewed diff"


def patch_audit(
    patch: PatchProposal, kind: str, *, actor: Any = None, message: str = "", **data: Any
) -> None:
    audit_record(
        kind=f"patch.{kind}",
        actor=actor,
        tool_call=patch.tool_call,
        run=patch.tool_call.run,
        subject_type=SUBJECT_TYPE,
        subject_id=patch.incident_id,
        message=message,
        data={"patch": patch.pk, **data},
    )


BRANCH_SLUG_MAX = 48


def branch_name(*, incident_id: int, title: str) -> str:
    """`sre/incident-<id>-<slug>`: every run of other characters, `/` and `.` too, is one dash."""
    # slugify drops "/" and "." (app/api.py -> appapipy); here they part words, as in a path.
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9_]+", "-", text).strip("-_")
    if len(slug) > BRANCH_SLUG_MAX:
        # Cut at the last whole word that fits, unless that leaves too little.
        cut = slug[: BRANCH_SLUG_MAX + 1].rpartition("-")[0]
        slug = cut if len(cut) >= BRANCH_SLUG_MAX // 2 else slug[:BRANCH_SLUG_MAX]
    return f"sre/incident-{incident_id}-{slug.strip('-_') or 'fix'}"


def scratchpad_of(call: ToolCall) -> str:
    """The text of the reply that asked for the call: Claude's scratchpad and hypothesis."""
    for message in reversed(call.run.messages):
        if message.get("role") != "assistant" or not isinstance(message.get("content"), list):
            continue
        if any(b.get("id") == call.tool_use_id for b in message["content"]):
            return "\n".join(
                b.get("text", "") for b in message["content"] if b.get("type") == "text"
            ).strip()
    return ""


# --- the proposal type's parts ----------------------------------------------------------------


@dataclass(frozen=True)
class TreeNow:
    """The scratch copy's diff and what the checks found, read outside any transaction."""

    diff: str
    changed_files: list[str]
    commit: str
    checks: list[dict[str, Any]] = field(default_factory=list)


def _incident_id(context: ToolContext) -> int:
    return context.subject_pk(SUBJECT_TYPE, "an incident")


def patch_gather(context: ToolContext) -> TreeNow:
    """The scratch copy's diff and its checks; the slow check command only when proposed."""
    scratch = incident_scratch(incident_id=_incident_id(context))
    command = settings.SRE_CHECK_COMMAND if context.phase == "proposal" else ""
    return TreeNow(
        diff=scratch.diff(),
        changed_files=scratch.changed_files(),
        commit=scratch.commit,
        checks=scratch.checks(command=command, timeout=settings.SRE_CHECK_TIMEOUT),
    )


def patch_propose(context: ToolContext) -> PatchProposal:
    """Record the diff the reviewer will see (it is what gets published, or nothing is)."""
    tree: TreeNow = context.evidence
    incident_id = _incident_id(context)
    title = context.value.title
    return PatchProposal.objects.create(
        tool_call=context.tool_call,
        incident_id=incident_id,
        scratchpad=scratchpad_of(context.tool_call),
        diff=tree.diff,
        changed_files=tree.changed_files,
        base_commit=tree.commit,
        branch=branch_name(incident_id=incident_id, title=title),
    )


def patch_check(context: ToolContext) -> Preparation:
    """No diff, a diff that does not apply, a file that does not compile: each blocks."""
    tree: TreeNow = context.evidence
    patch: PatchProposal = context.record
    checks = [
        Check(
            c["name"],
            c["passed"],
            text_redact(c.get("detail", ""))[-1000:],
            hard=c["name"] == APPLIES or c["name"].endswith(" compiles"),
        )
        for c in tree.checks
    ]
    if context.phase != "proposal":
        same = tree.diff == patch.diff or bool(patch.commit)
        checks.insert(
            0,
            Check(
                SAME_DIFF,
                same,
                "Yes." if same else "The scratch copy changed after the review.",
                hard=True,
            ),
        )
        if patch.commit:
            # A retried publish: the branch holds the reviewed diff already.
            checks = [c for c in checks if c.name != APPLIES] + [
                Check(APPLIES, True, f"committed as {patch.commit[:12]}", hard=True)
            ]
    files = ", ".join(patch.changed_files) or "no changes"
    return Preparation(checks=checks, note=f"Patch #{patch.pk}: {files}.")


def patch_summary(context: ToolContext) -> str:
    patch: PatchProposal = context.record
    files = ", ".join(patch.changed_files[:3]) or "no changes"
    return f"{context.value.title} · {files} · incident #{patch.incident_id}"


def patch_on_wait(patch: PatchProposal) -> None:
    if Incident.objects.filter(pk=patch.incident_id, status=Incident.Status.INVESTIGATING).exists():
        incident_propose_patch(
            incident_id=patch.incident_id, reason=f"Patch #{patch.pk} waits for review."
        )


def patch_on_close(patch: PatchProposal, status: str) -> None:
    """The incident follows its patch: on a branch or in a pull request, or back to work."""
    if status == ToolCall.Status.SUCCEEDED:
        # Publishing moves the incident when it opens a pull request; a branch alone is here.
        patch.refresh_from_db(fields=["commit", "pr_number", "branch"])
        if patch.commit and not patch.pr_number:
            with contextlib.suppress(InvalidTransition):  # a person decided meanwhile
                incident_make_branch(
                    incident_id=patch.incident_id,
                    reason=f"Patch #{patch.pk} is committed to branch {patch.branch} "
                    f"({patch.commit[:12]}); no pull request was opened.",
                )
        return
    if Incident.objects.filter(
        pk=patch.incident_id, status=Incident.Status.PATCH_PROPOSED
    ).exists():
        call = patch.tool_call
        why = call.decision_reason or call.result or status
        by = f" by {call.decided_by.get_username()}" if call.decided_by_id else ""
        incident_reinvestigate(
            incident_id=patch.incident_id,
            actor=call.decided_by,
            reason=f"Patch #{patch.pk} {CLOSED_WORDS.get(status, status)}{by}: {why}"[:2000],
        )


# How a patch's closing reads on its incident, by its tool call's closing status.
CLOSED_WORDS = {
    "failed": "could not be published",
    "rejected": "was rejected",
    "blocked": "was blocked by its checks",
    "expired": "expired undecided",
    "cancelled": "was cancelled with its run",
}


def patch_outcome(patch: PatchProposal, call: Any) -> str:
    if patch.pr_url:
        return f"pull request #{patch.pr_number}: {patch.pr_url}"
    if patch.commit:
        return f"branch {patch.branch} at {patch.commit[:12]} (no pull request)"
    return patch.notes


def patch_review_context(patch: PatchProposal, call: Any) -> dict[str, Any]:
    from sre.diffs import diff_lines, diff_styles

    return {
        "patch": patch,
        "incident": patch.incident,
        "diff_lines": diff_lines(patch.diff),
        "diff_styles": diff_styles(),
        "approve_label": "Approve: push the branch and open the pull request",
    }


# --- decisions, named for patches -------------------------------------------------------------


def patch_approve(*, patch_id: int, user: Any, note: str = "") -> PatchProposal:
    """Approve a patch; a worker then makes the branch and the pull request."""
    patch = PatchProposal.objects.get(pk=patch_id)
    proposal_approve(tool_call_id=patch.tool_call_id, user=user, note=note)
    return PatchProposal.objects.select_related("tool_call").get(pk=patch_id)


def patch_reject(*, patch_id: int, user: Any, reason: str) -> PatchProposal:
    """Reject a patch; Claude is told the reason and the incident goes back to investigation."""
    patch = PatchProposal.objects.get(pk=patch_id)
    proposal_reject(tool_call_id=patch.tool_call_id, user=user, reason=reason)
    return PatchProposal.objects.select_related("tool_call").get(pk=patch_id)


def patch_pull_request_closed(*, number: int, head: str, merged: bool) -> PatchProposal | None:
    """Record GitHub's word that the pull request was merged or closed; None if not ours."""
    with transaction.atomic():
        patch = (
            PatchProposal.objects.select_for_update()
            .select_related("tool_call__run")
            .filter(pr_number=number, branch=head)
            .first()
        )
        if patch is None:
            return None
        if patch.pr_state != PatchProposal.PullRequest.OPEN:
            return patch  # a repeated delivery
        patch.pr_state = (
            PatchProposal.PullRequest.MERGED if merged else PatchProposal.PullRequest.CLOSED
        )
        patch.save(update_fields=["pr_state", "updated_at"])
        patch_audit(patch, patch.pr_state, message=f"Pull request #{number} {patch.pr_state}.")
        # A person may have resolved, ignored or escalated it meanwhile.
        with contextlib.suppress(InvalidTransition):
            if merged:
                incident_resolve(
                    incident_id=patch.incident_id, reason=f"Pull request #{number} was merged."
                )
            else:
                incident_reinvestigate(
                    incident_id=patch.incident_id,
                    reason=f"Pull request #{number} was closed without merging: the fix did not land.",
                )
    return patch
