"""The sandbox payments gateway: customers and charges from a JSON fixture; no money moves.

Refunds live in a JSON state file (SUPPORT_SANDBOX_STATE, else BASE_DIR/var/sandbox-payments.json)
that the web server and the workers share under an exclusive file lock. Idempotency keys behave
as Stripe's do: the same key and parameters return the same refund, the same key with other
parameters is refused, a refusal for the charge's state is replayed, and keys are forgotten
after 24 hours (after which the refund service looks refunds up by metadata).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from support.payments.errors import (
    ERRORS_BY_CODE,
    AlreadyRefunded,
    AmountTooLarge,
    ChargeDisputed,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
)
from support.payments.types import (
    HOLDING_STATUSES,
    Charge,
    Customer,
    RefundResult,
    RefundStatus,
    money,
    refund_params_check,
    refund_reason,
    timestamp_to_datetime,
    transaction_forbid,
)

KEY_TTL_SECONDS = 24 * 3600
_SAVED_ERRORS = (AlreadyRefunded, AmountTooLarge, ChargeDisputed)


def sandbox_state_path() -> Path:
    """Return where sandbox refunds are kept: SUPPORT_SANDBOX_STATE or BASE_DIR/var/."""
    configured = getattr(settings, "SUPPORT_SANDBOX_STATE", "")
    return (
        Path(configured)
        if configured
        else Path(settings.BASE_DIR) / "var" / "sandbox-payments.json"
    )


def _when(value: Any) -> datetime | None:
    if isinstance(value, int | float):
        return timestamp_to_datetime(value)
    return datetime.fromisoformat(value) if value else None


_EARLIEST = datetime.min.replace(tzinfo=UTC)


def _empty_state() -> dict[str, Any]:
    return {"refunds": [], "keys": {}}


class SandboxGateway:
    """A stand-in for Stripe that a fresh checkout and the demo can refund against."""

    name = "sandbox"
    is_real = False
    label = "sandbox (no money moves)"

    def __init__(
        self,
        *,
        fixture_path: str | Path,
        state_path: str | Path,
        key_ttl_seconds: float = KEY_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fixture_path = Path(fixture_path)
        self.state_path = Path(state_path)
        self._lock_path = self.state_path.with_name(self.state_path.name + ".lock")
        self._key_ttl = key_ttl_seconds
        self._clock = clock

    @classmethod
    def from_settings(cls) -> SandboxGateway:
        """Build the gateway from SUPPORT_SANDBOX_FIXTURE and the state path."""
        return cls(fixture_path=settings.SUPPORT_SANDBOX_FIXTURE, state_path=sandbox_state_path())

    def reset(self) -> None:
        """Forget every sandbox refund and idempotency key."""
        with self._locked_state() as state:
            state.clear()
            state.update(_empty_state())

    # --- the gateway ---------------------------------------------------------------------
    def customer_find(self, email: str) -> Customer | None:
        """Return the fixture's customer with exactly this email, or None."""
        found = [c for c in self._customers() if c.get("email") == email]
        if not found:
            return None
        first = found[0]
        return Customer(
            id=first["id"],
            email=first["email"],
            name=first.get("name") or "",
            created=_when(first.get("created")),
            other_ids=tuple(c["id"] for c in found[1:]),
        )

    def payments_list(self, customer_id: str) -> list[Charge]:
        """Return the customer's charges, newest first, with fixture and sandbox refunds."""
        state = self._state()
        for customer in self._customers():
            if customer["id"] == customer_id:
                charges = [self._charge(c, state) for c in customer.get("charges") or []]
                return sorted(charges, key=lambda c: c.created or _EARLIEST, reverse=True)
        return []

    def refund_create(
        self,
        *,
        charge_id: str,
        amount: int,
        reason: str,
        metadata: Mapping[str, Any],
        idempotency_key: str,
    ) -> RefundResult:
        """Record a refund (no money moves); the same key never refunds twice."""
        transaction_forbid()
        clean = refund_params_check(
            charge_id=charge_id, amount=amount, metadata=metadata, idempotency_key=idempotency_key
        )
        params = {
            "charge": charge_id,
            "amount": amount,
            "reason": refund_reason(reason).value,
            "metadata": clean,
        }
        refused: InvalidRequest | None = None
        with self._locked_state() as state:
            now = self._clock()
            keys = state["keys"]
            for key in [k for k, saved in keys.items() if now - saved["created"] > self._key_ttl]:
                del keys[key]
            saved = keys.get(idempotency_key)
            if saved is not None:
                return self._replay(idempotency_key, saved, params, state)
            try:
                record = self._refund_new(state, params, now)
            except _SAVED_ERRORS as error:
                # Stripe saves a refusal made while acting and replays it for the same key.
                refused = error
                keys[idempotency_key] = {
                    "params": params,
                    "created": now,
                    "error": {"code": error.code, "message": error.message, "param": error.param},
                }
            else:
                keys[idempotency_key] = {
                    "params": params,
                    "created": now,
                    "refund_id": record["id"],
                }
        if refused is not None:
            raise refused
        return self._result(record)

    def refund_retrieve(self, refund_id: str) -> RefundResult:
        """Return a sandbox refund (or a fixture's earlier refund) by id."""
        state = self._state()
        for record in self._refund_records(state):
            if record["id"] == refund_id:
                return self._result(record)
        raise NotFound(f"No such refund: '{refund_id}'", code="resource_missing", param="id")

    def refund_find(
        self, *, charge_id: str, metadata_key: str, metadata_value: str
    ) -> RefundResult | None:
        """Return the charge's refund whose metadata matches, preferring one that holds money."""
        state = self._state()
        matches = [
            self._result(record)
            for record in reversed(self._refund_records(state))
            if charge_id in (record["charge"], record.get("payment_intent"))
            and record.get("metadata", {}).get(metadata_key) == str(metadata_value)
        ]
        holding = [refund for refund in matches if refund.status in HOLDING_STATUSES]
        return (holding or matches or [None])[0]

    # --- fixture -------------------------------------------------------------------------
    def _customers(self) -> list[dict[str, Any]]:
        with self.fixture_path.open(encoding="utf-8") as handle:
            return json.load(handle)["customers"]

    def _charge_data(self, charge_id: str) -> dict[str, Any] | None:
        for customer in self._customers():
            for charge in customer.get("charges") or []:
                if charge_id in (charge["id"], charge.get("payment_intent")):
                    return charge
        return None

    def _refund_records(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        """Return every refund, oldest first: the fixture's, then the sandbox's own."""
        records = []
        for customer in self._customers():
            for charge in customer.get("charges") or []:
                for refund in charge.get("refunds") or []:
                    records.append(
                        {
                            "charge": charge["id"],
                            "payment_intent": charge.get("payment_intent") or "",
                            "currency": charge.get("currency", "usd"),
                            **refund,
                        }
                    )
        return records + list(state["refunds"])

    def _charge(self, data: dict[str, Any], state: dict[str, Any]) -> Charge:
        refunds = [
            self._result(record)
            for record in self._refund_records(state)
            if record["charge"] == data["id"]
        ]
        refunded = sum(r.amount for r in refunds if r.status in HOLDING_STATUSES)
        return Charge(
            id=data["id"],
            amount=data["amount"],
            amount_refunded=refunded,
            currency=data.get("currency", "usd"),
            created=_when(data.get("created")),
            status=data.get("status", "succeeded"),
            disputed=bool(data.get("disputed")),
            description=data.get("description") or "",
            payment_intent_id=data.get("payment_intent") or "",
            refunds=tuple(sorted(refunds, key=lambda r: r.created or _EARLIEST, reverse=True)),
        )

    # --- refunds -------------------------------------------------------------------------
    def _refund_new(
        self, state: dict[str, Any], params: dict[str, Any], now: float
    ) -> dict[str, Any]:
        data = self._charge_data(params["charge"])
        if data is None:
            raise NotFound(
                f"No such charge: '{params['charge']}'", code="resource_missing", param="charge"
            )
        charge = self._charge(data, state)
        if charge.disputed:
            raise ChargeDisputed(
                f"Charge {charge.id} has been charged back; cannot issue a refund.",
                code="charge_disputed",
            )
        if charge.status != "succeeded":
            raise InvalidRequest(
                f"Charge {charge.id} has status {charge.status}; only a succeeded charge can be refunded.",
                param="charge",
            )
        if charge.amount_refundable == 0:
            raise AlreadyRefunded(
                f"Charge {charge.id} has already been refunded.", code="charge_already_refunded"
            )
        if params["amount"] > charge.amount_refundable:
            raise AmountTooLarge(
                f"Refund amount ({money(params['amount'], charge.currency)}) is greater than "
                f"unrefunded amount on charge ({money(charge.amount_refundable, charge.currency)})",
                code="amount_too_large",
                param="amount",
            )
        record = {
            "id": f"re_sandbox_{secrets.token_hex(8)}",
            "charge": charge.id,
            "payment_intent": charge.payment_intent_id,
            "amount": params["amount"],
            "currency": charge.currency,
            "reason": params["reason"],
            "metadata": params["metadata"],
            "status": RefundStatus.SUCCEEDED.value,
            "created": now,
            "failure_reason": "",
        }
        state["refunds"].append(record)
        return record

    def _replay(
        self, key: str, saved: dict[str, Any], params: dict[str, Any], state: dict[str, Any]
    ) -> RefundResult:
        if saved["params"] != params:
            raise IdempotencyConflict(
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request."
            )
        if "error" in saved:
            error = saved["error"]
            kind = ERRORS_BY_CODE.get(error["code"], InvalidRequest)
            raise kind(error["message"], code=error["code"], param=error["param"])
        for record in state["refunds"]:
            if record["id"] == saved["refund_id"]:
                return self._result(record)
        raise NotFound(f"No such refund: '{saved['refund_id']}'", code="resource_missing")

    @staticmethod
    def _result(record: dict[str, Any]) -> RefundResult:
        return RefundResult(
            id=record["id"],
            status=record.get("status", RefundStatus.SUCCEEDED.value),
            amount=record["amount"],
            currency=record.get("currency", "usd"),
            charge_id=record["charge"],
            reason=record.get("reason") or "",
            metadata=dict(record.get("metadata") or {}),
            created=_when(record.get("created")),
            failure_reason=record.get("failure_reason") or "",
            gateway="sandbox",
        )

    # --- state file ----------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        # Writers replace the file atomically, so a reader needs no lock.
        try:
            with self.state_path.open(encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return _empty_state()

    @contextmanager
    def _locked_state(self) -> Iterator[dict[str, Any]]:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self._state()
                yield state
                self._write(state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, state: dict[str, Any]) -> None:
        temporary = self.state_path.with_name(f".{self.state_path.name}.{os.getpid()}.tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.state_path)
