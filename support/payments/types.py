"""What the payments layer returns (plain dataclasses) and the interface each gateway offers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from django.db import connections, transaction

from support.payments.errors import InvalidRequest


class RefundStatus(StrEnum):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


# A refund in these states holds money against its charge; failed and canceled ones give it back.
HOLDING_STATUSES = frozenset(
    {RefundStatus.PENDING, RefundStatus.REQUIRES_ACTION, RefundStatus.SUCCEEDED}
)
FINAL_STATUSES = frozenset({RefundStatus.SUCCEEDED, RefundStatus.FAILED, RefundStatus.CANCELED})


class RefundReason(StrEnum):
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    REQUESTED_BY_CUSTOMER = "requested_by_customer"


_DUPLICATE_WORDS = re.compile(
    r"\b(duplicate[ds]?|charged twice|double[- ]?charged?|charged two times|billed twice)\b"
)


def refund_reason(text: str | None) -> RefundReason:
    """Map a free-text reason onto Stripe's refund reason enum."""
    normal = re.sub(r"[\s_-]+", " ", (text or "").strip().lower())
    for reason in RefundReason:
        if normal == reason.value.replace("_", " "):
            return reason
    # "fraudulent" also adds the card and email to Stripe Radar's block lists, so only an
    # explicit choice selects it; words in a customer's story never do.
    if normal == "fraud":
        return RefundReason.FRAUDULENT
    if _DUPLICATE_WORDS.search(normal):
        return RefundReason.DUPLICATE
    return RefundReason.REQUESTED_BY_CUSTOMER


def timestamp_to_datetime(value: int | float | None) -> datetime | None:
    """Turn a Unix timestamp into an aware UTC datetime."""
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _jsonable(item) for key, item in value.items()}
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return value


class _AsDict:
    def as_dict(self) -> dict[str, Any]:
        """Return the object as JSON-ready data (ISO dates) for tool results and the console."""
        data = {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]
        for name in getattr(self, "_computed", ()):
            data[name] = _jsonable(getattr(self, name))
        return data


@dataclass(frozen=True)
class Customer(_AsDict):
    id: str
    email: str
    name: str
    created: datetime | None
    # Other customers with the same email: the provider does not keep emails unique.
    other_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class RefundResult(_AsDict):
    id: str
    status: str
    amount: int
    currency: str
    charge_id: str
    reason: str
    metadata: Mapping[str, str]
    created: datetime | None
    failure_reason: str = ""
    gateway: str = "stripe"

    _computed = ("is_final",)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class Charge(_AsDict):
    id: str
    amount: int
    amount_refunded: int
    currency: str
    created: datetime | None
    status: str
    disputed: bool
    description: str
    payment_intent_id: str = ""
    refunds: tuple[RefundResult, ...] = field(default=())

    _computed = ("amount_refundable",)

    @property
    def amount_refundable(self) -> int:
        """Return the cents still refundable; nothing on a charge that did not succeed."""
        if self.status != "succeeded":
            return 0
        return max(self.amount - self.amount_refunded, 0)


def transaction_forbid() -> None:
    """Refuse to go on inside a database transaction (a test case's own does not count)."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            continue
        try:
            # Django refuses a durable block inside another one, except a test case's.
            with transaction.atomic(using=connection.alias, durable=True):
                pass
        except RuntimeError as error:
            # A rollback after the provider acted would lose the only record of real money.
            raise RuntimeError(
                "A refund leaves the process: make it after the transaction commits, "
                "never inside one."
            ) from error


def refund_params_check(
    *, charge_id: str, amount: int, metadata: Mapping[str, Any], idempotency_key: str
) -> dict[str, str]:
    """Refuse a refund request no gateway should send; return the metadata as strings."""
    if not idempotency_key or len(idempotency_key) > 255:
        # A programming error, not a payments outcome: every refund carries its fixed key.
        raise ValueError("refund_create needs an idempotency key of 1 to 255 characters.")
    if not charge_id:
        raise InvalidRequest("A charge id is required.", code="parameter_missing", param="charge")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidRequest(
            f"The amount must be a positive whole number of cents, not {amount!r}.",
            code="parameter_invalid_integer",
            param="amount",
        )
    clean = {str(key): str(value) for key, value in metadata.items()}
    for key, value in clean.items():
        if len(key) > 40 or len(value) > 500:
            raise InvalidRequest(
                f"Metadata {key!r} is too long (keys up to 40, values up to 500 characters).",
                code="parameter_invalid_string",
                param=f"metadata[{key}]",
            )
    if len(clean) > 50:
        raise InvalidRequest("At most 50 metadata keys.", param="metadata")
    return clean


def money(cents: int, currency: str) -> str:
    """Format cents the way Stripe's messages do: $40.00."""
    symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency.lower())
    value = f"{cents / 100:.2f}"
    return f"{symbol}{value}" if symbol else f"{value} {currency.upper()}"


class PaymentGateway(Protocol):
    """What the refund service and the agent's tools may ask of a payments provider."""

    name: str
    label: str
    is_real: bool

    def customer_find(self, email: str) -> Customer | None: ...

    def payments_list(self, customer_id: str) -> list[Charge]: ...

    def refund_create(
        self,
        *,
        charge_id: str,
        amount: int,
        reason: str,
        metadata: Mapping[str, Any],
        idempotency_key: str,
    ) -> RefundResult: ...

    def refund_retrieve(self, refund_id: str) -> RefundResult: ...

    def refund_find(
        self, *, charge_id: str, metadata_key: str, metadata_value: str
    ) -> RefundResult | None: ...
