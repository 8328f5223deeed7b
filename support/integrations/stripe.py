"""Stripe through its official SDK: the only module that imports `stripe`.

Every call that creates something carries the caller's idempotency key, and the SDK retries
network failures and 5xx answers itself (STRIPE_MAX_NETWORK_RETRIES) with that same key.
Stripe's exceptions become `support.payments` errors carrying Stripe's message, code and
request id. Nothing here may run inside a database transaction: these calls leave the process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import stripe
from django.conf import settings

from support.payments.errors import (
    ERRORS_BY_CODE,
    AmountTooLarge,
    CardError,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    PaymentError,
    PaymentsMisconfigured,
    PaymentsUnavailable,
    WebhookRejected,
)
from support.payments.types import (
    HOLDING_STATUSES,
    Charge,
    Customer,
    RefundResult,
    refund_params_check,
    refund_reason,
    timestamp_to_datetime,
    transaction_forbid,
)

# Seconds per attempt; the SDK's default (80 s) times three attempts would outlive a task.
TIMEOUT_SECONDS = 30.0
_PAGE = 100

_UNKNOWN_OUTCOME = (
    " The refund may or may not have been made: retry with the same idempotency key, or "
    "look for it by metadata once the key has expired."
)


@lru_cache(maxsize=8)
def _client(
    api_key: str, api_base: str, max_network_retries: int, timeout: float
) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base} if api_base else None,
        max_network_retries=max_network_retries,
        http_client=stripe.RequestsClient(timeout=timeout),
    )


def _translate(error: stripe.StripeError, *, creating: bool) -> PaymentError:
    body = error.json_body if isinstance(error.json_body, dict) else {}
    data = body.get("error") if isinstance(body.get("error"), dict) else {}
    message = " ".join((error.user_message or "").split()) or type(error).__name__
    details: dict[str, Any] = {
        "code": error.code or data.get("code") or "",
        "param": data.get("param") or "",
        "request_id": error.request_id or "",
        "http_status": error.http_status,
    }
    if isinstance(error, stripe.IdempotencyError):
        return IdempotencyConflict(message, **details)
    if isinstance(error, stripe.RateLimitError):
        # Stripe refused before acting: the outcome is known (nothing happened).
        return PaymentsUnavailable(f"Stripe is rate limiting us: {message}", **details)
    if isinstance(error, stripe.APIConnectionError | stripe.APIError):
        reached = not isinstance(error, stripe.APIConnectionError)
        prefix = f"Stripe failed ({error.http_status})" if reached else "Could not reach Stripe"
        note = _UNKNOWN_OUTCOME if creating else ""
        return PaymentsUnavailable(
            f"{prefix}: {message}{note}", outcome_unknown=creating, **details
        )
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return PaymentsMisconfigured(f"Stripe refused our API key: {message}", **details)
    if isinstance(error, stripe.CardError):
        return CardError(message, **details)
    if isinstance(error, stripe.InvalidRequestError):
        kind = ERRORS_BY_CODE.get(details["code"])
        if kind is None and details["param"] == "amount" and "greater than" in message:
            kind = AmountTooLarge
        if kind is None:
            kind = NotFound if error.http_status == 404 else InvalidRequest
        return kind(message, **details)
    return PaymentError(message, **details)


@contextmanager
def _stripe_errors(*, creating: bool = False) -> Iterator[None]:
    try:
        yield
    except stripe.StripeError as error:
        raise _translate(error, creating=creating) from error


def refund_result_from(data: Mapping[str, Any]) -> RefundResult:
    """Build a RefundResult from a Stripe refund object (an API answer or a webhook's data)."""
    charge = data.get("charge")
    if isinstance(charge, Mapping):
        charge = charge.get("id")
    return RefundResult(
        id=data["id"],
        status=data.get("status") or "",
        amount=int(data.get("amount") or 0),
        currency=data.get("currency") or "",
        charge_id=charge or "",
        reason=data.get("reason") or "",
        metadata=dict(data.get("metadata") or {}),
        created=timestamp_to_datetime(data.get("created")),
        failure_reason=data.get("failure_reason") or "",
        gateway="stripe",
    )


def _charge_from(data: Mapping[str, Any], refunds: list[RefundResult]) -> Charge:
    payment_intent = data.get("payment_intent")
    if isinstance(payment_intent, Mapping):
        payment_intent = payment_intent.get("id")
    return Charge(
        id=data["id"],
        amount=int(data.get("amount") or 0),
        amount_refunded=int(data.get("amount_refunded") or 0),
        currency=data.get("currency") or "",
        created=timestamp_to_datetime(data.get("created")),
        status=data.get("status") or "",
        disputed=bool(data.get("disputed")),
        description=data.get("description") or "",
        payment_intent_id=payment_intent or "",
        refunds=tuple(refunds),
    )


def _target(charge_id: str) -> dict[str, str]:
    # A payment intent's id refunds its latest charge; Stripe takes either.
    return {"payment_intent" if charge_id.startswith("pi_") else "charge": charge_id}


class StripeGateway:
    """The payments gateway backed by Stripe's API."""

    name = "stripe"
    is_real = True

    def __init__(
        self,
        *,
        api_key: str,
        api_base: str = "",
        max_network_retries: int,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        if not api_key:
            raise PaymentsMisconfigured("STRIPE_API_KEY is not set.")
        self.api_base = api_base
        self.live = "_live_" in api_key
        self._client = _client(api_key, api_base, max_network_retries, timeout)

    @classmethod
    def from_settings(cls) -> StripeGateway:
        """Build the gateway from STRIPE_API_KEY, STRIPE_API_BASE and the retry setting."""
        return cls(
            api_key=settings.STRIPE_API_KEY,
            api_base=settings.STRIPE_API_BASE,
            max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
        )

    @property
    def label(self) -> str:
        mode = "live mode" if self.live else "test mode"
        return f"Stripe ({mode}) at {self.api_base}" if self.api_base else f"Stripe ({mode})"

    def customer_find(self, email: str) -> Customer | None:
        """Return the newest Stripe customer with exactly this email, or None."""
        with _stripe_errors():
            page = self._client.v1.customers.list({"email": email, "limit": 10}).to_dict()
        found = [c for c in page["data"] if c.get("email") == email]
        if not found:
            return None
        first = found[0]
        return Customer(
            id=first["id"],
            email=first.get("email") or "",
            name=first.get("name") or "",
            created=timestamp_to_datetime(first.get("created")),
            other_ids=tuple(c["id"] for c in found[1:]),
        )

    def payments_list(self, customer_id: str) -> list[Charge]:
        """Return the customer's charges, newest first, each with the refunds made on it."""
        params = {"customer": customer_id, "limit": _PAGE, "expand": ["data.refunds"]}
        charges = []
        with _stripe_errors():
            for item in self._client.v1.charges.list(params).auto_paging_iter():
                data = item.to_dict()
                listed = data.get("refunds")
                if isinstance(listed, Mapping) and not listed.get("has_more"):
                    refunds = [refund_result_from(r) for r in listed.get("data") or []]
                else:
                    refunds = self._refunds_of(data["id"])
                charges.append(_charge_from(data, refunds))
        return charges

    def refund_create(
        self,
        *,
        charge_id: str,
        amount: int,
        reason: str,
        metadata: Mapping[str, Any],
        idempotency_key: str,
    ) -> RefundResult:
        """Refund `amount` cents of a charge; the same key never refunds twice (24 h at Stripe)."""
        transaction_forbid()
        clean = refund_params_check(
            charge_id=charge_id, amount=amount, metadata=metadata, idempotency_key=idempotency_key
        )
        params = {
            **_target(charge_id),
            "amount": amount,
            "reason": refund_reason(reason).value,
            "metadata": clean,
        }
        with _stripe_errors(creating=True):
            refund = self._client.v1.refunds.create(
                params, options={"idempotency_key": idempotency_key}
            )
        return refund_result_from(refund.to_dict())

    def refund_retrieve(self, refund_id: str) -> RefundResult:
        """Return a refund's current state."""
        with _stripe_errors():
            refund = self._client.v1.refunds.retrieve(refund_id)
        return refund_result_from(refund.to_dict())

    def refund_find(
        self, *, charge_id: str, metadata_key: str, metadata_value: str
    ) -> RefundResult | None:
        """Return the charge's refund whose metadata matches, preferring one that holds money."""
        with _stripe_errors():
            matches = [
                refund
                for refund in self._refunds_of(charge_id)
                if refund.metadata.get(metadata_key) == str(metadata_value)
            ]
        holding = [refund for refund in matches if refund.status in HOLDING_STATUSES]
        return (holding or matches or [None])[0]

    def _refunds_of(self, charge_id: str) -> list[RefundResult]:
        params = {**_target(charge_id), "limit": _PAGE}
        pages = self._client.v1.refunds.list(params).auto_paging_iter()
        return [refund_result_from(item.to_dict()) for item in pages]


def webhook_event_verify(payload: bytes, sig_header: str) -> dict[str, Any]:
    """Check a Stripe webhook's signature and age against STRIPE_WEBHOOK_SECRET; return the event."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    tolerance = settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
    if not secret:
        raise WebhookRejected(
            "STRIPE_WEBHOOK_SECRET is not set, so every Stripe webhook is refused."
        )
    if tolerance <= 0:
        # The SDK reads a tolerance of 0 as "accept any age", which would allow replays.
        raise WebhookRejected("STRIPE_WEBHOOK_TOLERANCE_SECONDS must be a positive number.")
    try:
        stripe.WebhookSignature.verify_header(payload, sig_header, secret, tolerance)
    except stripe.SignatureVerificationError as error:
        raise WebhookRejected(f"Stripe webhook refused: {error.user_message}") from error
    except UnicodeDecodeError as error:
        raise WebhookRejected("Stripe webhook refused: the body is not UTF-8.") from error
    try:
        event = json.loads(payload)
    except ValueError as error:
        raise WebhookRejected("Stripe webhook refused: the body is not JSON.") from error
    data = event.get("data") if isinstance(event, dict) else None
    if (
        not isinstance(data, dict)
        or event.get("object") != "event"
        or not isinstance(event.get("type"), str)
        or not isinstance(data.get("object"), dict)
    ):
        raise WebhookRejected("Stripe webhook refused: the body is not a Stripe event.")
    return event
