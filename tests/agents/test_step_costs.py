"""What a step costs the database: a turn of look-ups is a few queries and two commits.

Invariant: a look-up step (claim, model call, the tools, the reply with its results and the
next step) makes at most 8 queries and 2 commits, however long the conversation is — the run
and its conversation are not read again inside the task that saved them. The tools' own
queries (the widget look-up) are theirs, not the engine's, and are left out.
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


def test_a_look_up_step_makes_at_most_8_queries_and_2_commits_at_any_length(
    fake_anthropic, worker, widgets, monkeypatch
):
    short = drive(fake_anthropic, worker, monkeypatch, lookups=2)
    long = drive(fake_anthropic, worker, monkeypatch, lookups=6)
    per_step = (queries(long) - queries(short)) / 4
    commits_per_step = (long.commits - short.commits) / 4
    assert per_step <= 8, long.statements
    assert commits_per_step <= 2, long.statements
    # Linear in the steps, not in the conversation: each step costs what the first ones did.
    assert queries(short) - per_step * 2 == queries(long) - per_step * 6
    # The run with its conversation is read when the task starts and when its end is saved
    # (locked) and told to its domain: never again for a step it saved itself.
    assert run_reads(short) == run_reads(long) <= 3, long.statements


def run_reads(ledger: Ledger) -> int:
    whole_row = 'SELECT "AGENTS_AGENTRUN"."ID", "AGENTS_AGENTRUN"."TOOLSET"'
    return sum(1 for s in ledger.statements if s.startswith(whole_row))


def test_the_broker_gets_no_copy_of_a_step_the_task_takes_itself(
    fake_anthropic, worker, widgets, monkeypatch
):
    ledger = drive(fake_anthropic, worker, monkeypatch, lookups=3)
    assert not [s for s in ledger.statements if "DJANGO_Q_ORMQ" in s]
    assert worker.queued() == []
