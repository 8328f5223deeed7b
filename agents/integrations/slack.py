"""Slack through the official slack-sdk: the only module of the project that imports it.

Every failure comes out as `SlackError`, whose `retryable` says whether trying again later can
help. The SDK's own retries are off: a retried post whose first answer was lost would post the
notice twice, so the caller decides, and looks for the lost post first with `message_find`.

Channels: `message_post` takes a name ("#refunds") or an ID; `message_update` and
`message_find` need the channel ID (the first item `message_post` returns), as Slack does.
"""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.web import SlackResponse
from slack_sdk.webhook import WebhookClient

TIMEOUT_SECONDS = 10
METADATA_EVENT_TYPE = "countersign_notice"
HISTORY_PAGE_SIZE = 200
HISTORY_MAX_PAGES = 5
SIGNATURE_MAX_AGE_SECONDS = 5 * 60

# Slack API errors that mean "not now" rather than "never": the same call may succeed later.
# fatal_error may have partly happened, so it is outcome-unknown like a 5xx.
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# Raised by urllib and http.client when Slack cannot be reached or the answer is cut short.
NETWORK_ERRORS = (OSError, http.client.HTTPException)


class SlackError(Exception):
    """Slack refused the call (`retryable` False) or could not be reached (`retryable` True)."""

    def __init__(self, message: str, *, retryable: bool, code: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code  # Slack's error code ("channel_not_found"), "" when it gave none


class SlackRequestRejected(Exception):
    """An incoming request does not prove it comes from Slack."""


def client(*, token: str, api_url: str = "") -> WebClient:
    """Return a WebClient for `token`, pointed at `api_url` when given."""
    options: dict[str, Any] = {"base_url": api_url} if api_url else {}
    return WebClient(token=token, timeout=TIMEOUT_SECONDS, retry_handlers=[], **options)


def message_post(
    *,
    token: str,
    api_url: str,
    channel: str,
    text: str,
    blocks: Sequence[dict[str, Any]] | None = None,
    metadata_key: str,
) -> tuple[str, str]:
    """Post a message tagged with `metadata_key`; return its (channel ID, ts)."""
    metadata = {"event_type": METADATA_EVENT_TYPE, "event_payload": {"key": metadata_key}}
    response = _call(
        "message",
        lambda: client(token=token, api_url=api_url).chat_postMessage(
            channel=channel, text=text, blocks=blocks, metadata=metadata, unfurl_links=False
        ),
    )
    return str(response["channel"]), str(response["ts"])


def message_update(
    *,
    token: str,
    api_url: str,
    channel: str,
    ts: str,
    text: str,
    blocks: Sequence[dict[str, Any]] | None = None,
) -> None:
    """Replace the text of message `ts` in channel ID `channel`, and its blocks when given."""
    _call(
        "message update",
        lambda: client(token=token, api_url=api_url).chat_update(
            channel=channel, ts=ts, text=text, blocks=blocks
        ),
    )


def message_find(
    *, token: str, api_url: str, channel: str, metadata_key: str, oldest: float
) -> str | None:
    """Return the ts of the message tagged `metadata_key` posted after `oldest`, or None."""
    web = client(token=token, api_url=api_url)
    cursor: str | None = None
    for _page in range(HISTORY_MAX_PAGES):
        response = _call(
            "history lookup",
            lambda cursor=cursor: web.conversations_history(
                channel=channel,
                oldest=str(oldest),
                limit=HISTORY_PAGE_SIZE,
                include_all_metadata=True,
                cursor=cursor,
            ),
        )
        for message in response.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == METADATA_EVENT_TYPE and (
                payload.get("key") == metadata_key
            ):
                return str(message["ts"])
        cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            break
    return None


def user_email(*, token: str, api_url: str, user_id: str) -> str:
    """Return the email address of the Slack user `user_id`, or "" when Slack shows none."""
    response = _call(
        "user lookup", lambda: client(token=token, api_url=api_url).users_info(user=user_id)
    )
    profile = (response.get("user") or {}).get("profile") or {}
    return str(profile.get("email") or "")


def view_open(*, token: str, api_url: str, trigger_id: str, view: dict[str, Any]) -> None:
    """Open the modal `view` for the interaction that gave `trigger_id`."""
    _call(
        "view",
        lambda: client(token=token, api_url=api_url).views_open(trigger_id=trigger_id, view=view),
    )


def response_send(*, url: str, text: str, replace_original: bool = False) -> None:
    """Answer an interaction through its response_url with an ephemeral message."""
    webhook = WebhookClient(url, timeout=TIMEOUT_SECONDS, retry_handlers=[])
    try:
        response = webhook.send(
            text=text, response_type="ephemeral", replace_original=replace_original
        )
    except SlackClientError as error:
        raise SlackError(
            f"The Slack response could not be sent: {error}", retryable=False
        ) from error
    except NETWORK_ERRORS as error:
        raise SlackError(f"Slack could not be reached: {error}", retryable=True) from error
    status = response.status_code
    if status == 200:
        return
    if status == 429 or status >= 500:
        raise SlackError(
            f"Slack failed to answer the response_url (HTTP {status}); try again.", retryable=True
        )
    given = (response.body or "").strip()
    code = given if re.fullmatch(r"[a-z0-9_.]+", given) else ""
    raise SlackError(
        f"Slack refused the response: HTTP {status} {code}".rstrip(), retryable=False, code=code
    )


def request_verify(
    *, signing_secret: str, body: bytes, timestamp: str, signature: str, now: float | None = None
) -> None:
    """Raise SlackRequestRejected unless the request is signed by Slack within 5 minutes."""
    if not signing_secret.strip():
        raise SlackRequestRejected(
            "The Slack signing secret is not set; no request can be verified."
        )
    bad = SlackRequestRejected("The request is not signed by Slack (bad signature).")
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        raise bad from None
    clock = _FixedClock(time.time() if now is None else now)
    if abs(clock.now() - sent_at) > SIGNATURE_MAX_AGE_SECONDS:
        raise SlackRequestRejected(
            "The request is stale: its timestamp is more than 5 minutes off."
        )
    try:
        valid = bool(signature) and SignatureVerifier(signing_secret, clock=clock).is_valid(
            body=body, timestamp=timestamp, signature=signature
        )
    except UnicodeDecodeError:
        valid = False
    if not valid:
        raise bad


class _FixedClock(Clock):
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        """Return the instant the request is checked against."""
        return self._now


def _call(subject: str, send: Callable[[], SlackResponse]) -> SlackResponse:
    """Run one Web API call, turning every way it fails into SlackError."""
    try:
        return send()
    except SlackApiError as error:
        raise _api_error(subject, error) from error
    except SlackClientError as error:
        raise SlackError(
            f"The Slack {subject} could not be sent: {error}", retryable=False
        ) from error
    except NETWORK_ERRORS as error:
        raise SlackError(f"Slack could not be reached: {error}", retryable=True) from error


def _api_error(subject: str, error: SlackApiError) -> SlackError:
    """Describe an answer from Slack that was not ok."""
    response = error.response
    status = int(response.status_code)
    given = str(response.get("error") or "") if isinstance(response.data, dict) else ""
    code = given if re.fullmatch(r"[a-z0-9_.]+", given) else ""  # not the SDK's own prose
    if status == 429 or code == "ratelimited":
        wait = response.headers.get("Retry-After") or response.headers.get("retry-after")
        after = f"; retry after {wait} s" if wait else ""
        return SlackError(
            f"Slack is rate limiting: ratelimited{after}", retryable=True, code="ratelimited"
        )
    if status >= 500:
        return SlackError(
            f"Slack failed to answer (HTTP {status}); whether the {subject} took effect is unknown.",
            retryable=True,
        )
    if status != 200:
        return SlackError(
            f"Slack refused the {subject}: HTTP {status} {code}".rstrip(),
            retryable=False,
            code=code,
        )
    return SlackError(
        f"Slack refused the {subject}: {code or 'no error given'}",
        retryable=code in TRANSIENT_ERRORS,
        code=code,
    )
