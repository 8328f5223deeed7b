"""Shared steps for the notice and Slack-decision tests: a Slack that speaks HTTP, signed posts."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.fakes.slack import FakeSlack

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
URL = "/hooks/slack/interactions/"


@pytest.fixture
def slack_fake(settings):
    """A local Slack Web API, and the notice settings pointed at it (channel #ops by its id)."""
    server = FakeSlack().start()
    settings.SLACK_BOT_TOKEN = server.token
    settings.SLACK_API_URL = server.url
    settings.SLACK_CHANNEL = server.channel_id("#ops")
    settings.SLACK_CHANNELS = {}
    settings.SLACK_SIGNING_SECRET = SECRET
    settings.CONSOLE_URL = "https://console.example"
    yield server
    server.stop()


def interaction_post(client, payload: dict, *, secret: str = SECRET, timestamp=None, headers=None):
    """POST an interaction the way Slack does: form-encoded `payload`, signed with `secret`."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    signed = headers if headers is not None else FakeSlack.sign(body, secret, timestamp)
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in signed.items()}
    return client.post(URL, data=body, content_type="application/x-www-form-urlencoded", **extra)


def button(call_id: int, action: str, *, user: str = "U1", trigger: str = "T1", respond="") -> dict:
    return {
        "type": "block_actions",
        "trigger_id": trigger,
        "user": {"id": user},
        "response_url": respond,
        "actions": [{"action_id": action, "value": str(call_id)}],
    }


def reason_form(call_id: int, reason: str, *, user: str = "U1", trigger: str = "T9") -> dict:
    return {
        "type": "view_submission",
        "trigger_id": trigger,
        "user": {"id": user},
        "view": {
            "private_metadata": str(call_id),
            "state": {"values": {"reason": {"reason_input": {"value": reason}}}},
        },
    }
