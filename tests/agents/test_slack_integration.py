"""agents.integrations.slack drives the real slack-sdk against the wire-level FakeSlack."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agents.integrations import slack
from agents.integrations.slack import SlackError, SlackRequestRejected
from tests.fakes.slack import FakeSlack

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


def auth(fake: FakeSlack) -> dict[str, str]:
    return {"token": fake.token, "api_url": fake.url}


def post(fake: FakeSlack, key: str = "approval-1", **overrides: Any) -> tuple[str, str]:
    fields: dict[str, Any] = {
        "channel": "#refunds",
        "text": "Refund #1 awaits",
        "metadata_key": key,
    }
    return slack.message_post(**auth(fake), **(fields | overrides))


def test_post_returns_the_channel_id_and_ts_and_tags_the_message(fake):
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Refund #1*"}}]
    channel, ts = post(fake, blocks=blocks)
    assert channel == fake.channel_id("refunds") == fake.channel_id("#refunds")
    assert channel.startswith("C") and ts == fake.messages[0]["ts"]
    [message] = fake.messages
    assert message["metadata"] == {
        "event_type": "countersign_notice",
        "event_payload": {"key": "approval-1"},
    }
    assert message["blocks"] == blocks and message["unfurl_links"] is False
    assert fake.channel_messages(channel) == [message]
    again_channel, again_ts = post(fake, key="approval-2", channel="refunds")
    assert again_channel == channel and float(again_ts) > float(ts)


def test_update_changes_the_message(fake):
    channel, ts = post(fake)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "Approved by ann"}}]
    slack.message_update(**auth(fake), channel=channel, ts=ts, text="Approved", blocks=blocks)
    [message] = fake.messages
    assert message["text"] == "Approved" and message["blocks"] == blocks
    assert message["metadata"]["event_payload"] == {"key": "approval-1"}  # kept, as in Slack
    [update] = fake.updates
    assert update["ts"] == ts and update["channel"] == channel


def test_update_of_an_unknown_message_is_not_retryable(fake):
    channel, _ts = post(fake)
    with pytest.raises(SlackError, match="message_not_found") as raised:
        slack.message_update(**auth(fake), channel=channel, ts="1.000001", text="x")
    assert raised.value.retryable is False and raised.value.code == "message_not_found"
    assert fake.updates == []


def test_update_needs_the_channel_id_not_its_name(fake):
    _channel, ts = post(fake)
    with pytest.raises(SlackError, match="channel_not_found") as raised:
        slack.message_update(**auth(fake), channel="#refunds", ts=ts, text="x")
    assert raised.value.retryable is False


def test_a_post_whose_answer_is_lost_is_found_by_its_key(fake):
    started = time.time() - 1
    post(fake, key="approval-0")
    fake.fail_next("chat.postMessage", after_effect=True)
    with pytest.raises(SlackError, match="whether the message took effect is unknown") as raised:
        post(fake, key="approval-7")
    assert raised.value.retryable is True
    assert len(fake.messages) == 2  # it was posted all the same
    channel = fake.channel_id("#refunds")
    found = slack.message_find(
        **auth(fake), channel=channel, metadata_key="approval-7", oldest=started
    )
    assert found == fake.messages[1]["ts"]
    assert (
        slack.message_find(**auth(fake), channel=channel, metadata_key="approval-8", oldest=started)
        is None
    )
    later = float(fake.messages[1]["ts"])
    assert (
        slack.message_find(**auth(fake), channel=channel, metadata_key="approval-7", oldest=later)
        is None
    )
    _method, history = fake.requests[-1]
    assert history["include_all_metadata"] == "1" and history["limit"] == "200"


def test_find_follows_the_history_pages(fake):
    started = time.time() - 1
    channel, wanted = post(fake, key="approval-first")
    for number in range(slack.HISTORY_PAGE_SIZE + 10):
        post(fake, key=f"approval-{number}", text=f"Refund #{number}")
    found = slack.message_find(
        **auth(fake), channel=channel, metadata_key="approval-first", oldest=started
    )
    assert found == wanted
    pages = [body for method, body in fake.requests if method == "conversations.history"]
    assert len(pages) == 2 and "cursor" not in pages[0] and pages[1]["cursor"]


def test_history_shows_metadata_only_when_asked(fake):
    channel, ts = post(fake)
    web = slack.client(**auth(fake))
    plain = web.conversations_history(channel=channel)["messages"]
    tagged = web.conversations_history(channel=channel, include_all_metadata=True)["messages"]
    assert [m["ts"] for m in plain] == [ts] and "metadata" not in plain[0]
    assert tagged[0]["metadata"]["event_payload"] == {"key": "approval-1"}


def test_the_fake_reads_form_encoded_posts_too(fake):
    metadata = {"event_type": "countersign_notice", "event_payload": {"key": "k"}}
    web = slack.client(**auth(fake))
    answer = web.api_call(
        "chat.postMessage",
        params={"channel": "refunds", "text": "hi", "metadata": json.dumps(metadata)},
    )
    assert answer["channel"] == fake.channel_id("#refunds")
    assert fake.messages[0]["metadata"] == metadata


def test_user_email(fake):
    fake.user_add("U123", "ann@example.com")
    fake.user_add("U456", "")
    assert slack.user_email(**auth(fake), user_id="U123") == "ann@example.com"
    assert slack.user_email(**auth(fake), user_id="U456") == ""
    with pytest.raises(SlackError, match="user_not_found") as raised:
        slack.user_email(**auth(fake), user_id="U999")
    assert raised.value.retryable is False


def test_view_open_is_recorded(fake):
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Reject"}, "blocks": []}
    slack.view_open(**auth(fake), trigger_id="1337.42", view=view)
    assert fake.views_opened == [{"trigger_id": "1337.42", "view": view}]


def test_response_send_is_recorded(fake):
    slack.response_send(url=fake.response_url("r1"), text="Approved.", replace_original=True)
    assert fake.responses == [
        ("r1", {"text": "Approved.", "response_type": "ephemeral", "replace_original": True})
    ]
    fake.fail_next("respond", error="expired_url")
    with pytest.raises(SlackError, match="expired_url") as raised:
        slack.response_send(url=fake.response_url("r2"), text="Too late.")
    assert raised.value.retryable is False and len(fake.responses) == 1
    fake.fail_next("respond", status=503)
    with pytest.raises(SlackError) as raised:
        slack.response_send(url=fake.response_url("r3"), text="Again.")
    assert raised.value.retryable is True


def test_request_verify(fake):
    body = b"payload=%7B%22type%22%3A%22block_actions%22%7D"
    now = time.time()
    headers = fake.sign(body, SECRET)

    def verify(**overrides: Any) -> None:
        fields = {
            "signing_secret": SECRET,
            "body": body,
            "timestamp": headers["X-Slack-Request-Timestamp"],
            "signature": headers["X-Slack-Signature"],
            "now": now,
        }
        slack.request_verify(**(fields | overrides))

    verify()
    verify(now=None)
    bad = "not signed by Slack \\(bad signature\\)"
    with pytest.raises(SlackRequestRejected, match=bad):
        good = headers["X-Slack-Signature"]
        verify(signature=good[:-1] + ("1" if good[-1] == "0" else "0"))
    with pytest.raises(SlackRequestRejected, match=bad):
        verify(body=body + b"x")
    with pytest.raises(SlackRequestRejected, match=bad):
        verify(signing_secret="another-secret")
    with pytest.raises(SlackRequestRejected, match=bad):
        verify(signature="")
    with pytest.raises(SlackRequestRejected, match=bad):
        verify(timestamp="")
    with pytest.raises(SlackRequestRejected, match=bad):
        verify(timestamp="yesterday")
    old = fake.sign(body, SECRET, timestamp=int(now) - 600)
    with pytest.raises(SlackRequestRejected, match="stale"):
        verify(timestamp=old["X-Slack-Request-Timestamp"], signature=old["X-Slack-Signature"])
    with pytest.raises(SlackRequestRejected, match="stale"):
        verify(now=now + 600)
    with pytest.raises(SlackRequestRejected, match="not set"):
        verify(signing_secret="")


def test_a_refusal_is_not_retryable(fake):
    fake.fail_next("chat.postMessage", error="channel_not_found")
    with pytest.raises(SlackError, match="Slack refused the message: channel_not_found") as raised:
        post(fake)
    assert raised.value.retryable is False and raised.value.code == "channel_not_found"
    with pytest.raises(SlackError, match="invalid_auth") as raised:
        slack.message_post(
            token="xoxb-wrong", api_url=fake.url, channel="#refunds", text="x", metadata_key="k"
        )
    assert raised.value.retryable is False
    assert fake.messages == []


def test_a_server_error_is_retryable_and_nothing_is_posted(fake):
    fake.fail_next("chat.postMessage", status=503)
    with pytest.raises(SlackError, match="HTTP 503") as raised:
        post(fake)
    assert raised.value.retryable is True and fake.messages == []
    post(fake)  # the failure was for one call only
    assert len(fake.messages) == 1


def test_rate_limiting_is_retryable(fake):
    fake.fail_next("chat.postMessage", error="ratelimited", status=429)
    with pytest.raises(SlackError, match="rate limiting") as raised:
        post(fake)
    assert raised.value.retryable is True and raised.value.code == "ratelimited"
    assert len(fake.requests) == 1  # the SDK did not retry on its own


def test_an_unreachable_slack_is_retryable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SlackError, match="could not be reached") as raised:
        slack.message_post(
            token="xoxb-test",
            api_url=f"http://127.0.0.1:{port}/api/",
            channel="#refunds",
            text="x",
            metadata_key="k",
        )
    assert raised.value.retryable is True
