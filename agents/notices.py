"""Notices: people hear of a proposal where they are, and the message follows what happens.

When a proposal starts waiting, a Slack message (one channel per kind: SLACK_CHANNELS, else
SLACK_CHANNEL) gives its summary and a link to its review page; each approval and its closing
(approved and run, rejected, expired, cancelled, blocked) update the same message with who
decided what and when. Without Slack, the approvers (the users who hold the tool's permission
and have an address) are mailed once. Either way the console's inbox is the feed.

Exactly once: a notice is claimed (`posting`, committed) before it is posted and recorded after.
A retry that finds the claim does not know whether Slack got the message, so it looks for it in
the channel by the key the message carries in its metadata, and posts only if it is not there.
An update says the same thing however often it is sent. Mail cannot be looked up: a mail whose
sending was interrupted is marked failed rather than sent twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from agents.integrations import slack
from agents.models import Notice, Proposal, ToolCall
from agents.queue import enqueue_on_commit
from agents.registry import proposal_type_of

logger = logging.getLogger(__name__)

TASK = "agents.tasks.proposal_notices_task"
# How far before a claim to look for a message whose post may have reached Slack.
LOOKBACK = timedelta(minutes=5)


def slack_configured() -> bool:
    return bool(settings.SLACK_BOT_TOKEN and (settings.SLACK_CHANNEL or settings.SLACK_CHANNELS))


def slack_channel_for(tool_name: str) -> str:
    return settings.SLACK_CHANNELS.get(tool_name) or settings.SLACK_CHANNEL


def console_url(path: str) -> str:
    return settings.CONSOLE_URL.rstrip("/") + path


def review_url(tool_call_id: int) -> str:
    return console_url(reverse("admin:agents_toolcall_review", args=[tool_call_id]))


def proposal_notices_queue(*, tool_call_id: int) -> None:
    """Queue the notice work for a proposal once the transaction commits, if anyone listens."""
    if slack_configured() or settings.AGENTS_NOTICE_EMAIL:
        enqueue_on_commit(TASK, tool_call_id)


def notices_due(*, now, grace: timedelta) -> list[int]:
    """Proposals whose notices a lost or killed task left behind: the sweep syncs them.

    A notice still pending or posting (its task died, or Slack was down), or a posted one that
    no longer shows where its proposal stands (the last update was lost).
    """
    if not (slack_configured() or settings.AGENTS_NOTICE_EMAIL):
        return []
    settled = now - grace
    stuck = Notice.objects.filter(
        proposal__isnull=False,
        state__in=(Notice.State.PENDING, Notice.State.POSTING),
        updated_at__lt=settled,
        attempts__lt=settings.AGENTS_EXECUTE_MAX_ATTEMPTS,
    ).values_list("proposal_id", flat=True)
    due = set(stuck)
    posted = (
        Notice.objects.filter(
            Q(proposal__tool_call__finished_at__isnull=True)
            | Q(proposal__tool_call__finished_at__gte=F("updated_at") - grace),
            proposal__isnull=False,
            medium=Notice.Medium.SLACK,
            state=Notice.State.POSTED,
            updated_at__lt=settled,
        )
        .select_related("proposal__tool_call")
        .prefetch_related("proposal__approvals")
    )
    due |= {n.proposal_id for n in posted if n.shown != shown_key(n.proposal)}
    return sorted(due)


def proposal_notices_sync(*, tool_call_id: int) -> str:
    """Post or update the proposal's notices to show where it stands now."""
    proposal = (
        Proposal.objects.select_related("tool_call__run", "tool_call__decided_by")
        .prefetch_related("approvals__user")
        .get(pk=tool_call_id)
    )
    if slack_configured():
        return _slack_sync(proposal)
    if settings.AGENTS_NOTICE_EMAIL:
        return _email_once(proposal)
    return "no notices configured"


# --- what a notice says -------------------------------------------------------------------------


def shown_key(proposal: Proposal) -> str:
    return f"{proposal.state}:{proposal.approvals_given}"


