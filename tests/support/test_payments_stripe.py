"""The Stripe gateway through the real stripe SDK, against a local server speaking Stripe's API."""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from support.integrations.stripe import StripeGateway
from support.payments import (
    AlreadyRefunded,
    AmountTooLarge,
    CardError,
    ChargeDisputed,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    PaymentsMisconfigured,
    PaymentsUnavailable,
    gateway_get,
    gateway_label,
)
from tests.fakes.stripe import FakeStripe


@pytest.fixture
def fake():
    server = FakeStripe().start()
    yield server
    server.stop()


@pytest.fixture
def gateway(fake, settings) -> StripeGateway:
    settings.STRIPE_API_KEY = fake.api_key
    settings.STRIPE_API_BASE = fake.url
    settings.STRIPE_MAX_NETWORK_RETRIES = 2
    gateway = gateway_get()
    assert isinstance(gateway, StripeGateway)
    return gateway


@pytest.fixture
def bob(fake) -> dict:
    customer = fake.customer_add("bob@test.com", name="Bob Tester")
    charge = fake.charge_add(customer["id"], 4000, description="Widget")
    return {"customer": customer, "charge": charge}


def refund(gateway: StripeGateway, charge_id: str, amount: int = 4000, key: str = "refund-1-v1"):
    return gateway.refund_create(
        charge_id=charge_id,
        amount=amount,
        reason="My widget broke on day 2",
        metadata={"ticket": 7, "refund": 1, "approved_by": 3},
        idempotency_key=key,
    )


# --- reading -------------------------------------------------------------------------------
def test_the_gateway_and_its_label_follow_the_key(gateway, fake):
    assert gateway_label() == ("payments", f"Stripe (test mode) at {fake.url}", True)


def test_customer_find_by_exact_email(gateway, bob):
    customer = gateway.customer_find("bob@test.com")
    assert customer is not None
    assert (customer.id, customer.email, customer.name) == (
        bob["customer"]["id"],
        "bob@test.com",
        "Bob Tester",
    )
    assert customer.other_ids == ()
    assert gateway.customer_find("nobody@test.com") is None
    # Stripe's email filter is exact; the lookup does not guess at other spellings.
    assert gateway.customer_find("Bob@test.com") is None


def test_customer_find_names_the_other_customers_with_that_email(gateway, fake, bob):
    newer = fake.customer_add("bob@test.com", name="Bob again")
    customer = gateway.customer_find("bob@test.com")
    assert customer.id == newer["id"]
    assert customer.other_ids == (bob["customer"]["id"],)


def test_payments_list_shows_what_is_still_refundable(gateway, fake, bob):
    customer_id = bob["customer"]["id"]
    earlier = fake.refund_add(bob["charge"]["id"], 1500, metadata={"note": "goodwill"})
    disputed = fake.charge_add(customer_id, 2500, description="Gadget", disputed=True)
    failed = fake.charge_add(customer_id, 900, status="failed")

    charges = {charge.id: charge for charge in gateway.payments_list(customer_id)}

    widget = charges[bob["charge"]["id"]]
    assert (widget.amount, widget.amount_refunded, widget.amount_refundable) == (4000, 1500, 2500)
    assert (widget.currency, widget.status, widget.description) == ("usd", "succeeded", "Widget")
    assert widget.payment_intent_id == bob["charge"]["payment_intent"]
    assert [r.id for r in widget.refunds] == [earlier["id"]]
    assert widget.refunds[0].metadata == {"note": "goodwill"}
    assert charges[disputed["id"]].disputed is True
    assert charges[failed["id"]].amount_refundable == 0
    assert widget.as_dict()["amount_refundable"] == 2500


def test_payments_list_pages_through_charges_and_refunds(gateway, fake, bob):
    fake.page_cap = 2
    customer_id = bob["customer"]["id"]
    others = [fake.charge_add(customer_id, 1000 + n) for n in range(4)]
    for _ in range(3):
        fake.refund_add(bob["charge"]["id"], 100)

    charges = gateway.payments_list(customer_id)

    assert [c.id for c in charges] == [c["id"] for c in reversed(others)] + [bob["charge"]["id"]]
    assert len(charges[-1].refunds) == 3
    assert charges[-1].amount_refunded == 300


# --- refunds -------------------------------------------------------------------------------
def test_refund_create_sends_the_key_the_mapped_reason_and_metadata(gateway, fake, bob):
    result = refund(gateway, bob["charge"]["id"])

    assert (result.status, result.amount, result.currency) == ("succeeded", 4000, "usd")
    assert result.charge_id == bob["charge"]["id"]
    assert result.reason == "requested_by_customer"
    assert result.metadata == {"ticket": "7", "refund": "1", "approved_by": "3"}
    assert result.gateway == "stripe" and result.is_final
    [sent] = fake.refund_posts
    assert sent.headers["idempotency-key"] == "refund-1-v1"
    assert sent.form == {
        "charge": bob["charge"]["id"],
        "amount": "4000",
        "reason": "requested_by_customer",
        "metadata": {"ticket": "7", "refund": "1", "approved_by": "3"},
    }
    assert fake.refunds_on(bob["charge"]["id"])[0]["id"] == result.id


