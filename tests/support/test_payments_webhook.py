"""Stripe webhook verification: signature, age, secret, body; and reading the refund it carries."""

from __future__ import annotations

import json
import time

import pytest

from support.integrations.stripe import refund_result_from, webhook_event_verify
from support.payments import WebhookRejected
from tests.fakes.stripe import FakeStripe

SECRET = "whsec_countersign_test"


@pytest.fixture
def webhook(settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS = 300
    fake = FakeStripe()  # not started: only its event builder and signer are needed
    customer = fake.customer_add("bob@test.com")
    charge = fake.charge_add(customer["id"], 4000)
    refund = fake.refund_add(charge["id"], 4000, metadata={"countersign_refund": "12"})
    fake.refund_update(refund["id"], status="failed", failure_reason="lost_or_stolen_card")
    payload = fake.event("refund.failed", fake.refunds[refund["id"]])
    yield fake, payload
    fake.stop()


def test_a_correctly_signed_event_is_returned(webhook):
    fake, payload = webhook

    event = webhook_event_verify(payload, fake.webhook_sign(payload, SECRET))

    assert event["type"] == "refund.failed"
    result = refund_result_from(event["data"]["object"])
    assert (result.status, result.failure_reason, result.amount) == (
        "failed",
        "lost_or_stolen_card",
        4000,
    )
    assert result.metadata == {"countersign_refund": "12"}


def test_a_signature_from_another_secret_is_refused(webhook):
    fake, payload = webhook

    with pytest.raises(WebhookRejected, match="No signatures found matching"):
        webhook_event_verify(payload, fake.webhook_sign(payload, "whsec_someone_else"))


def test_a_changed_body_is_refused(webhook):
    fake, payload = webhook
    header = fake.webhook_sign(payload, SECRET)
    tampered = payload.replace(b'"amount": 4000', b'"amount": 400000')
    assert tampered != payload

    with pytest.raises(WebhookRejected):
        webhook_event_verify(tampered, header)


def test_an_old_signature_is_refused(webhook):
    fake, payload = webhook
    header = fake.webhook_sign(payload, SECRET, timestamp=int(time.time()) - 301)

    with pytest.raises(WebhookRejected, match="Timestamp outside the tolerance zone"):
        webhook_event_verify(payload, header)


@pytest.mark.parametrize("header", ["", "t=abc", "t=123,v0=deadbeef", "garbage"])
def test_a_missing_or_malformed_header_is_refused(webhook, header):
    _, payload = webhook

    with pytest.raises(WebhookRejected):
        webhook_event_verify(payload, header)


def test_an_empty_secret_refuses_everything(webhook, settings):
    fake, payload = webhook
    settings.STRIPE_WEBHOOK_SECRET = ""

    with pytest.raises(WebhookRejected, match="STRIPE_WEBHOOK_SECRET is not set"):
        webhook_event_verify(payload, fake.webhook_sign(payload, ""))


def test_a_zero_tolerance_is_refused_rather_than_accepting_any_age(webhook, settings):
    fake, payload = webhook
    settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS = 0

    with pytest.raises(WebhookRejected, match="must be a positive number"):
        webhook_event_verify(payload, fake.webhook_sign(payload, SECRET))


def test_a_rolled_secret_still_verifies_with_either_signature(webhook):
    fake, payload = webhook
    old = fake.webhook_sign(payload, "whsec_old")
    new = fake.webhook_sign(payload, SECRET)
    header = f"{old},v1={new.split('v1=')[1]}"

    assert webhook_event_verify(payload, header)["type"] == "refund.failed"


@pytest.mark.parametrize("body", [b"[]", b'{"object": "event"}', b"not json", b"\xff\xfe"])
def test_a_signed_body_that_is_not_an_event_is_refused(webhook, body):
    fake, _ = webhook

    with pytest.raises(WebhookRejected):
        webhook_event_verify(body, fake.webhook_sign(body, SECRET))


def test_the_event_builder_matches_stripes_shape(webhook):
    _, payload = webhook
    event = json.loads(payload)

    assert event["object"] == "event" and event["id"].startswith("evt_")
    assert event["data"]["object"]["object"] == "refund"
