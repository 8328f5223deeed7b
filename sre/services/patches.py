"""Patch proposals, from the agent's create_pull_request to a person's decision.

proposed ─► approved ─► publishing ─► pr_open / published ─► merged / closed
    │                        └─► failed
    └─► rejected          blocked (no diff, or it does not apply; never approvable)

Each transition is a compare-and-set in a transaction with its audit row. Approval goes
through `patch_approve` (the permission is checked there); the engine's generic approval is
gated by `patch_authorize`, so nobody can open a pull request around this service.
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from agents.audit import audit_record
from agents.models import ToolCall
from agents.services import InvalidTransition, tool_call_approve, tool_call_reject
from sre.models import Incident, PatchProposal
from sre.services.code import incident_scratch
from sre.services.incidents import (
    SUBJECT_TYPE,
    incident_propose_patch,
    incident_reinvestigate,
    incident_resolve,
)

S = PatchProposal.Status
PERMISSION = "sre.approve_patch"


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
        data={"patch": patch.pk, "status": patch.status, **data},
    )


def branch_name(*, incident_id: int, title: str) -> str:
    slug = slugify(title)[:40].strip("-") or "fix"
    return f"sre/incident-{incident_id}-{slug}"


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


def patch_propose(
    *, incident_id: int, tool_call: ToolCall, title: str, root_cause: str
) -> PatchProposal:
    """Record the scratch copy's diff and its checks; a proposal that fails them is blocked."""
    existing = PatchProposal.objects.filter(tool_call=tool_call).first()
    if existing is not None:
        return existing  # prepare ran again (a retried task): the first record stands
    scratch = incident_scratch(incident_id=incident_id)
    diff = scratch.diff()
    checks = scratch.checks(command=settings.SRE_CHECK_COMMAND, timeout=settings.SRE_CHECK_TIMEOUT)
    for check in checks:
        check["hard"] = check["name"] == "patch applies to the live tree" or check["name"].endswith(
            " compiles"
        )
    blocked = [c for c in checks if c["hard"] and not c["passed"]]
    with transaction.atomic():
        patch, created = PatchProposal.objects.get_or_create(
            tool_call=tool_call,
            defaults={
                "incident_id": incident_id,
                "title": title,
                "root_cause": root_cause,
                "scratchpad": scratchpad_of(tool_call),
                "diff": diff,
                "changed_files": scratch.changed_files(),
                "base_commit": scratch.commit,
                "checks": checks,
                "branch": branch_name(incident_id=incident_id, title=title),
                "status": S.BLOCKED if blocked else S.PROPOSED,
                "status_reason": "; ".join(f"{c['name']}: {c['detail']}" for c in blocked),
            },
        )
        if created:
            patch_audit(patch, patch.status, checks=checks)
            incident = Incident.objects.get(pk=incident_id)
            if not blocked and incident.status == Incident.Status.INVESTIGATING:
                incident_propose_patch(
                    incident_id=incident_id, reason=f"Patch #{patch.pk} waits for review."
                )
    return patch


def _check_permission(user: Any) -> None:
    if not (user.is_active and user.has_perm(PERMISSION)):
        raise PermissionDenied(f"Deciding on patches needs the permission {PERMISSION}.")


def _locked(patch_id: int, allowed: tuple[str, ...], verb: str) -> PatchProposal:
    patch = (
        PatchProposal.objects.select_for_update().select_related("tool_call__run").get(pk=patch_id)
    )
    if patch.status not in allowed:
        raise InvalidTransition(
            f"Patch #{patch.pk} is {patch.get_status_display().lower()}; it cannot be {verb}."
        )
    return patch


def patch_approve(*, patch_id: int, user: Any, note: str = "") -> PatchProposal:
    """Approve a patch; a worker then makes the branch, the pull request and the notice."""
    _check_permission(user)
    with transaction.atomic():
        patch = _locked(patch_id, (S.PROPOSED,), "approved")
        patch.status, patch.decided_by, patch.decided_at = S.APPROVED, user, timezone.now()
        patch.save()
        patch_audit(patch, "approved", actor=user, message=note)
        tool_call_approve(tool_call_id=patch.tool_call_id, user=user, note=note)
    return patch


def patch_reject(*, patch_id: int, user: Any, reason: str) -> PatchProposal:
    """Reject a patch; Claude is told the reason and the incident goes back to investigation."""
    _check_permission(user)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidTransition("A rejection needs a reason; Claude is told it.")
    with transaction.atomic():
        patch = _locked(patch_id, (S.PROPOSED,), "rejected")
        patch.status, patch.decided_by, patch.decided_at = S.REJECTED, user, timezone.now()
        patch.reject_reason, patch.finished_at = reason, timezone.now()
        patch.save()
        patch_audit(patch, "rejected", actor=user, message=reason)
        if Incident.objects.filter(
            pk=patch.incident_id, status=Incident.Status.PATCH_PROPOSED
        ).exists():
            incident_reinvestigate(
                incident_id=patch.incident_id, actor=user, reason=f"Patch rejected: {reason}"
            )
        tool_call_reject(tool_call_id=patch.tool_call_id, user=user, reason=reason)
    return patch


def patch_authorize(call: Any, user: Any, edited_input: dict[str, Any] | None) -> None:
    """The engine's approval gate for create_pull_request: only `patch_approve` may open it."""
    patch = PatchProposal.objects.filter(tool_call_id=call.pk).first()
    if patch is None or patch.status != S.APPROVED or patch.decided_by_id != user.pk:
        raise InvalidTransition(
            "Patches are approved on the patch review page (sre.services.patches.patch_approve)."
        )
    if edited_input is not None:
        raise InvalidTransition("A patch is approved as proposed; reject it to ask for changes.")


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
        if patch.status != S.PR_OPEN:
            return patch  # a repeated delivery
        patch.status = S.MERGED if merged else S.CLOSED
        patch.finished_at = timezone.now()
        patch.save()
        patch_audit(patch, patch.status, message=f"Pull request #{number} {patch.status}.")
        if merged:
            # A person may have resolved or ignored it meanwhile.
            with contextlib.suppress(InvalidTransition):
                incident_resolve(
                    incident_id=patch.incident_id, reason=f"Pull request #{number} was merged."
                )
    return patch
