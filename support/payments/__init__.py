"""Payments: find customers and charges, make and track refunds — through Stripe or a sandbox.

Callers take a gateway from `gateway_get()` and never import the Stripe SDK. Every gateway call
leaves the process (Stripe) or takes a file lock (sandbox): never call one inside a database
transaction. Errors are `PaymentError` subclasses carrying the provider's own message.
"""

from __future__ import annotations

from django.conf import settings

from support.payments.errors import (
    AlreadyRefunded,
    AmountTooLarge,
    CardError,
    ChargeDisputed,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    PaymentError,
    PaymentsMisconfigured,
    PaymentsUnavailable,
    WebhookRejected,
)
from support.payments.types import (
    Charge,
    Customer,
    PaymentGateway,
    RefundReason,
    RefundResult,
    RefundStatus,
    refund_reason,
)

__all__ = [
    "AlreadyRefunded",
    "AmountTooLarge",
    "CardError",
    "Charge",
    "ChargeDisputed",
    "Customer",
    "IdempotencyConflict",
    "InvalidRequest",
    "NotFound",
    "PaymentError",
    "PaymentGateway",
    "PaymentsMisconfigured",
    "PaymentsUnavailable",
    "RefundReason",
    "RefundResult",
    "RefundStatus",
    "WebhookRejected",
    "gateway_get",
    "gateway_label",
    "refund_reason",
]


def gateway_get() -> PaymentGateway:
    """Return the Stripe gateway when STRIPE_API_KEY is set, else the sandbox gateway."""
    # Imported here so that support.integrations.stripe may import this package's modules.
    if settings.STRIPE_API_KEY:
        from support.integrations.stripe import StripeGateway

        return StripeGateway.from_settings()
    from support.payments.sandbox import SandboxGateway

    return SandboxGateway.from_settings()


def gateway_label() -> tuple[str, str, bool]:
    """Return ("payments", what runs, whether it is the real service) for the console."""
    gateway = gateway_get()
    return ("payments", gateway.label, gateway.is_real)