def headline(proposal: Proposal) -> str:
    call = proposal.tool_call
    label = call.tool_name.replace("_", " ")
    return f"{label}: {proposal.summary or call.tool_use_id}"


def status_line(proposal: Proposal) -> str:
    """Where it stands, who decided what and when: the line an update changes."""
    call = proposal.tool_call
    approvals = list(proposal.approvals.all())
    parts = [proposal.get_state_display()]
    if proposal.state == Proposal.State.SECOND_APPROVAL:
        parts = [f"Waiting for approval {len(approvals) + 1} of {proposal.approvals_required}"]
    for approval in approvals:
        via = " from Slack" if approval.channel == "slack" else ""
        parts.append(
            f"approved by {approval.user.get_username()}{via} at "
            f"{timezone.localtime(approval.created_at):%Y-%m-%d %H:%M}"
        )
    if call.status in (ToolCall.Status.REJECTED, ToolCall.Status.EXPIRED, ToolCall.Status.BLOCKED):
        who = f" by {call.decided_by.get_username()}" if call.decided_by else ""
        when = (
            f" at {timezone.localtime(call.decided_at):%Y-%m-%d %H:%M}" if call.decided_at else ""
        )
        parts.append(f"{call.get_status_display().lower()}{who}{when}: {call.decision_reason}")
    elif call.status == ToolCall.Status.CANCELLED:
        parts.append(f"cancelled: {call.result}")
    elif call.status in (ToolCall.Status.SUCCEEDED, ToolCall.Status.FAILED):
        ptype = proposal_type_of(call)
        outcome = ""
        if ptype is not None and ptype.outcome is not None and ptype.model is not None:
            record = ptype.model.objects.filter(tool_call_id=call.pk).first()
            if record is not None:
                outcome = ptype.outcome(record, call)
        parts.append(outcome or (call.result or "")[:300])
    return " · ".join(p for p in parts if p)


def slack_decidable(proposal: Proposal) -> bool:
    """Whether Slack may offer Approve / Reject: the tool allows it and this record is not over
    its type's threshold; otherwise the message offers only "Open in console"."""
    call = proposal.tool_call
    if call.tool_name not in settings.SLACK_DECISION_TOOLS or not proposal.is_open:
        return False
    if proposal.state == Proposal.State.CHECKING:
        return False
    ptype = proposal_type_of(call)
    if ptype is None:
        return False
    if ptype.slack_decidable is not None:
        record = ptype.model.objects.filter(tool_call_id=call.pk).first() if ptype.model else None
        return bool(ptype.slack_decidable(record if record is not None else call))
    return True


def slack_blocks(proposal: Proposal) -> tuple[str, list[dict[str, Any]]]:
    call = proposal.tool_call
    text = f"{headline(proposal)} — {status_line(proposal)}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_escape(headline(proposal))}*"}},
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": _escape(status_line(proposal))}],
        },
    ]
    failed = [c for c in proposal.checks if not c.get("passed")]
    if failed and proposal.is_open:
        warn = "; ".join(f"{c['name']}: {c.get('detail', '')}" for c in failed)[:1500]
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _escape(f"⚠ {warn}")}]}
        )
    elements: list[dict[str, Any]] = [
        {
            "type": "button",
            "action_id": "open",
            "text": {"type": "plain_text", "text": "Open in console"},
            "url": review_url(call.pk),
        }
    ]
    if slack_decidable(proposal):
        elements += [
            {
                "type": "button",
                "action_id": "approve",
                "style": "primary",
                "value": str(call.pk),
                "text": {"type": "plain_text", "text": "Approve"},
            },
            {
                "type": "button",
                "action_id": "reject",
                "style": "danger",
                "value": str(call.pk),
                "text": {"type": "plain_text", "text": "Reject…"},
            },
        ]
    blocks.append({"type": "actions", "block_id": f"proposal-{call.pk}", "elements": elements})
    return text[:3000], blocks


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- Slack ----------------------------------------------------------------------------------


def _slack_args() -> dict[str, str]:
    return {"token": settings.SLACK_BOT_TOKEN, "api_url": settings.SLACK_API_URL}


