"""What a step costs the database: a turn of look-ups is a few queries and two commits.

Invariant: a look-up step (model call, the tools, the reply with its results, the next step
claimed for the same task) makes at most 4 queries and 1 commit, however long the
conversation is (the issue asked for at most 8 and 2) — the run and its conversation are not
read again inside the task that saved them. The tools' own queries (the widget look-up) are
theirs, not the engine's, and are left out.
"""

from __future__ import annotations

import pytest
from django.db import connection

from agents.models import AgentRun
from tests.agents.helpers import start

pytestmark = pytest.mark.django_db(transaction=True)

WRITES = ("INSERT", "UPDATE", "DELETE")


class Ledger:
    """Every statement the engine sends, and every commit, on the default connection."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.commits = 0

    def __call__(self, execute, sql, params, many, context):
        statement = sql.lstrip().upper()
        if "TOOLBOX_" not in statement:  # the tool's own reads
            self.statements.append(statement)
            if statement.startswith(WRITES) and not connection.in_atomic_block:
                self.commits += 1  # autocommit: the statement is its own transaction
        return execute(sql, params, many, context)


def drive(fake_anthropic, worker, monkeypatch, lookups: int) -> Ledger:
    for _ in range(lookups):
        fake_anthropic.push_tool_use(("lookup_widget", {"name": "gear"}))
    fake_anthropic.push_text("There are 10 gears.")
    run = start(worker, text="How many gears?")
    task = worker.take()
    ledger = Ledger()
    commit = connection.commit

    def counted_commit():
        ledger.commits += 1
        commit()

    monkeypatch.setattr(connection, "commit", counted_commit)
    with connection.execute_wrapper(ledger):
        worker.run(task)
    monkeypatch.undo()
    run.refresh_from_db()
    assert run.status == AgentRun.Status.COMPLETED, run.status_reason
    assert run.tool_calls.count() == lookups
    return ledger


def queries(ledger: Ledger) -> int:
    return sum(1 for s in ledger.statements if not s.startswith(("BEGIN", "COMMIT")))


def test_a_look_up_step_makes_at_most_4_queries_and_1_commit_at_any_length(
    fake_anthropic, worker, widgets, monkeypatch
):
    short = drive(fake_anthropic, worker, monkeypatch, lookups=2)
    long = drive(fake_anthropic, worker, monkeypatch, lookups=6)
    per_step = (queries(long) - queries(short)) / 4
    commits_per_step = (long.commits - short.commits) / 4
    assert per_step <= 4, long.statements
    assert commits_per_step <= 1, long.statements
    # Linear in the steps, not in the conversation: each step costs what the first ones did.
    assert queries(short) - per_step * 2 == queries(long) - per_step * 6
    # The claim returns the run it claims (UPDATE ... RETURNING), and a step this task saved is
    # never read again: the run with its conversation is read once, when its end is told to its
    # domain. Nothing locks it by reading (the saves are compare-and-sets on the claim).
    assert run_reads(short) == run_reads(long) == 1, long.statements
    assert not [s for s in long.statements if "FOR UPDATE" in s]


def test_the_end_of_a_run_is_one_save_of_the_run(fake_anthropic, worker, widgets, monkeypatch):
    """A run that ends at its first reply: claim, then one transaction saving everything."""
    ledger = drive(fake_anthropic, worker, monkeypatch, lookups=0)
    run_writes = [s for s in ledger.statements if s.startswith('UPDATE "AGENTS_AGENTRUN"')]
    assert len(run_writes) == 2 and "RETURNING" in run_writes[0], ledger.statements
    assert ledger.commits == 2, ledger.statements


def run_reads(ledger: Ledger) -> int:
    whole_row = 'SELECT "AGENTS_AGENTRUN"."ID", "AGENTS_AGENTRUN"."TOOLSET"'
    return sum(1 for s in ledger.statements if s.startswith(whole_row))


def test_the_broker_gets_no_copy_of_a_step_the_task_takes_itself(
    fake_anthropic, worker, widgets, monkeypatch
):
    ledger = drive(fake_anthropic, worker, monkeypatch, lookups=3)
    assert not [s for s in ledger.statements if "DJANGO_Q_ORMQ" in s]
    assert worker.queued() == []


def test_a_turns_results_are_masked_before_its_run_is_locked(
    fake_anthropic, worker, widgets, monkeypatch
):
    """The general path (a look-up beside a shipment a person approves): masking the results,
    which takes a while for a large one, happens before the run is locked to send them."""
    from agents import redaction
    from agents.models import ToolCall
    from agents.services import proposal_approve
    from tests.agents.helpers import SHIP
    from tests.factories.users import user_create

    masked_where: list[bool] = []
    real = redaction._mask

    def recorded(text, known):
        if '"stock"' in text or '"shipment"' in text:  # the two tool results
            masked_where.append(connection.in_atomic_block)
        return real(text, known)

    monkeypatch.setattr(redaction, "_mask", recorded)
    redaction._recent.clear()
    fake_anthropic.push_tool_use(("lookup_widget", {"name": "gear"}), ("ship_widget", SHIP))
    fake_anthropic.push_text("Shipped; 8 gears left.")
    run = start(worker)
    worker.drain()
    ship = ToolCall.objects.get(run=run, tool_name="ship_widget")
    with worker.committing():
        proposal_approve(tool_call_id=ship.pk, user=user_create(perms=["toolbox.approve_shipment"]))
    worker.drain()
    run.refresh_from_db()
    assert run.status == AgentRun.Status.COMPLETED, run.status_reason
    sent = fake_anthropic.message_requests[-1].body["messages"][-1]["content"]
    assert [block["type"] for block in sent] == ["tool_result", "tool_result"]
    assert masked_where and not any(masked_where), masked_where