def test_the_same_key_twice_makes_one_refund(gateway, fake, bob):
    first = refund(gateway, bob["charge"]["id"], 1000)
    second = refund(gateway, bob["charge"]["id"], 1000)

    assert second.id == first.id
    assert len(fake.refund_posts) == 2
    assert len(fake.refunds_on(bob["charge"]["id"])) == 1


def test_a_retry_after_a_500_reuses_the_key(gateway, fake, bob):
    fake.fail_next("500", path="/v1/refunds")

    result = refund(gateway, bob["charge"]["id"])

    assert result.status == "succeeded"
    assert [(r.headers["idempotency-key"], r.failed) for r in fake.refund_posts] == [
        ("refund-1-v1", "500"),
        ("refund-1-v1", ""),
    ]
    assert len(fake.refunds_on(bob["charge"]["id"])) == 1


def test_an_answer_lost_after_stripe_acted_is_replayed_not_repeated(gateway, fake, bob):
    fake.fail_next("drop_after", path="/v1/refunds")

    result = refund(gateway, bob["charge"]["id"])

    [made] = fake.refunds_on(bob["charge"]["id"])
    assert result.id == made["id"]
    assert [r.failed for r in fake.refund_posts] == ["drop_after", ""]


def test_repeated_5xx_is_unavailable_and_the_outcome_unknown(gateway, fake, bob):
    fake.fail_next("500", times=3, path="/v1/refunds")

    with pytest.raises(PaymentsUnavailable) as caught:
        refund(gateway, bob["charge"]["id"])

    error = caught.value
    assert error.retryable and error.outcome_unknown
    assert "Sorry, something went wrong on Stripe's end" in error.message
    assert error.http_status == 500 and error.request_id.startswith("req_fake_")
    assert {r.headers["idempotency-key"] for r in fake.refund_posts} == {"refund-1-v1"}
    assert len(fake.refund_posts) == 3  # the first try and STRIPE_MAX_NETWORK_RETRIES
    # A later attempt with the same key (the task retried) refunds once.
    assert refund(gateway, bob["charge"]["id"]).status == "succeeded"
    assert len(fake.refunds_on(bob["charge"]["id"])) == 1


def test_network_failure_is_unavailable(gateway, fake, bob):
    fake.fail_next("drop", times=3)

    with pytest.raises(PaymentsUnavailable) as caught:
        refund(gateway, bob["charge"]["id"])

    assert caught.value.message.startswith("Could not reach Stripe")
    assert caught.value.outcome_unknown
    assert fake.refunds_on(bob["charge"]["id"]) == []