def _slack_sync(proposal: Proposal) -> str:
    call = proposal.tool_call
    if proposal.state == Proposal.State.CHECKING:
        return "still being checked: no notice yet"
    if not proposal.is_open and not Notice.objects.filter(key=f"proposal:{call.pk}:slack").exists():
        return "closed before it waited for anyone: no notice"
    notice, _ = Notice.objects.get_or_create(
        key=f"proposal:{call.pk}:slack",
        defaults={
            "medium": Notice.Medium.SLACK,
            "proposal": proposal,
            "channel": slack_channel_for(call.tool_name),
        },
    )
    if notice.state in (Notice.State.PENDING, Notice.State.POSTING):
        return _slack_post(notice, proposal)
    if notice.state == Notice.State.POSTED and notice.shown != shown_key(proposal):
        return _slack_update(notice, proposal)
    return f"notice {notice.key}: up to date"


def _slack_post(notice: Notice, proposal: Proposal) -> str:
    text, blocks = slack_blocks(proposal)
    shown = shown_key(proposal)
    try:
        ts = _post_once(notice, text=text, blocks=blocks, shown=shown)
    except slack.SlackError as error:
        if error.retryable:
            raise  # the task is delivered again; the claim says to look first
        return f"notice {notice.key}: {error}"
    if ts is None:
        return f"notice {notice.key}: claimed elsewhere"
    # The proposal may have moved while the message was on its way, or the message found after
    # a lost answer shows an earlier state: catch up.
    fresh = _fresh(proposal)
    notice.refresh_from_db()
    if shown_key(fresh) != notice.shown:
        return _slack_update(notice, fresh)
    return f"notice {notice.key}: posted as {ts}"


def _post_once(
    notice: Notice, *, text: str, blocks: list | None = None, shown: str = ""
) -> str | None:
    """Claim, post and record one Slack message; the message's ts, None if claimed elsewhere.

    A claim left `posting` by an earlier try means the message may be in Slack already: it is
    looked up by its key first, and a message found is recorded as showing nothing known (it
    shows what the earlier try sent), so the caller brings it up to date. A retryable SlackError
    propagates with the claim in place; any other marks the notice failed.
    """
    now = timezone.now()
    was = notice.state
    claimed = Notice.objects.filter(
        pk=notice.pk, state__in=(Notice.State.PENDING, Notice.State.POSTING)
    ).update(
        state=Notice.State.POSTING,
        attempts=notice.attempts + 1,
        claimed_at=notice.claimed_at or now,
        updated_at=now,
    )
    if not claimed:
        return None
    notice.refresh_from_db()
    channel, ts, found = notice.channel, "", False
    try:
        if was == Notice.State.POSTING:
            oldest = (notice.claimed_at - LOOKBACK).timestamp()
            ts = (
                slack.message_find(
                    **_slack_args(), channel=channel, metadata_key=notice.key, oldest=oldest
                )
                or ""
            )
            found = bool(ts)
        if not ts:
            channel, ts = slack.message_post(
                **_slack_args(), channel=channel, text=text, blocks=blocks, metadata_key=notice.key
            )
    except slack.SlackError as error:
        failed = {} if error.retryable else {"state": Notice.State.FAILED}
        Notice.objects.filter(pk=notice.pk).update(
            error=str(error)[:2000], updated_at=timezone.now(), **failed
        )
        raise
    Notice.objects.filter(pk=notice.pk, state=Notice.State.POSTING).update(
        state=Notice.State.POSTED,
        channel=channel,
        ts=ts,
        text="" if found else text,
        shown="" if found else shown,
        posted_at=timezone.now(),
        error="",
        updated_at=timezone.now(),
    )
    return ts


def _fresh(proposal: Proposal) -> Proposal:
    return (
        Proposal.objects.select_related("tool_call__run", "tool_call__decided_by")
        .prefetch_related("approvals__user")
        .get(pk=proposal.pk)
    )


