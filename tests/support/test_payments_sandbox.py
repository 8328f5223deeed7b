"""The sandbox gateway (fixture customers, refunds in a locked state file) and reason mapping."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from django.db import transaction

from support.payments import (
    AlreadyRefunded,
    AmountTooLarge,
    ChargeDisputed,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    RefundReason,
    gateway_get,
    gateway_label,
    refund_reason,
)
from support.payments.sandbox import SandboxGateway

BOB_CHARGE = "ch_sandbox_bob_widget"
ALICE_PLAN = "ch_sandbox_alice_plan"


@pytest.fixture
def state(tmp_path) -> Path:
    return tmp_path / "var" / "sandbox-payments.json"


@pytest.fixture
def sandbox(settings, state) -> SandboxGateway:
    return SandboxGateway(fixture_path=settings.SUPPORT_SANDBOX_FIXTURE, state_path=state)


def refund(gateway, charge_id=BOB_CHARGE, amount=4000, key="refund-1-v1", **metadata):
    return gateway.refund_create(
        charge_id=charge_id,
        amount=amount,
        reason="My widget broke on day 2",
        metadata=metadata or {"countersign_refund": "1"},
        idempotency_key=key,
    )


def _refund_in_process(fixture: str, state: str, key: str, queue) -> None:
    gateway = SandboxGateway(fixture_path=fixture, state_path=state)
    results = []
    for n in range(5):
        made = gateway.refund_create(
            charge_id=ALICE_PLAN,
            amount=100,
            reason="",
            metadata={"n": n},
            idempotency_key=f"{key}-{n}",
        )
        results.append(made.id)
    # The same key from every process: one refund, whichever process wins.
    shared = gateway.refund_create(
        charge_id=ALICE_PLAN, amount=50, reason="", metadata={}, idempotency_key="shared"
    )
    queue.put((results, shared.id))


def test_without_a_stripe_key_the_sandbox_runs_and_says_so(settings, state):
    settings.STRIPE_API_KEY = ""
    settings.SUPPORT_SANDBOX_STATE = str(state)

    gateway = gateway_get()

    assert isinstance(gateway, SandboxGateway) and gateway.state_path == state
    assert gateway_label() == ("payments", "sandbox (no money moves)", False)


def test_the_state_file_defaults_to_var_under_the_project(settings):
    settings.STRIPE_API_KEY = ""
    if hasattr(settings, "SUPPORT_SANDBOX_STATE"):
        del settings.SUPPORT_SANDBOX_STATE

    gateway = gateway_get()

    assert gateway.state_path == Path(settings.BASE_DIR) / "var" / "sandbox-payments.json"


def test_bobs_widget_charge_is_found_by_email(sandbox):
    customer = sandbox.customer_find("bob@test.com")

    assert customer.id == "cus_sandbox_bob"
    [charge] = sandbox.payments_list(customer.id)
    assert (charge.id, charge.amount, charge.amount_refundable) == (BOB_CHARGE, 4000, 4000)
    assert (charge.currency, charge.status, charge.disputed) == ("usd", "succeeded", False)
    assert sandbox.customer_find("bob@test.co") is None
    assert sandbox.payments_list("cus_nobody") == []


def test_the_other_customers_cover_partial_refunds_failures_and_disputes(sandbox):
    alice = {c.id: c for c in sandbox.payments_list("cus_sandbox_alice")}
    plan, declined = alice[ALICE_PLAN], alice["ch_sandbox_alice_declined"]
    assert (plan.amount_refunded, plan.amount_refundable) == (3000, 9000)
    assert [r.id for r in plan.refunds] == ["re_sandbox_alice_partial"]
    assert declined.amount_refundable == 0
    [gadget] = sandbox.payments_list(sandbox.customer_find("carol@test.com").id)
    assert gadget.disputed

    with pytest.raises(ChargeDisputed):
        refund(sandbox, gadget.id, 100, key="disputed")
    with pytest.raises(InvalidRequest, match="only a succeeded charge"):
        refund(sandbox, declined.id, 100, key="declined")
    with pytest.raises(NotFound):
        refund(sandbox, "ch_nope", 100, key="unknown")


def test_a_refund_reduces_what_is_refundable(sandbox, state):
    made = refund(sandbox, amount=1500)

    assert (made.status, made.amount, made.gateway) == ("succeeded", 1500, "sandbox")
    assert made.id.startswith("re_sandbox_") and made.reason == "requested_by_customer"
    [charge] = sandbox.payments_list("cus_sandbox_bob")
    assert (charge.amount_refunded, charge.amount_refundable) == (1500, 2500)
    assert [r.id for r in charge.refunds] == [made.id]
    assert sandbox.refund_retrieve(made.id) == made
    assert state.exists()


def test_the_same_key_twice_makes_one_refund_even_from_two_gateways(settings, sandbox, state):
    other_process = SandboxGateway(fixture_path=settings.SUPPORT_SANDBOX_FIXTURE, state_path=state)

    first = refund(sandbox)
    second = refund(other_process)

    assert second.id == first.id
    [charge] = other_process.payments_list("cus_sandbox_bob")
    assert charge.amount_refunded == 4000 and len(charge.refunds) == 1


def test_the_same_key_with_other_parameters_is_a_conflict(sandbox):
    refund(sandbox, amount=1000)

    with pytest.raises(IdempotencyConflict, match="same parameters"):
        refund(sandbox, amount=2000)


def test_refusals_match_stripes_and_are_replayed_for_their_key(sandbox):
    with pytest.raises(AmountTooLarge) as caught:
        refund(sandbox, amount=4500, key="too-much")
    assert caught.value.message == (
        "Refund amount ($45.00) is greater than unrefunded amount on charge ($40.00)"
    )

    refund(sandbox, amount=4000, key="all")
    with pytest.raises(AlreadyRefunded, match=f"Charge {BOB_CHARGE} has already been refunded."):
        refund(sandbox, amount=100, key="more")
    with pytest.raises(AmountTooLarge):
        refund(sandbox, amount=4500, key="too-much")


def test_after_the_key_window_the_refund_is_found_by_metadata(settings, state):
    now = [1_000_000.0]
    sandbox = SandboxGateway(
        fixture_path=settings.SUPPORT_SANDBOX_FIXTURE, state_path=state, clock=lambda: now[0]
    )
    made = refund(sandbox, amount=1000, countersign_refund="41")
    now[0] += 24 * 3600 + 1

    # Like Stripe, an expired key is new again: this is why callers look first.
    found = sandbox.refund_find(
        charge_id=BOB_CHARGE, metadata_key="countersign_refund", metadata_value="41"
    )
    assert found == made
    assert (
        sandbox.refund_find(
            charge_id=BOB_CHARGE, metadata_key="countersign_refund", metadata_value="42"
        )
        is None
    )
    assert refund(sandbox, amount=1000, countersign_refund="41").id != made.id


def test_refunds_from_several_processes_are_all_kept(settings, state):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [
        context.Process(
            target=_refund_in_process,
            args=(settings.SUPPORT_SANDBOX_FIXTURE, str(state), f"p{n}", queue),
        )
        for n in range(4)
    ]
    for worker in workers:
        worker.start()
    outcomes = [queue.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0

    made = {refund_id for results, _ in outcomes for refund_id in results}
    assert len(made) == 20
    assert len({shared for _, shared in outcomes}) == 1
    sandbox = SandboxGateway(fixture_path=settings.SUPPORT_SANDBOX_FIXTURE, state_path=state)
    plan = {c.id: c for c in sandbox.payments_list("cus_sandbox_alice")}[ALICE_PLAN]
    assert plan.amount_refunded == 3000 + 20 * 100 + 50


def test_reset_forgets_every_sandbox_refund(sandbox):
    made = refund(sandbox)
    sandbox.reset()

    with pytest.raises(NotFound):
        sandbox.refund_retrieve(made.id)
    assert sandbox.payments_list("cus_sandbox_bob")[0].amount_refundable == 4000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("duplicate", RefundReason.DUPLICATE),
        ("I was charged twice for one widget", RefundReason.DUPLICATE),
        ("Double-charged", RefundReason.DUPLICATE),
        ("fraudulent", RefundReason.FRAUDULENT),
        (" Fraud ", RefundReason.FRAUDULENT),
        ("the customer thinks this is fraud", RefundReason.REQUESTED_BY_CUSTOMER),
        ("Requested-by-customer", RefundReason.REQUESTED_BY_CUSTOMER),
        ("My widget broke on day 2", RefundReason.REQUESTED_BY_CUSTOMER),
        ("", RefundReason.REQUESTED_BY_CUSTOMER),
        (None, RefundReason.REQUESTED_BY_CUSTOMER),
    ],
)
def test_free_text_reasons_map_onto_stripes_enum(text, expected):
    assert refund_reason(text) is expected


@pytest.mark.django_db
def test_a_refund_inside_a_transaction_is_refused(sandbox):
    with transaction.atomic(), pytest.raises(RuntimeError, match="never inside one"):
        refund(sandbox)

    # The test's own wrapping transaction does not count.
    assert refund(sandbox).status == "succeeded"