def test_a_timeout_then_a_retry_with_the_key_refunds_once(fake, bob):
    gateway = StripeGateway(
        api_key=fake.api_key, api_base=fake.url, max_network_retries=0, timeout=0.3
    )
    fake.fail_next("slow", delay=1.0, path="/v1/refunds")

    with pytest.raises(PaymentsUnavailable) as caught:
        refund(gateway, bob["charge"]["id"])
    assert caught.value.outcome_unknown and "timed out" in caught.value.message.lower()

    deadline = time.monotonic() + 5
    while not fake.refunds_on(bob["charge"]["id"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    [made] = fake.refunds_on(bob["charge"]["id"])  # Stripe acted after the client gave up
    assert refund(gateway, bob["charge"]["id"]).id == made["id"]
    assert len(fake.refunds_on(bob["charge"]["id"])) == 1


def test_a_rate_limit_is_unavailable_with_a_known_outcome(gateway, fake, bob):
    fake.fail_next("429")

    with pytest.raises(PaymentsUnavailable) as caught:
        refund(gateway, bob["charge"]["id"])

    assert "Too many requests hit the API too quickly" in caught.value.message
    assert caught.value.http_status == 429 and not caught.value.outcome_unknown
    assert len(fake.refund_posts) == 1


def test_a_fully_refunded_charge_is_already_refunded(gateway, fake, bob):
    fake.refund_add(bob["charge"]["id"], 4000)

    with pytest.raises(AlreadyRefunded) as caught:
        refund(gateway, bob["charge"]["id"], 100)

    charge_id = bob["charge"]["id"]
    assert caught.value.message == f"Charge {charge_id} has already been refunded."
    assert caught.value.code == "charge_already_refunded"
    assert caught.value.request_id.startswith("req_fake_")
    assert str(caught.value).startswith(f"Charge {charge_id} has already been refunded. (code")


def test_more_than_is_refundable_is_amount_too_large(gateway, fake, bob):
    fake.refund_add(bob["charge"]["id"], 1000)

    with pytest.raises(AmountTooLarge) as caught:
        refund(gateway, bob["charge"]["id"], 3500)

    assert caught.value.message == (
        "Refund amount ($35.00) is greater than unrefunded amount on charge ($30.00)"
    )
    assert (caught.value.code, caught.value.param) == ("amount_too_large", "amount")
    assert isinstance(caught.value, InvalidRequest) and not caught.value.retryable


def test_a_disputed_charge_cannot_be_refunded(gateway, fake, bob):
    charge = fake.charge_add(bob["customer"]["id"], 2500, disputed=True)

    with pytest.raises(ChargeDisputed, match="has been charged back"):
        refund(gateway, charge["id"], 2500)


def test_the_same_key_with_other_parameters_is_a_conflict(gateway, fake, bob):
    refund(gateway, bob["charge"]["id"], 1000)

    with pytest.raises(IdempotencyConflict) as caught:
        refund(gateway, bob["charge"]["id"], 2000)

    assert "can only be used with the same parameters" in caught.value.message
    assert len(fake.refunds_on(bob["charge"]["id"])) == 1


def test_a_card_error_keeps_stripes_message(gateway, fake, bob):
    fake.fail_next(
        "error",
        status=402,
        error={"type": "card_error", "code": "expired_card", "message": "Your card has expired."},
    )

    with pytest.raises(CardError) as caught:
        refund(gateway, bob["charge"]["id"])

    assert (caught.value.message, caught.value.code) == ("Your card has expired.", "expired_card")


def test_an_unknown_charge_is_not_found(gateway):
    with pytest.raises(NotFound) as caught:
        refund(gateway, "ch_nope")

    assert caught.value.message == "No such charge: 'ch_nope'"
    assert caught.value.param == "charge"


def test_a_wrong_api_key_is_misconfigured(gateway, settings, bob):
    settings.STRIPE_API_KEY = "sk_test_wrong"

    with pytest.raises(PaymentsMisconfigured, match="Invalid API Key provided"):
        gateway_get().customer_find("bob@test.com")


def test_a_refund_by_payment_intent(gateway, fake, bob):
    result = refund(gateway, bob["charge"]["payment_intent"])

    assert result.charge_id == bob["charge"]["id"]
    assert fake.refund_posts[0].form["payment_intent"] == bob["charge"]["payment_intent"]


def test_requests_no_gateway_should_send_never_leave(gateway, fake, bob):
    for amount in (0, -5, "4000", 40.0, True):
        with pytest.raises(InvalidRequest):
            refund(gateway, bob["charge"]["id"], amount)
    with pytest.raises(InvalidRequest):
        gateway.refund_create(
            charge_id=bob["charge"]["id"],
            amount=100,
            reason="",
            metadata={"x" * 41: "too long a key"},
            idempotency_key="k",
        )
    with pytest.raises(ValueError, match="idempotency key"):
        refund(gateway, bob["charge"]["id"], key="")
    assert fake.refund_posts == []


def test_refund_retrieve_follows_a_pending_refund(gateway, fake, bob):
    fake.refund_status = "pending"
    made = refund(gateway, bob["charge"]["id"])
    assert made.status == "pending" and not made.is_final

    fake.refund_update(made.id, status="failed", failure_reason="expired_or_canceled_card")
    later = gateway.refund_retrieve(made.id)

    assert (later.status, later.failure_reason) == ("failed", "expired_or_canceled_card")
    with pytest.raises(NotFound):
        gateway.refund_retrieve("re_nope")


def test_refund_find_by_metadata_prefers_one_that_holds_money(gateway, fake, bob):
    fake.page_cap = 1
    charge_id = bob["charge"]["id"]
    failed = fake.refund_add(charge_id, 4000, status="failed", metadata={"countersign_refund": "9"})
    fake.refund_add(charge_id, 500, metadata={"countersign_refund": "8"})
    good = fake.refund_add(charge_id, 4000, metadata={"countersign_refund": "9"})
    fake.refund_add(charge_id, 100, metadata={})

    found = gateway.refund_find(
        charge_id=charge_id, metadata_key="countersign_refund", metadata_value="9"
    )

    assert found.id == good["id"] and found.id != failed["id"]
    assert (
        gateway.refund_find(
            charge_id=charge_id, metadata_key="countersign_refund", metadata_value="10"
        )
        is None
    )


@pytest.mark.django_db(transaction=True)
def test_a_refund_inside_a_transaction_never_reaches_stripe(gateway, fake, bob):
    with transaction.atomic(), pytest.raises(RuntimeError, match="never inside one"):
        refund(gateway, bob["charge"]["id"])

    assert fake.refund_posts == []
