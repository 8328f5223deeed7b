"""Fill a fresh database with months of realistic console rows, fast: runs, tool and model calls,
audit events, proposals and approvals, tickets and their mail, refunds, replies, incidents, patches.

Runs are made in time order over `--months`: a support run looks the customer up, lists their
payments, often proposes a refund and a reply (some approved, some rejected, blocked or expired;
the most recent still waiting), sometimes escalates; an SRE run reads and searches code, edits
and proposes a pull request. It stops at `--tool-calls` tool calls; audit events are kept to
about `--audit-events`. On PostgreSQL the rows go in by COPY, one stream per table, with the
tables' secondary indexes dropped and rebuilt afterwards, then VACUUM ANALYZE; on SQLite by
executemany (keep N small there).

Usage:  DATABASE_URL=postgres://postgres@127.0.0.1:5432/cs_console .venv/bin/python \
            bench/console_load.py [--tool-calls 1000000] [--audit-events 1000000]
The database is migrated first; its console tables must be empty.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIRST = [
    "bob",
    "alice",
    "amara",
    "li",
    "wei",
    "sofia",
    "jonas",
    "priya",
    "mateo",
    "yuki",
    "olga",
    "kwame",
    "chen",
    "fatima",
    "noah",
    "emma",
    "lucas",
    "aisha",
    "david",
    "maria",
    "ivan",
    "sara",
    "omar",
    "lena",
    "tom",
    "nina",
    "raj",
    "ana",
    "pablo",
    "zoe",
]
LAST = [
    "smith",
    "okafor",
    "nguyen",
    "garcia",
    "müller",
    "kowalski",
    "tanaka",
    "silva",
    "patel",
    "johnson",
    "brown",
    "rossi",
    "dubois",
    "schmidt",
    "ivanova",
    "kim",
    "haddad",
    "larsen",
    "costa",
    "novak",
]
DOMAINS = ("test.com", "gmail.com", "outlook.com", "proton.me", "acme.io", "example.org")
SUBJECTS = (
    "My widget broke on day 2",
    "Refund for order #{n}",
    "Charged twice for my subscription",
    "Where is my order #{n}?",
    "Cancel my plan and refund the rest",
    "Wrong size delivered",
    "Question about invoice INV-{n}",
    "Re: Your receipt from Widgets Inc",
    "The gear arrived damaged",
    "Please close my account",
)
BODIES = (
    "My widget broke on day 2. My email is {email}. I want my ${dollars} back.",
    "Hi, I was charged twice this month (order #{n}). Could you refund one of them?",
    "The package never arrived. Order #{n}. Please refund or resend.",
    "I cancelled last week but was still billed ${dollars}. Please fix this.",
    "The item is the wrong size. Can I get a refund of ${dollars}?",
)
REASONS = (
    "Widget broke within the warranty period",
    "Duplicate charge",
    "Order never delivered",
    "Billed after cancellation",
    "Wrong item delivered",
)
REJECT_REASONS = (
    "Not our charge: the customer bought it from a reseller.",
    "Already refunded by the bank (chargeback).",
    "Outside the 30-day window; offer a repair instead.",
    "The amount is more than they paid; ask which order.",
)
REPLIES = (
    "Hi {name},\n\nSorry about the widget. I have refunded ${dollars} to your card; it should "
    "show in 5-10 days.\n\nBest,\nThe support team",
    "Hi {name},\n\nThanks for writing. Your order #{n} is on its way again, tracking follows.\n"
    "\nBest,\nThe support team",
    "Hi {name},\n\nI could not find a charge for that amount. Could you send the receipt?\n\n"
    "Best,\nThe support team",
)
ESCALATIONS = (
    "The customer threatens legal action; a person should answer.",
    "Two accounts share this address; I cannot tell which is theirs.",
    "The customer asks for a refund larger than the per-customer cap.",
)
FILES = ("app/api.py", "app/views.py", "app/models.py", "shop/checkout.py", "shop/api.py")
EXCEPTIONS = (
    ("KeyError", "'user_profile'", "shop/api.py in profile"),
    ("AttributeError", "'NoneType' object has no attribute 'id'", "shop/checkout.py in pay"),
    ("ValueError", "invalid literal for int() with base 10: ''", "app/views.py in page"),
    ("TimeoutError", "upstream timed out", "app/api.py in fetch_prices"),
    ("ZeroDivisionError", "division by zero", "shop/cart.py in average"),
)
STAFF = [
    "amara.okafor",
    "li.wei",
    "sofia.garcia",
    "jonas.larsen",
    "priya.patel",
    "mateo.silva",
    "yuki.tanaka",
    "olga.ivanova",
    "kwame.mensah",
    "chen.jie",
    "fatima.haddad",
    "noah.smith",
    "emma.rossi",
    "lucas.dubois",
    "aisha.khan",
    "david.kim",
    "maria.costa",
    "ivan.novak",
    "sara.schmidt",
    "omar.farouk",
]
MODELS = (("claude-sonnet-4-5", 0.78), ("claude-haiku-4-5", 0.16), ("claude-opus-4-1", 0.06))
ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
TWO_PERSON_CENTS = 20_000

TABLES = (
    "auth_user",
    "sre_incident",
    "support_ticket",
    "support_message",
    "agents_agentrun",
    "agents_toolcall",
    "agents_modelcall",
    "agents_proposal",
    "agents_approval",
    "agents_auditevent",
    "support_refund",
    "support_replydraft",
    "sre_patchproposal",
)


@dataclass
class Ids:
    """The next id of each table: rows are written with their ids, so they can refer to each
    other before any of them is in the database."""

    next: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 1))

    def take(self, table: str) -> int:
        value = self.next[table]
        self.next[table] = value + 1
        return value


def _token(rng: random.Random, length: int) -> str:
    return "".join(rng.choices(ALPHABET, k=length))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


class Writer:
    """Where rows go: one COPY stream per table (PostgreSQL) or executemany batches.

    The batches go through Django's connection, in its transaction (SQLite, or a test on
    PostgreSQL); the COPY streams through connections of their own, committed at the end.
    """

    def __init__(self, connection: Any, columns: dict[str, tuple[str, ...]], *, copy: bool) -> None:
        self.connection = connection
        self.columns = columns
        self.counts = dict.fromkeys(columns, 0)
        self.pg = copy
        self.sqlite = connection.vendor == "sqlite"
        self._streams: dict[str, Any] = {}
        self._batches: dict[str, list[tuple]] = {t: [] for t in columns}
        if self.pg:
            import psycopg

            params = connection.get_connection_params()
            params.pop("cursor_factory", None)
            params.pop("context", None)
            for table, cols in columns.items():
                raw = psycopg.connect(**params)
                # No triggers while loading: the append-only guards and the foreign-key checks
                # (the generator writes every reference before the end of the load).
                raw.execute("SET session_replication_role = replica")
                cursor = raw.cursor()
                names = ", ".join(f'"{c}"' for c in cols)
                manager = cursor.copy(f'COPY "{table}" ({names}) FROM STDIN')
                self._streams[table] = (raw, manager, manager.__enter__())

    def row(self, table: str, values: tuple) -> None:
        self.counts[table] += 1
        if self.pg:
            self._streams[table][2].write_row(values)
            return
        batch = self._batches[table]
        batch.append(tuple(map(self._sqlite, values)) if self.sqlite else values)
        if len(batch) >= 5000:
            self._flush(table)

    def _sqlite(self, value: Any) -> Any:
        if isinstance(value, datetime):
            return self.connection.ops.adapt_datetimefield_value(value)
        if isinstance(value, uuid.UUID):
            return value.hex
        if isinstance(value, Decimal):
            return str(value)
        return value

    def _flush(self, table: str) -> None:
        batch = self._batches[table]
        if not batch:
            return
        cols = self.columns[table]
        sql = 'INSERT INTO "{}" ({}) VALUES ({})'.format(
            table, ", ".join(f'"{c}"' for c in cols), ", ".join(["%s"] * len(cols))
        )
        with self.connection.cursor() as cursor:
            cursor.executemany(sql, batch)
        batch.clear()

    def close(self) -> None:
        if self.pg:
            for _raw, manager, _copy in self._streams.values():
                manager.__exit__(None, None, None)
            # Commit in the order the foreign keys point: nothing is checked while replicating,
            # but a reader never sees a call before its run.
            for table in self.columns:
                self._streams[table][0].commit()
                self._streams[table][0].close()
            return
        for table in self.columns:
            self._flush(table)


COLUMNS: dict[str, tuple[str, ...]] = {
    "sre_incident": [
        "id",
        "fingerprint",
        "fingerprint_version",
        "loose_fingerprint",
        "category",
        "infrastructure_kind",
        "title",
        "exception_type",
        "exception_message",
        "culprit",
        "status",
        "status_reason",
        "first_seen_at",
        "last_seen_at",
        "occurrences",
        "resolved_at",
        "times_reopened",
        "request_path",
        "sample_text",
        "sample_at",
        "created_at",
        "updated_at",
    ],
    "support_ticket": [
        "id",
        "customer_email",
        "customer_name",
        "subject",
        "status",
        "status_reason",
        "spf_failed",
        "dmarc_failed",
        "hidden_content_dropped",
        "created_at",
        "updated_at",
    ],
    "support_message": [
        "id",
        "ticket_id",
        "direction",
        "source",
        "message_id",
        "message_id_synthesized",
        "in_reply_to",
        "references",
        "from_email",
        "from_name",
        "to",
        "cc",
        "subject",
        "text",
        "html_converted",
        "hidden_content_dropped",
        "hidden_content_summary",
        "attachments",
        "is_auto_reply",
        "auto_reply_reason",
        "spf_failed",
        "dmarc_failed",
        "auth_summary",
        "trust_warnings",
        "defects",
        "raw",
        "sent_at",
        "received_at",
    ],
    "agents_agentrun": [
        "id",
        "toolset",
        "prompt_name",
        "prompt_version",
        "system",
        "model",
        "backend",
        "max_tokens",
        "messages",
        "status",
        "status_reason",
        "step",
        "turns",
        "attempts",
        "last_stop_reason",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "subject_type",
        "subject_id",
        "created_at",
        "updated_at",
        "finished_at",
    ],
    "agents_toolcall": [
        "id",
        "run_id",
        "tool_use_id",
        "turn",
        "position",
        "tool_name",
        "input_proposed",
        "validation_errors",
        "requires_approval",
        "checks",
        "approval_permission",
        "idempotency_key",
        "status",
        "input_executed",
        "decision",
        "decided_by_id",
        "decided_at",
        "decision_reason",
        "attempts",
        "result",
        "is_error",
        "created_at",
        "started_at",
        "finished_at",
        "duration_ms",
    ],
    "agents_modelcall": [
        "id",
        "run_id",
        "step",
        "backend",
        "model",
        "request_id",
        "message_id",
        "stop_reason",
        "error",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "latency_ms",
        "response",
        "created_at",
    ],
    "agents_proposal": [
        "tool_call_id",
        "toolset",
        "tool_name",
        "summary",
        "approvals_required",
        "checks",
        "checked_at",
        "checked_in",
        "check_attempts",
        "check_error",
        "waiting_since",
        "created_at",
        "updated_at",
    ],
    "agents_approval": [
        "id",
        "proposal_id",
        "user_id",
        "channel",
        "note",
        "edited_input",
        "created_at",
    ],
    "agents_auditevent": [
        "id",
        "kind",
        "actor_id",
        "run_id",
        "tool_call_id",
        "subject_type",
        "subject_id",
        "message",
        "data",
        "created_at",
    ],
    "support_refund": [
        "id",
        "ticket_id",
        "tool_call_id",
        "customer_id",
        "charge_id",
        "currency",
        "stripe_reason",
        "refundable_at_proposal",
        "idempotency_key",
        "submitted_at",
        "attempts",
        "gateway",
        "provider_refund_id",
        "provider_status",
        "failure_message",
        "created_at",
        "updated_at",
    ],
    "support_replydraft": [
        "id",
        "ticket_id",
        "tool_call_id",
        "body",
        "drafted_by_run_id",
        "status",
        "sent_body",
        "sent_at",
        "sent_by_id",
        "error",
        "created_at",
    ],
    "sre_patchproposal": [
        "id",
        "incident_id",
        "tool_call_id",
        "scratchpad",
        "diff",
        "changed_files",
        "base_commit",
        "branch",
        "commit",
        "pushed",
        "pr_number",
        "pr_url",
        "pr_state",
        "notes",
        "created_at",
        "updated_at",
        "published_at",
    ],
}
COLUMNS = {table: tuple(cols) for table, cols in COLUMNS.items()}


class Generator:
    """Makes the rows of one run at a time, in time order, and hands them to a Writer."""

    def __init__(self, *, writer: Writer, ids: Ids, staff: list[int], seed: int) -> None:
        self.w = writer
        self.ids = ids
        self.staff = staff
        self.rng = random.Random(seed)
        self.incidents: list[int] = []
        self.events_kept = 1.0  # the share of a run's natural audit events that are written
        self.events = 0

    # --- shared pieces ------------------------------------------------------------------------

    def event(
        self,
        *,
        at: datetime,
        kind: str,
        message: str,
        run: int | None,
        subject: tuple[str, str],
        call: int | None = None,
        actor: int | None = None,
        data: dict | None = None,
    ) -> None:
        if self.rng.random() >= self.events_kept:
            return
        self.events += 1
        self.w.row(
            "agents_auditevent",
            (
                self.ids.take("agents_auditevent"),
                kind,
                actor,
                run,
                call,
                subject[0],
                subject[1],
                message,
                _dumps(data or {}),
                at,
            ),
        )

    def model_call(self, *, run: int, step: int, at: datetime, model: str, backend: str,
                   stop: str, tool: str = "") -> tuple[int, int, Decimal]:  # fmt: skip
        rng = self.rng
        failed = rng.random() < 0.004
        tokens_in = rng.randint(400, 2400) + step * 350
        cache_read = rng.randint(1500, 6000) if step else 0
        tokens_out = rng.randint(40, 700)
        cost = Decimal(0) if backend == "replay" else (
            Decimal(tokens_in * 3 + tokens_out * 15 + cache_read * 0.3) / 1_000_000
        ).quantize(Decimal("0.000001"))  # fmt: skip
        message_id = "" if failed else "msg_01" + _token(rng, 22)
        content = [{"type": "tool_use", "name": tool}] if tool else [{"type": "text"}]
        self.w.row(
            "agents_modelcall",
            (
                self.ids.take("agents_modelcall"),
                run,
                step,
                backend,
                model,
                "req_011C" + _token(rng, 18),
                message_id,
                "" if failed else stop,
                "overloaded_error: Overloaded (529)" if failed else "",
                tokens_in,
                tokens_out,
                cache_read,
                rng.choice((0, 0, 0, 1200)),
                cost,
                rng.randint(700, 9000),
                None
                if failed
                else _dumps(
                    {
                        "id": message_id,
                        "stop_reason": stop,
                        "content": content,
                        "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
                    }
                ),  # fmt: skip
                at,
            ),
        )
        return tokens_in, tokens_out, cost

    def tool_call(
        self,
        *,
        run: int,
        turn: int,
        at: datetime,
        name: str,
        input: dict,
        result: Any,
        status: str = "succeeded",
        permission: str = "",
        decision: str = "auto",
        decided_by: int | None = None,
        reason: str | None = None,
        checks: list | None = None,
        executed: dict | None = None,
    ) -> int:
        call = self.ids.take("agents_toolcall")
        rng = self.rng
        decided_at = at + timedelta(minutes=rng.randint(2, 600)) if decided_by else None
        finished = status in ("succeeded", "failed", "rejected", "blocked", "expired", "cancelled")
        ran = status in ("succeeded", "failed")
        started = (decided_at or at) + timedelta(milliseconds=rng.randint(5, 400)) if ran else None
        duration = rng.randint(8, 1800) if ran else None
        end = started + timedelta(milliseconds=duration) if ran else (decided_at or at)
        self.w.row(
            "agents_toolcall",
            (
                call,
                run,
                "toolu_01" + _token(rng, 22),
                turn,
                0,
                name,
                _dumps(input),
                None,
                bool(permission),
                None if checks is None else _dumps(checks),
                permission,
                uuid.UUID(int=rng.getrandbits(128), version=4),
                status,
                None if executed is None else _dumps(executed),
                None if status == "awaiting_approval" else decision,
                decided_by,
                decided_at,
                reason,
                1 if ran else 0,
                None if result is None else _dumps(result),
                (status == "failed") if finished else None,
                at,
                started,
                end if finished else None,
                duration,
            ),
        )
        return call

    def proposal(self, *, call: int, toolset: str, name: str, summary: str, at: datetime,
                 status: str, checks: list, approvers: list[int], required: int = 1) -> None:  # fmt: skip
        waiting = status == "awaiting_approval"
        self.w.row(
            "agents_proposal",
            (
                call,
                toolset,
                name,
                summary,
                required,
                _dumps(checks),
                at + timedelta(seconds=2),
                "proposal" if waiting else "execution",
                0,
                "",
                at + timedelta(seconds=3) if waiting else None,
                at,
                at + timedelta(minutes=5),
            ),
        )
        for i, user in enumerate(approvers):
            self.w.row(
                "agents_approval",
                (
                    self.ids.take("agents_approval"),
                    call,
                    user,
                    "slack" if self.rng.random() < 0.2 else "console",
                    "" if i else self.rng.choice(("", "", "Checked the charge.", "OK")),
                    None,
                    at + timedelta(minutes=3 + 20 * i),
                ),
            )

    def decided(self, *, recent: bool, weights: tuple[float, ...]) -> str:
        outcomes = ("succeeded", "rejected", "blocked", "expired")
        if recent and self.rng.random() < 0.5:
            return "awaiting_approval"
        return self.rng.choices(outcomes, weights)[0]

    # --- one run ------------------------------------------------------------------------------

    def run(self, *, at: datetime, recent: bool) -> int:
        """Write one run and everything it made; return how many tool calls it has."""
        rng = self.rng
        run = self.ids.take("agents_agentrun")
        model = rng.choices([m for m, _ in MODELS], [w for _, w in MODELS])[0]
        backend = "replay" if rng.random() < 0.04 else "anthropic"
        support = rng.random() < 0.85
        if support:
            subject, calls, status, reason = self.support_run(run, at, recent, model, backend)
        else:
            subject, calls, status, reason = self.sre_run(run, at, recent, model, backend)
        toolset = "support" if support else "sre"
        usage = [0, 0, Decimal(0)]
        for step, (name, when) in enumerate([*calls, ("", at + timedelta(seconds=40))]):
            stop = "tool_use" if name else ("end_turn" if status != "escalated" else "refusal")
            tin, tout, cost = self.model_call(run=run, step=step, at=when, model=model,
                                              backend=backend, stop=stop, tool=name)  # fmt: skip
            usage = [usage[0] + tin, usage[1] + tout, usage[2] + cost]
        label = "Support desk" if support else "SRE watchdog"
        self.event(at=at, kind="run.started", run=run, subject=subject,
                   message=f"{label} run started with prompt {toolset} v1.")  # fmt: skip
        finished = status in ("completed", "failed", "escalated", "cancelled")
        if finished:
            self.event(at=at + timedelta(minutes=2), kind=f"run.{status}", run=run,
                       subject=subject, message=reason)  # fmt: skip
        self.w.row(
            "agents_agentrun",
            (
                run,
                toolset,
                toolset,
                1,
                f"You are the {label.lower()} agent of Widgets Inc.",
                model,
                backend,
                4096,
                "[]",
                status,
                reason,
                len(calls) + 1,
                len(calls) + 1,
                0,
                "end_turn" if finished else "tool_use",
                usage[0],
                usage[1],
                0,
                0,
                usage[2],
                subject[0],
                subject[1],
                at,
                at + timedelta(minutes=3),
                at + timedelta(minutes=2) if finished else None,
            ),
        )
        return len(calls)

    def support_run(self, run, at, recent, model, backend):
        rng, ids = self.rng, self.ids
        first, last = rng.choice(FIRST), rng.choice(LAST)
        n = rng.randint(1000, 99999)
        email = f"{first}.{last}{rng.randint(1, 999)}@{rng.choice(DOMAINS)}"
        name = f"{first.capitalize()} {last.capitalize()}"
        dollars = rng.choice((12, 19, 25, 40, 49, 60, 89, 120, 250, 480))
        ticket = ids.take("support_ticket")
        subject = ("support.ticket", str(ticket))
        body = rng.choice(BODIES).format(email=email, dollars=dollars, n=n)
        title = rng.choice(SUBJECTS).format(n=n)
        mail_id = f"<{_token(rng, 16)}@mail.{email.rsplit('@', 1)[1]}>"
        self.w.row(
            "support_message",
            (
                ids.take("support_message"), ticket, "in", rng.choice(("imap", "webhook", "file")),
                mail_id, False, "", "", email, name, "support@widgets.example", "", title, body,
                False, False, "", "[]", False, "", False, False, "spf=pass dkim=pass dmarc=pass",
                "[]", "[]", f"From: {name} <{email}>\r\nSubject: {title}\r\n\r\n{body}".encode(),
                at - timedelta(seconds=30), at - timedelta(seconds=20),
            ),
        )  # fmt: skip
        self.event(at=at - timedelta(seconds=20), kind="ticket.created", run=None,
                   subject=subject, message=f"Ticket from {email}: {title}")  # fmt: skip
        calls: list[tuple[str, datetime]] = []
        t = at + timedelta(seconds=3)
        customer = f"cus_{_token(rng, 14)}"
        charge = f"ch_3P{_token(rng, 22)}"
        self.tool_call(run=run, turn=0, at=t, name="find_customer", input={"email": email},
                       result={"customer": {"id": customer, "email": email, "name": name}})  # fmt: skip
        calls.append(("find_customer", t))
        t += timedelta(seconds=4)
        self.tool_call(run=run, turn=1, at=t, name="list_payments",
                       input={"customer_email": email},
                       result={"charges": [{"id": charge, "amount": dollars * 100,
                                            "currency": "usd", "refunded": 0}]})  # fmt: skip
        calls.append(("list_payments", t))
        status, reason, ticket_status = "completed", "", "resolved"
        if rng.random() < 0.06:
            t += timedelta(seconds=5)
            why = rng.choice(ESCALATIONS)
            self.tool_call(run=run, turn=2, at=t, name="escalate_to_human", input={"reason": why},
                           result="Escalated to a person.")  # fmt: skip
            calls.append(("escalate_to_human", t))
            status, reason, ticket_status = "escalated", why, "escalated"
        else:
            turn = 2
            if rng.random() < 0.6:
                t += timedelta(seconds=5)
                cents = dollars * 100
                outcome = self.decided(recent=recent, weights=(72, 14, 8, 6))
                checks = [
                    {"name": "address", "passed": True, "detail": "The sender's own address."},
                    {"name": "charge", "passed": outcome != "blocked",
                     "detail": f"{charge} can cover ${dollars}.00" if outcome != "blocked"
                     else "The charge is disputed."},
                ]  # fmt: skip
                approvers = []
                if outcome in ("succeeded",):
                    approvers = rng.sample(self.staff, 2 if cents > TWO_PERSON_CENTS else 1)
                elif outcome == "rejected":
                    approvers = []
                decider = approvers[-1] if approvers else None
                if outcome == "rejected":
                    decider = rng.choice(self.staff)
                call = self.tool_call(
                    run=run, turn=turn, at=t, name="process_refund",
                    input={"customer_email": email, "amount": cents,
                           "reason": rng.choice(REASONS)},
                    result={"refund": f"re_3P{_token(rng, 22)}", "status": "succeeded"}
                    if outcome == "succeeded" else None,
                    status=outcome, permission="support.approve_refund",
                    decision={"succeeded": "approved", "rejected": "rejected",
                              "blocked": "blocked", "expired": "expired"}.get(outcome, "auto"),
                    decided_by=decider,
                    reason=rng.choice(REJECT_REASONS) if outcome == "rejected" else None,
                    checks=checks,
                )  # fmt: skip
                calls.append(("process_refund", t))
                self.proposal(call=call, toolset="support", name="process_refund",
                              summary=f"Refund ${dollars}.00 to {email}", at=t, status=outcome,
                              checks=checks, approvers=approvers,
                              required=2 if cents > TWO_PERSON_CENTS else 1)  # fmt: skip
                self.w.row(
                    "support_refund",
                    (
                        ids.take("support_refund"), ticket, call, customer, charge, "usd",
                        "requested_by_customer", cents,
                        uuid.UUID(int=rng.getrandbits(128), version=4),
                        t + timedelta(minutes=30) if outcome == "succeeded" else None,
                        1 if outcome == "succeeded" else 0,
                        "sandbox" if backend == "replay" else "stripe",
                        f"re_3P{_token(rng, 22)}" if outcome == "succeeded" else "",
                        rng.choice(("succeeded",) * 9 + ("pending",))
                        if outcome == "succeeded" else "",
                        "", t, t + timedelta(minutes=31),
                    ),
                )  # fmt: skip
                self.event(at=t + timedelta(seconds=2), kind="proposal.checked", run=run,
                           call=call, subject=subject,
                           message="The checks passed." if outcome != "blocked"
                           else "A check failed: the charge is disputed.",
                           data={"checks": len(checks)})  # fmt: skip
                if outcome == "succeeded":
                    for i, user in enumerate(approvers):
                        self.event(at=t + timedelta(minutes=3 + 20 * i), kind="tool.approved",
                                   run=run, call=call, actor=user, subject=subject,
                                   message="Approved process_refund.",
                                   data={"approvals": i + 1})  # fmt: skip
                    self.event(at=t + timedelta(minutes=30), kind="tool.succeeded", run=run,
                               call=call, subject=subject,
                               message=f"Refunded ${dollars}.00 to {email}.")  # fmt: skip
                elif outcome == "rejected":
                    self.event(at=t + timedelta(minutes=10), kind="proposal.rejected", run=run,
                               call=call, actor=decider, subject=subject,
                               message=rng.choice(REJECT_REASONS))  # fmt: skip
                elif outcome in ("blocked", "expired"):
                    self.event(at=t + timedelta(hours=1), kind=f"proposal.{outcome}", run=run,
                               call=call, subject=subject, message=f"process_refund {outcome}.")  # fmt: skip
                if outcome == "awaiting_approval":
                    status, ticket_status = "awaiting_approval", "awaiting_approval"
                turn += 1
            if status == "completed":
                t += timedelta(seconds=6)
                text = rng.choice(REPLIES).format(name=first.capitalize(), dollars=dollars, n=n)
                outcome = self.decided(recent=recent, weights=(85, 10, 0, 5))
                decider = rng.choice(self.staff) if outcome in ("succeeded", "rejected") else None
                call = self.tool_call(
                    run=run, turn=turn, at=t, name="reply_to_customer", input={"body": text},
                    result="Sent." if outcome == "succeeded" else None, status=outcome,
                    permission="support.send_reply",
                    decision={"succeeded": "approved", "rejected": "rejected",
                              "expired": "expired"}.get(outcome, "auto"),
                    decided_by=decider,
                    reason="Too curt; say when the money arrives." if outcome == "rejected"
                    else None, checks=[],
                )  # fmt: skip
                calls.append(("reply_to_customer", t))
                self.proposal(call=call, toolset="support", name="reply_to_customer",
                              summary=f"Reply to {email}: {text[:60]}", at=t, status=outcome,
                              checks=[], approvers=[decider] if outcome == "succeeded" else [])  # fmt: skip
                sent = outcome == "succeeded"
                message = ids.take("support_message") if sent else None
                if sent:
                    self.w.row(
                        "support_message",
                        (
                            message, ticket, "out", "console",
                            f"<{_token(rng, 16)}@widgets.example>", False, mail_id, mail_id,
                            "support@widgets.example", "Widgets support", email, "",
                            f"Re: {title}", text, False, False, "", "[]", False, "", False,
                            False, "", "[]", "[]", text.encode(), t + timedelta(minutes=20),
                            t + timedelta(minutes=20),
                        ),
                    )  # fmt: skip
                    self.event(at=t + timedelta(minutes=20), kind="tool.succeeded", run=run,
                               call=call, actor=None, subject=subject,
                               message=f"Reply sent to {email}.")  # fmt: skip
                self.w.row(
                    "support_replydraft",
                    (
                        ids.take("support_replydraft"), ticket, call, text, run,
                        {"succeeded": "sent", "rejected": "discarded", "expired": "discarded"}.get(
                            outcome, "draft"),
                        text if sent else "", t + timedelta(minutes=20) if sent else None,
                        decider if sent else None, "", t,
                    ),
                )  # fmt: skip
                if outcome == "awaiting_approval":
                    status, ticket_status = "awaiting_approval", "awaiting_approval"
                elif rng.random() < 0.2:
                    ticket_status = "waiting_on_customer"
        self.w.row(
            "support_ticket",
            (
                ticket, email, name, title, ticket_status, reason,
                rng.random() < 0.01, rng.random() < 0.005, rng.random() < 0.003,
                at - timedelta(seconds=20), at + timedelta(minutes=30),
            ),
        )  # fmt: skip
        return subject, calls, status, reason

    def sre_run(self, run, at, recent, model, backend):
        rng, ids = self.rng, self.ids
        if not self.incidents or rng.random() < 0.2:
            self.incidents.append(self.incident(at))
        incident = self.incidents[-1]
        subject = ("sre.incident", str(incident))
        path = rng.choice(FILES)
        calls: list[tuple[str, datetime]] = []
        t = at + timedelta(seconds=2)
        steps = [
            ("read_file", {"path": path, "start_line": 1, "end_line": rng.choice((40, 80, 120))},
             {"text": f"# {path}\nimport json\n..."}),
            ("search_code", {"query": rng.choice(("user_profile", "def pay", "cart_total")),
                             "regex": False}, {"matches": [f"{path}:12"]}),
            ("edit_file", {"path": path, "search": "reply[\"user_profile\"]",
                           "replace": "reply.get(\"user_profile\", {})"}, {"edited": path}),
        ]  # fmt: skip
        for turn, (name, value, result) in enumerate(steps):
            self.tool_call(run=run, turn=turn, at=t, name=name, input=value, result=result)
            calls.append((name, t))
            t += timedelta(seconds=3)
        status, reason = "completed", ""
        if rng.random() < 0.7:
            outcome = self.decided(recent=recent, weights=(70, 20, 5, 5))
            decider = rng.choice(self.staff) if outcome in ("succeeded", "rejected") else None
            title = f"Fix {rng.choice(EXCEPTIONS)[0]} in {path}"
            call = self.tool_call(
                run=run, turn=3, at=t, name="create_pull_request",
                input={"title": title, "root_cause": "The upstream reply omits the key."},
                result={"branch": f"sre/incident-{incident}-fix"} if outcome == "succeeded"
                else None, status=outcome, permission="sre.approve_patch",
                decision={"succeeded": "approved", "rejected": "rejected", "blocked": "blocked",
                          "expired": "expired"}.get(outcome, "auto"), decided_by=decider,
                reason="Fix the caller instead." if outcome == "rejected" else None,
                checks=[{"name": "applies", "passed": outcome != "blocked", "detail": path}],
            )  # fmt: skip
            calls.append(("create_pull_request", t))
            self.proposal(call=call, toolset="sre", name="create_pull_request", summary=title,
                          at=t, status=outcome, checks=[],
                          approvers=[decider] if outcome == "succeeded" else [])  # fmt: skip
            merged = outcome == "succeeded"
            self.w.row(
                "sre_patchproposal",
                (
                    ids.take("sre_patchproposal"), incident, call, "",
                    f"--- a/{path}\n+++ b/{path}\n@@ -8 +8 @@\n-    profile = reply[\"user_profile\"]"
                    f"\n+    profile = reply.get(\"user_profile\", {{}})\n", _dumps([path]),
                    _token(rng, 40).lower(), f"sre/incident-{incident}-fix",
                    _token(rng, 40).lower() if merged else "", merged,
                    rng.randint(10, 9999) if merged else None,
                    "https://github.com/widgets/shop/pull/1" if merged else "",
                    "merged" if merged and rng.random() < 0.8 else "", "", t,
                    t + timedelta(minutes=30), t + timedelta(minutes=25) if merged else None,
                ),
            )  # fmt: skip
            if outcome == "awaiting_approval":
                status = "awaiting_approval"
        elif rng.random() < 0.5:
            status, reason = "failed", "The model's context window was exceeded."
        return subject, calls, status, reason

    def incident(self, at: datetime) -> int:
        rng = self.rng
        kind, message, culprit = rng.choice(EXCEPTIONS)
        incident = self.ids.take("sre_incident")
        self.w.row(
            "sre_incident",
            (
                incident, f"v1:{_token(rng, 40).lower()}", 1, f"v1:{culprit}", "code", "",
                f"{kind}: {message}", kind, message, culprit,
                rng.choice(("resolved", "resolved", "pr_open", "investigating", "ignored")), "",
                at - timedelta(minutes=5), at + timedelta(hours=rng.randint(1, 48)),
                rng.randint(5, 5000), None, 0, "/api/users/1/profile", f"Traceback ...\n{kind}",
                at, at, at,
            ),
        )  # fmt: skip
        self.event(at=at, kind="incident.opened", run=None, subject=("sre.incident", str(incident)),
                   message=f"{kind}: {message} ({culprit})")  # fmt: skip
        return incident


def _secondary_indexes(cursor: Any, tables: list[str]) -> list[tuple[str, str]]:
    """(name, definition) of each index that backs no constraint, on these tables."""
    cursor.execute(
        """
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = current_schema() AND i.tablename = ANY(%s)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
        """,
        [tables],
    )
    return cursor.fetchall()


def load(
    *,
    tool_calls: int,
    audit_events: int | None = None,
    months: int = 6,
    seed: int = 7,
    end: datetime | None = None,
    copy: bool | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, int]:
    """Write the rows into the (migrated, empty) default database; return the rows per table.

    `copy` (the default on PostgreSQL) loads by COPY and rebuilds the indexes after; without
    it the rows are inserted in the caller's transaction, as a test needs.
    """
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from agents.models import ToolCall

    if ToolCall.objects.exists():
        raise SystemExit("The console's tables are not empty: load into a fresh database.")
    audit_events = tool_calls if audit_events is None else audit_events
    started = time.perf_counter()
    password = make_password(None)
    first_user = (User.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    User.objects.bulk_create(
        User(username=name, email=f"{name}@widgets.example", is_staff=True, password=password)
        for name in STAFF
    )
    staff = list(User.objects.filter(pk__gte=first_user).values_list("pk", flat=True))
    pg = connection.vendor == "postgresql" if copy is None else copy
    tables = list(COLUMNS)
    dropped: list[tuple[str, str]] = []
    if pg:
        with connection.cursor() as cursor:
            dropped = _secondary_indexes(cursor, tables)
            for name, _definition in dropped:
                cursor.execute(f'DROP INDEX "{name}"')

    writer = Writer(connection, COLUMNS, copy=pg)
    ids = Ids()
    gen = Generator(writer=writer, ids=ids, staff=staff, seed=seed)
    end = end or datetime.now(UTC).replace(microsecond=0)
    span = timedelta(days=30 * months)
    natural = 0
    made = runs = 0
    with transaction.atomic():
        while made < tool_calls:
            # Walk evenly over the months, measured in tool calls made so far.
            at = end - span + span * (made / tool_calls)
            at += timedelta(seconds=gen.rng.randint(0, 59))
            before = gen.events
            gen.events_kept = 1.0 if not runs else gen.events_kept
            made += gen.run(at=at, recent=end - at < timedelta(days=2))
            runs += 1
            natural += (gen.events - before) / max(gen.events_kept, 1e-9)
            # Keep the audit log near its target: the share of each run's events written is the
            # events still to write over the events the remaining runs would make.
            left_runs = max(1.0, (tool_calls - made) * runs / made)
            want = max(0, audit_events - gen.events)
            gen.events_kept = min(1.0, want / max(1.0, natural / runs * left_runs))
            if runs % 50_000 == 0:
                say(f"  {runs:,} runs, {made:,} tool calls, {gen.events:,} audit events …")
        writer.close()
    counts = {table: writer.counts[table] for table in tables}
    counts["auth_user"] = len(staff)
    say(f"rows written in {time.perf_counter() - started:.0f} s")
    if pg:
        t0 = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '1GB'")
            for _name, definition in dropped:
                cursor.execute(definition)
            for table in tables:
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f'GREATEST((SELECT MAX(id) FROM "{table}"), 1))'
                    if table != "agents_proposal"
                    else "SELECT 1"
                )
        say(f"{len(dropped)} indexes rebuilt in {time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        connection.ensure_connection()
        autocommit = connection.get_autocommit()
        connection.set_autocommit(True)
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f'VACUUM (ANALYZE) "{table}"')
        connection.set_autocommit(autocommit)
        say(f"VACUUM ANALYZE in {time.perf_counter() - t0:.0f} s")
    say(f"loaded in {time.perf_counter() - started:.0f} s: {runs:,} runs")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool-calls", type=int, default=1_000_000)
    parser.add_argument("--audit-events", type=int, default=None)
    parser.add_argument("--months", type=int, default=6)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    os.environ["LOG_LEVEL"] = "WARNING"

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    counts = load(tool_calls=args.tool_calls, audit_events=args.audit_events, months=args.months)
    print("| table | rows |\n| --- | --- |")
    for table, count in counts.items():
        print(f"| {table} | {count:,} |")


if __name__ == "__main__":
    main()
