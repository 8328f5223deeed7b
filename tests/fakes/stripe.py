"""A local HTTP server that speaks Stripe's REST API, for the real stripe SDK to talk to.

Tests seed customers and charges, then read back what the SDK sent and what the fake holds.
Like Stripe it keeps refund state per charge (`charge_disputed`, `charge_already_refunded`,
`amount_too_large` with Stripe's messages), honours `Idempotency-Key` (the same key and
parameters replay the first answer with `Idempotent-Replayed: true`; other parameters get a 400
`idempotency_error`; refusals made while acting are saved and replayed too), answers in Stripe's
JSON shapes with a `Request-Id` header, and can be told to fail the next calls: a 500, a 429,
a connection dropped before or after acting, a slow answer, any error envelope, or an answer
held after acting until the test releases it, then dropped (`hold`: kill the worker meanwhile). It also signs
webhook payloads the way Stripe does (`Stripe-Signature: t=...,v1=...`).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import re
import socket
import threading
import time
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.hold import Hold
from tests.fakes.server import LocalServer

API_KEY = "sk_test_fake_countersign"
HOLDING = ("pending", "requires_action", "succeeded")
REASONS = ("duplicate", "fraudulent", "requested_by_customer")
RATE_LIMITED = "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests."


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, Any]
    headers: dict[str, str]
    form: dict[str, Any]
    failed: str = ""  # the injected failure this request met, if any


@dataclass
class Failure:
    kind: str  # "500", "429", "drop", "drop_after", "slow", "error", "hold"
    path: str | None
    delay: float = 0.0
    answer: Answer | None = None
    hold: Hold | None = None


def _decode(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Decode Stripe's form encoding (`metadata[k]=v`, `expand[0]=x`) one level deep."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        match = re.fullmatch(r"([^\[]+)\[([^\]]*)\]", key)
        if match is None:
            out[key] = value
            continue
        name, sub = match.groups()
        if sub == "" or sub.isdigit():
            out.setdefault(name, []).append(value)
        else:
            out.setdefault(name, {})[sub] = value
    return out


def _error(
    status: int, message: str, *, kind: str = "invalid_request_error", **extra: Any
) -> Answer:
    return Answer(status, {"error": {"type": kind, "message": message, **extra}})


def _money(cents: int, currency: str) -> str:
    symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency, "")
    return f"{symbol}{cents / 100:.2f}" if symbol else f"{cents / 100:.2f} {currency.upper()}"


class FakeStripe(LocalServer):
    def __init__(self, *, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.customers: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.page_cap = 100  # lower it to make the SDK page through lists
        self.refund_status = "succeeded"  # what a new refund starts as
        self._saved: dict[str, tuple[str, dict[str, Any], Answer]] = {}
        self._failures: deque[Failure] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._serve(ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class()))

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.base

    # --- seeding and inspection ----------------------------------------------------------
    def _id(self, prefix: str) -> str:
        return f"{prefix}_fake_{next(self._ids):04d}"

    def _object(self, kind: str, prefix: str, **fields: Any) -> dict[str, Any]:
        base = {"id": self._id(prefix), "object": kind, "created": int(time.time())}
        return {**base, "livemode": False, "metadata": {}, **fields}

    def customer_add(self, email: str, *, name: str = "") -> dict[str, Any]:
        customer = self._object("customer", "cus", email=email, name=name or None)
        self.customers[customer["id"]] = customer
        return customer

    def charge_add(
        self,
        customer_id: str,
        amount: int,
        *,
        currency: str = "usd",
        description: str = "",
        disputed: bool = False,
        status: str = "succeeded",
    ) -> dict[str, Any]:
        paid = status == "succeeded"
        charge = self._object("charge", "ch", amount=amount, amount_captured=amount * paid)
        charge.update(captured=paid, paid=paid, status=status, disputed=disputed)
        charge.update(currency=currency, customer=customer_id, description=description or None)
        charge["payment_intent"] = f"pi_{charge['id']}"
        charge["balance_transaction"] = f"txn_{charge['id']}"
        charge["receipt_email"] = self.customers.get(customer_id, {}).get("email")
        self.charges[charge["id"]] = charge
        return charge

    def refund_add(
        self,
        charge_id: str,
        amount: int,
        *,
        status: str = "succeeded",
        metadata: dict[str, str] | None = None,
        reason: str = "requested_by_customer",
    ) -> dict[str, Any]:
        """Seed a refund made earlier (outside the API, so no idempotency key)."""
        charge = self.charges[charge_id]
        refund = self._object("refund", "re", amount=amount, charge=charge_id, status=status)
        refund.update(currency=charge["currency"], payment_intent=charge["payment_intent"])
        refund.update(metadata=dict(metadata or {}), reason=reason, balance_transaction=None)
        refund.update(
            dict.fromkeys(("receipt_number", "source_transfer_reversal", "transfer_reversal"))
        )
        del refund["livemode"]  # refunds carry no livemode field
        self.refunds[refund["id"]] = refund
        return refund

    def refund_update(self, refund_id: str, *, status: str, failure_reason: str = "") -> dict:
        """Move a refund on, as Stripe does later (pending → succeeded or failed)."""
        with self._lock:
            refund = self.refunds[refund_id]
            refund["status"] = status
            if failure_reason:
                refund["failure_reason"] = failure_reason
            return copy.deepcopy(refund)

    def refunds_on(self, charge_id: str) -> list[dict[str, Any]]:
        return [r for r in reversed(self.refunds.values()) if r["charge"] == charge_id]

    @property
    def refund_posts(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/refunds"]

    # --- failures ------------------------------------------------------------------------
    def fail_next(
        self,
        kind: str = "500",
        *,
        times: int = 1,
        path: str | None = None,
        delay: float = 0.0,
        status: int = 400,
        error: dict[str, Any] | None = None,
    ) -> Hold | None:
        """Make the next `times` requests (under `path`, if given) fail in the given way.

        `hold` acts, then keeps the answer until the returned Hold is released, then drops it.
        """
        if kind not in ("500", "429", "error", "drop", "drop_after", "slow", "hold"):
            raise ValueError(f"unknown failure kind {kind!r}")
        answer = {
            "500": _error(500, "Sorry, something went wrong on Stripe's end.", kind="api_error"),
            "429": _error(429, RATE_LIMITED, code="rate_limit"),
            "error": Answer(status, {"error": error or {}}),
        }.get(kind)
        hold = Hold() if kind == "hold" else None
        for _ in range(times):
            self._failures.append(Failure(kind, path, delay, answer, hold))
        return hold

    def _failure_for(self, path: str) -> Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.path is None or path.startswith(failure.path):
                    self._failures.remove(failure)
                    return failure
        return None

    # --- webhooks ------------------------------------------------------------------------
    def event(self, event_type: str, obj: dict[str, Any]) -> bytes:
        """Return a webhook body for `event_type` about `obj`, as Stripe would send it."""
        event = self._object("event", "evt", type=event_type, data={"object": obj})
        del event["metadata"]
        event.update(pending_webhooks=1, request={"id": None, "idempotency_key": None})
        return json.dumps(event).encode()

    @staticmethod
    def webhook_sign(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
        """Return the Stripe-Signature header Stripe would send with this body."""
        when = int(time.time()) if timestamp is None else timestamp
        signed = f"{when}.".encode() + payload
        digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        return f"t={when},v1={digest}"

    # --- the API -------------------------------------------------------------------------
    def _charge_json(self, charge: dict[str, Any], *, expand_refunds: bool) -> dict[str, Any]:
        refunds = self.refunds_on(charge["id"])
        refunded = sum(r["amount"] for r in refunds if r["status"] in HOLDING)
        body = {**charge, "amount_refunded": refunded, "refunded": refunded >= charge["amount"]}
        if expand_refunds:
            shown = min(10, self.page_cap)
            body["refunds"] = {
                "object": "list",
                "data": refunds[:shown],
                "has_more": len(refunds) > shown,
                "url": f"/v1/charges/{charge['id']}/refunds",
            }
        return body

    def _list(self, url: str, items: list[dict[str, Any]], query: dict[str, Any]) -> Answer:
        try:
            limit = int(query.get("limit", 10))
        except ValueError:
            return _error(400, f"Invalid integer: {query['limit']}", param="limit")
        if not 1 <= limit <= 100:
            return _error(400, "This value must be between 1 and 100.", param="limit")
        limit = min(limit, self.page_cap)
        after = query.get("starting_after")
        if after:
            ids = [item["id"] for item in items]
            if after not in ids:
                return _error(400, f"No such object: '{after}'", param="starting_after")
            items = items[ids.index(after) + 1 :]
        body = {"object": "list", "data": items[:limit], "has_more": len(items) > limit, "url": url}
        return Answer(200, body)

    def _get(self, path: str, query: dict[str, Any]) -> Answer:
        expand = query.get("expand") or []
        if path == "/v1/customers":
            email = query.get("email")
            found = [c for c in self.customers.values() if email is None or c["email"] == email]
            return self._list(path, list(reversed(found)), query)
        if path == "/v1/charges":
            customer = query.get("customer")
            found = [c for c in self.charges.values() if customer in (None, c["customer"])]
            rendered = [
                self._charge_json(c, expand_refunds="data.refunds" in expand)
                for c in reversed(found)
            ]
            return self._list(path, rendered, query)
        if path == "/v1/refunds":
            charge, intent = query.get("charge"), query.get("payment_intent")
            found = [
                r
                for r in reversed(self.refunds.values())
                if charge in (None, r["charge"]) and intent in (None, r["payment_intent"])
            ]
            return self._list(path, found, query)
        if match := re.fullmatch(r"/v1/(customers|charges|refunds)/([^/]+)", path):
            collection, object_id = match.groups()
            kind = collection[:-1]
            obj = getattr(self, collection).get(object_id)
            if obj is None:
                message = f"No such {kind}: '{object_id}'"
                return _error(404, message, code="resource_missing", param="id")
            if collection == "charges":
                obj = self._charge_json(obj, expand_refunds="refunds" in expand)
            return Answer(200, obj)
        return _error(404, f"Unrecognized request URL (GET: {path}).")

    def _refund_create(self, form: dict[str, Any], key: str | None) -> Answer:
        if key and key in self._saved:
            route, params, answer = self._saved[key]
            if route != "POST /v1/refunds" or params != form:
                return _error(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    "meant to execute a different request.",
                    kind="idempotency_error",
                )
            replay = copy.deepcopy(answer)
            replay.headers["Idempotent-Replayed"] = "true"
            return replay
        answer, save = self._refund_execute(form)
        if key and save:
            self._saved[key] = ("POST /v1/refunds", copy.deepcopy(form), copy.deepcopy(answer))
        return answer

    def _refund_execute(self, form: dict[str, Any]) -> tuple[Answer, bool]:
        """Act on a refund request; the flag says whether Stripe would save the answer."""
        param = "payment_intent" if form.get("payment_intent") else "charge"
        wanted = form.get(param)
        if not wanted:
            message = "One of the following params should be provided for this request: payment_intent or charge."
            return _error(400, message, code="parameter_missing"), False
        found = [
            c for c in self.charges.values() if c["id" if param == "charge" else param] == wanted
        ]
        if not found:
            # An unknown object named in the body is a 400 at Stripe, not a 404.
            message = f"No such {param}: '{wanted}'"
            return _error(400, message, code="resource_missing", param=param), False
        charge = found[0]
        reason = form.get("reason")
        if reason is not None and reason not in REASONS:
            message = (
                "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer"
            )
            return _error(400, message, param="reason"), False
        remaining = self._charge_json(charge, expand_refunds=False)
        remaining = remaining["amount"] - remaining["amount_refunded"]
        amount_text = form.get("amount")
        if amount_text is not None and not re.fullmatch(r"\d+", amount_text):
            message = f"Invalid integer: {amount_text}"
            return _error(400, message, code="parameter_invalid_integer", param="amount"), False
        amount = remaining if amount_text is None else int(amount_text)
        if amount < 1:
            message = "This value must be greater than or equal to 1."
            return _error(400, message, code="parameter_invalid_integer", param="amount"), False
        if charge["disputed"]:
            message = f"Charge {charge['id']} has been charged back; cannot issue a refund."
            return _error(400, message, code="charge_disputed"), True
        if remaining <= 0:
            message = f"Charge {charge['id']} has already been refunded."
            return _error(400, message, code="charge_already_refunded"), True
        if amount > remaining:
            message = (
                f"Refund amount ({_money(amount, charge['currency'])}) is greater than "
                f"unrefunded amount on charge ({_money(remaining, charge['currency'])})"
            )
            return _error(400, message, code="amount_too_large", param="amount"), True
        refund = self.refund_add(
            charge["id"],
            amount,
            status=self.refund_status,
            metadata=form.get("metadata") or {},
            reason=reason,
        )
        refund["balance_transaction"] = f"txn_{refund['id']}"
        return Answer(200, copy.deepcopy(refund)), True

    def _respond(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> tuple[Answer | None, Failure | None]:
        parts = urlsplit(target)
        query = _decode(parse_qsl(parts.query, keep_blank_values=True))
        form = _decode(parse_qsl(raw.decode(), keep_blank_values=True)) if raw else {}
        record = Recorded(method, parts.path, query, headers, form)
        self.requests.append(record)
        failure = self._failure_for(parts.path)
        if failure is not None:
            record.failed = failure.kind
            if failure.kind == "slow":
                time.sleep(failure.delay)
            elif failure.kind not in ("drop_after", "hold"):
                return copy.deepcopy(failure.answer), failure
        if headers.get("authorization") != f"Bearer {self.api_key}":
            given = headers.get("authorization", "").removeprefix("Bearer ")
            return _error(401, f"Invalid API Key provided: {given[:8]}****"), failure
        with self._lock:
            if method == "GET":
                return self._get(parts.path, query), failure
            if method == "POST" and parts.path == "/v1/refunds":
                return self._refund_create(form, headers.get("idempotency-key")), failure
        return _error(404, f"Unrecognized request URL ({method}: {parts.path})."), failure

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # Headers and body go out in separate writes: without this each answer waits for the
            # client's delayed ACK (about 40 ms), which no real API server adds.
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"
            # Headers and body go out as separate writes; without this each answer waits
            # ~40 ms for the client's delayed ACK.
            disable_nagle_algorithm = True

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer, failure = fake._respond(method, self.path, headers, raw)
                if failure is not None and failure.hold is not None:
                    failure.hold.hold()
                if answer is None or (
                    failure is not None and failure.kind in ("drop_after", "hold")
                ):
                    # The connection dies without an answer: acted or not, the client can't tell.
                    self.close_connection = True
                    with suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                payload = json.dumps(answer.body).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Request-Id", f"req_fake_{len(fake.requests):06d}")
                if version := headers.get("stripe-version"):
                    self.send_header("Stripe-Version", version)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # noqa: N802
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