def _slack_update(notice: Notice, proposal: Proposal) -> str:
    text, blocks = slack_blocks(proposal)
    shown = shown_key(proposal)
    try:
        slack.message_update(
            **_slack_args(), channel=notice.channel, ts=notice.ts, text=text, blocks=blocks
        )
    except slack.SlackError as error:
        Notice.objects.filter(pk=notice.pk).update(
            error=str(error)[:2000], updated_at=timezone.now()
        )
        if error.retryable:
            raise
        return f"notice {notice.key}: not updated: {error}"
    Notice.objects.filter(pk=notice.pk).update(
        shown=shown, text=text, error="", updated_at=timezone.now()
    )
    return f"notice {notice.key}: updated to {shown}"


# --- mail, when Slack is not configured -------------------------------------------------------


def approver_emails(permission: str) -> list[str]:
    """The addresses of the active users who hold `permission` (directly, by group, or super)."""
    app_label, codename = permission.split(".", 1)
    perm = Q(
        user_permissions__codename=codename, user_permissions__content_type__app_label=app_label
    )
    perm |= Q(
        groups__permissions__codename=codename,
        groups__permissions__content_type__app_label=app_label,
    )
    users = get_user_model().objects.filter(Q(is_superuser=True) | perm, is_active=True)
    return sorted({u.email for u in users.exclude(email="").distinct()})


def _email_once(proposal: Proposal) -> str:
    call = proposal.tool_call
    key = f"proposal:{call.pk}:email"
    # Interrupted mid-send (the worker died after claiming it): it may have left. Say so, at
    # whichever later sync finds it, rather than send it twice or leave it looking in flight.
    if Notice.objects.filter(key=key, state=Notice.State.POSTING).update(
        state=Notice.State.FAILED,
        error="Sending was interrupted; the mail may or may not have left.",
        updated_at=timezone.now(),
    ):
        return f"notice {key}: {Notice.State.FAILED}"
    if not proposal.is_open or proposal.state == Proposal.State.CHECKING:
        return "mail goes out only when a proposal starts waiting"
    recipients = approver_emails(call.approval_permission)
    if not recipients:
        return "no approver has an email address"
    notice, created = Notice.objects.get_or_create(
        key=key,
        defaults={
            "medium": Notice.Medium.EMAIL,
            "proposal": proposal,
            "recipients": ", ".join(recipients),
        },
    )
    if notice.state != Notice.State.PENDING:
        return f"notice {notice.key}: {notice.state}"
    if not Notice.objects.filter(pk=notice.pk, state=Notice.State.PENDING).update(
        state=Notice.State.POSTING, attempts=1, claimed_at=timezone.now()
    ):
        return f"notice {notice.key}: claimed elsewhere"
    subject = f"[Countersign] Waiting for you: {headline(proposal)}"[:200]
    body = f"{headline(proposal)}\n\n{status_line(proposal)}\n\nReview it: {review_url(call.pk)}\n"
    try:
        send_mail(subject, body, None, recipients)
    except Exception as error:  # refused (nothing left) or cut off (it may have left)
        Notice.objects.filter(pk=notice.pk).update(
            state=Notice.State.FAILED,
            error=f"Not confirmed by the mail server: {type(error).__name__}: {error}"[:2000],
        )
        return f"notice {notice.key}: not sent: {error}"
    Notice.objects.filter(pk=notice.pk).update(
        state=Notice.State.POSTED, text=body, shown=shown_key(proposal), posted_at=timezone.now()
    )
    return f"notice {notice.key}: mailed {len(recipients)} approver(s)"


# --- one-off notices (an escalation) ----------------------------------------------------------


def notice_send(*, key: str, text: str, tool_name: str = "", link: str = "") -> str:
    """Post a one-off message to Slack once (by key); empty when Slack is not configured."""
    if not slack_configured():
        return ""
    notice, _ = Notice.objects.get_or_create(
        key=key,
        defaults={"medium": Notice.Medium.SLACK, "channel": slack_channel_for(tool_name)},
    )
    if notice.state == Notice.State.POSTED:
        return notice.ts
    ts = _post_once(notice, text=f"{text} {link}".strip())
    if ts is None:  # another worker holds the claim: it posts or looks it up
        notice.refresh_from_db()
        return notice.ts
    return ts
