"""Slack through slack-sdk: the only module that imports it. One thread per incident."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError


class SlackError(Exception):
    """Slack refused the message or could not be reached."""


def notice_post(*, token: str, api_url: str, channel: str, text: str, thread_ts: str = "") -> str:
    """Post `text` (in the incident's thread when thread_ts is given); return the message ts."""
    client = WebClient(token=token, **({"base_url": api_url} if api_url else {}))
    try:
        response = client.chat_postMessage(
            channel=channel, text=text, thread_ts=thread_ts or None, unfurl_links=False
        )
    except SlackApiError as error:
        raise SlackError(f"Slack refused the message: {error.response.get('error')}") from error
    except (SlackClientError, OSError) as error:
        raise SlackError(f"Slack could not be reached: {error}") from error
    return str(response["ts"])
