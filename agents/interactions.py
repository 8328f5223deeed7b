"""Deciding from Slack: Approve / Reject buttons on a proposal's notice.

Off unless a tool is listed in SLACK_DECISION_TOOLS. The webhook checks the request's
signature and timestamp (agents.views), then `slack_interaction_receive` records the
interaction once by its trigger id — a replayed request finds it and changes nothing — and
queues the decision for a worker (Slack wants an answer within three seconds; the checks may
call a payments service). The worker maps the Slack user to a Countersign user (a mapping
staff keep, or the Slack profile's email when exactly one active user has it) and calls the
same services the console does, so the permission, the two-person rule and the checks apply
alike; the approval records the channel. Above a proposal type's threshold Slack offers only
"Open in console", and a button press for such a proposal is refused. The answer goes back to
the person through the interaction's response_url.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.integrations import slack
from agents.models import Approval, Proposal, SlackIdentity, SlackInteraction, ToolCall
from agents.notices import review_url, slack_decidable
from agents.queue import enqueue_on_commit
from agents.services import (
    ChecksUnavailable,
    InvalidTransition,
    ProposalBlocked,
    proposal_approve,
    proposal_reject,
)

logger = logging.getLogger(__name__)

TASK = "agents.tasks.slack_decision_task"
REASON_BLOCK, REASON_ACTION = "reason", "reason_input"
REPLAYED = "This Slack action was received already; nothing changed."


def slack_interaction_receive(*, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Record a verified interaction once and queue its decision; (HTTP status, body)."""
    kind = payload.get("type", "")
    trigger_id = str(payload.get("trigger_id") or "")
    slack_user = str((payload.get("user") or {}).get("id") or "")
    if not trigger_id or not slack_user:
        return 400, {"text": "The interaction has no trigger id or no user."}
    if kind == "block_actions":
        actions = payload.get("actions") or []
        action = actions[0] if actions else {}
        name = action.get("action_id", "")
        if name == "open":
            return 200, {}  # a link button: Slack opens the console itself
        if name not in ("approve", "reject"):
            return 200, {"text": f"Unknown action {name!r}; nothing changed."}
        call_id, reason, response_url = _int(action.get("value")), "", payload.get("response_url")
    elif kind == "view_submission":
        view = payload.get("view") or {}
        name = "reject"
        call_id = _int(view.get("private_metadata"))
        values = (view.get("state") or {}).get("values") or {}
        reason = ((values.get(REASON_BLOCK) or {}).get(REASON_ACTION) or {}).get("value") or ""
        response_url = ""
        if not reason.strip():
            return 200, {
                "response_action": "errors",
                "errors": {REASON_BLOCK: "A rejection needs a reason; Claude is told it."},
            }
    else:
        return 200, {"text": f"Countersign does not handle {kind!r} interactions."}
    call = ToolCall.objects.filter(pk=call_id).first() if call_id else None
    if call is None:
        return 200, {"text": "No such proposal; nothing changed."}
    if kind == "block_actions" and name == "reject":
        # Ask for the reason first; nothing is recorded until it comes back.
        return _reason_ask(payload, call)
    try:
        with transaction.atomic():
            interaction = SlackInteraction.objects.create(
                trigger_id=trigger_id,
                kind=kind,
                action=name,
                slack_user_id=slack_user,
                tool_call=call,
                reason=reason.strip()[:2000],
                response_url=(response_url or "")[:1000],
            )
            enqueue_on_commit(TASK, interaction.pk)
    except IntegrityError:
        return 200, {"response_type": "ephemeral", "text": REPLAYED}
    if kind == "view_submission":
        return 200, {}  # closes the modal; the notice shows the outcome
    return 200, {"response_type": "ephemeral", "text": "Received; checking…"}


