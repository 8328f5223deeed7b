"""The payments layer's own exceptions: what went wrong, in the payment provider's words."""

from __future__ import annotations

from typing import Any


class PaymentError(Exception):
    """A payments call failed; `message` is the provider's own explanation."""

    # True when the same call may succeed later (with the same idempotency key).
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        param: str = "",
        request_id: str = "",
        http_status: int | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.request_id = request_id
        self.http_status = http_status
        # The request may have reached the provider and acted: never record "no refund".
        self.outcome_unknown = outcome_unknown

    def __str__(self) -> str:
        details = [f"code {self.code}"] if self.code else []
        if self.request_id:
            details.append(f"request {self.request_id}")
        return f"{self.message} ({', '.join(details)})" if details else self.message

    def as_dict(self) -> dict[str, Any]:
        """Return the error as JSON-ready data for the console, the audit log and Claude."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "code": self.code,
            "param": self.param,
            "request_id": self.request_id,
            "retryable": self.retryable,
            "outcome_unknown": self.outcome_unknown,
        }


class PaymentsUnavailable(PaymentError):
    """The provider could not be reached or failed (5xx, rate limit, network, timeout)."""

    retryable = True


class PaymentsMisconfigured(PaymentError):
    """The provider refused our credentials or permissions: an operator must fix settings."""


class CardError(PaymentError):
    """The card network or the customer's bank declined the operation."""


class InvalidRequest(PaymentError):
    """The provider rejected the request as it stands; repeating it cannot help."""


class NotFound(InvalidRequest):
    """No such customer, charge or refund."""


class AlreadyRefunded(InvalidRequest):
    """The charge has been refunded in full already."""


class AmountTooLarge(InvalidRequest):
    """The refund asks for more than is still refundable on the charge."""


class ChargeDisputed(InvalidRequest):
    """The charge has been disputed (charged back); it cannot be refunded."""


class IdempotencyConflict(InvalidRequest):
    """The idempotency key was used before with different parameters."""


class WebhookRejected(PaymentError):
    """A webhook failed verification (signature, age, secret unset, body) and must be ignored."""


# Provider error codes with a class of their own; both gateways raise through this table.
ERRORS_BY_CODE: dict[str, type[PaymentError]] = {
    "charge_already_refunded": AlreadyRefunded,
    "amount_too_large": AmountTooLarge,
    "charge_disputed": ChargeDisputed,
    "resource_missing": NotFound,
}