def _reason_ask(payload: dict[str, Any], call: ToolCall) -> tuple[int, dict[str, Any]]:
    view = {
        "type": "modal",
        "callback_id": "countersign_reject",
        "private_metadata": str(call.pk),
        "title": {"type": "plain_text", "text": "Reject"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Why? (Claude is told)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_ACTION,
                    "multiline": True,
                    "min_length": 3,
                    "max_length": 2000,
                },
            }
        ],
    }
    try:
        slack.view_open(
            token=settings.SLACK_BOT_TOKEN,
            api_url=settings.SLACK_API_URL,
            trigger_id=str(payload["trigger_id"]),
            view=view,
        )
    except slack.SlackError as error:
        return 200, {"response_type": "ephemeral", "text": f"Could not ask for a reason: {error}"}
    return 200, {}


def _int(value: Any) -> int:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return 0
    return number if 0 < number < 2**63 else 0


def slack_user_resolve(*, slack_user_id: str) -> Any:
    """The active Countersign user who decides as this Slack user, or None."""
    identity = (
        SlackIdentity.objects.select_related("user").filter(slack_user_id=slack_user_id).first()
    )
    if identity is not None:
        return identity.user if identity.user.is_active else None
    try:
        email = slack.user_email(
            token=settings.SLACK_BOT_TOKEN, api_url=settings.SLACK_API_URL, user_id=slack_user_id
        )
    except slack.SlackError:
        return None
    if not email:
        return None
    users = list(get_user_model().objects.filter(email__iexact=email, is_active=True)[:2])
    return users[0] if len(users) == 1 else None


def slack_decision_handle(*, interaction_id: int) -> str:
    """Decide as the interaction asked, with the mapped user's rights; answer them in Slack."""
    with transaction.atomic():
        claimed = SlackInteraction.objects.filter(pk=interaction_id, handled_at=None).update(
            handled_at=timezone.now()
        )
    interaction = SlackInteraction.objects.select_related("tool_call__run").get(pk=interaction_id)
    if not claimed:
        return f"interaction {interaction_id}: handled already"
    outcome = _decide(interaction)
    SlackInteraction.objects.filter(pk=interaction.pk).update(outcome=outcome[:2000])
    if interaction.response_url:
        try:
            slack.response_send(url=interaction.response_url, text=outcome)
        except slack.SlackError as error:
            logger.warning("slack interaction %s: answer not delivered: %s", interaction.pk, error)
    return outcome


def _decide(interaction: SlackInteraction) -> str:
    call = interaction.tool_call
    link = review_url(call.pk)
    user = slack_user_resolve(slack_user_id=interaction.slack_user_id)
    if user is None:
        return (
            "Your Slack account is not linked to a Countersign user, so nothing changed. Ask an "
            f"administrator to link it, or decide in the console: {link}"
        )
    SlackInteraction.objects.filter(pk=interaction.pk).update(user=user)
    proposal = Proposal.objects.select_related("tool_call__run").get(pk=call.pk)
    if call.tool_name not in settings.SLACK_DECISION_TOOLS:
        return f"{call.tool_name} is decided in the console only; nothing changed: {link}"
    if proposal.is_open and not slack_decidable(proposal):
        return f"This one is decided in the console only (over the Slack limit): {link}"
    try:
        if interaction.action == "approve":
            call = proposal_approve(
                tool_call_id=call.pk,
                user=user,
                note="Approved from Slack.",
                channel=Approval.Channel.SLACK,
            )
            if call.status == ToolCall.Status.AWAITING_APPROVAL:
                return "Your approval is recorded; a different person must approve too."
            return "Approved: the checks passed and it runs now."
        proposal_reject(
            tool_call_id=call.pk,
            user=user,
            reason=interaction.reason,
            channel=Approval.Channel.SLACK,
        )
        return "Rejected; nothing ran and Claude is told your reason."
    except PermissionDenied as error:
        return f"You may not decide this, so nothing changed: {error}"
    except ProposalBlocked as error:
        return f"Not approved: {error}"
    except (ChecksUnavailable, InvalidTransition) as error:
        return f"Nothing changed: {error}"


def interaction_payload(request_post: Any) -> dict[str, Any]:
    """The interaction Slack sent, from the form field `payload`; ValueError when malformed."""
    raw = request_post.get("payload")
    if not raw:
        raise ValueError("The request has no payload.")
    payload = json.loads(raw)
    if not isinstance(payload, dict):
        raise ValueError("The payload is not an object.")
    return payload
