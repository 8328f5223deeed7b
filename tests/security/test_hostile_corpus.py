"""The hostile corpus end to end: each item, an obedient model, a careless reviewer.

For every mail in tests/corpus/emails and every log in tests/corpus/sre the real flow runs:
ingest (or scan) → the agent, whose model (the wire-level fake) asks for exactly the tool
calls the item wants → a reviewer with every permission who approves whatever the console's
review page offers (two of them, for two-person refunds) → the workers. Whatever the model
and the reviewer do, the hard rules must hold, counted at the fakes' own request logs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from support.services import ticket_ingest_email
from tests.security import invariants
from tests.security.reviewer import careless_review

pytestmark = pytest.mark.django_db

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
MAILS = CORPUS / "emails"
MAIL_ITEMS = json.loads((MAILS / "calls.json").read_text(encoding="utf-8"))


def turns_of(item: dict) -> list[list[tuple[str, dict]]]:
    return [[(name, value) for name, value in turn] for turn in item["turns"]]


@pytest.fixture
def reviewers(db) -> list[Client]:
    """Two careless reviewers holding every permission, logged in to the console."""
    clients = []
    for name in ("careless", "careless-too"):
        user = User.objects.create_superuser(name, f"{name}@countersign.example", "pw")
        client = Client()
        client.force_login(user)
        clients.append(client)
    return clients


def test_the_mail_corpus_is_complete():
    files = {p.name for p in MAILS.glob("*.eml")}
    assert len(files) >= 50 and files == set(MAIL_ITEMS)
    for item in MAIL_ITEMS.values():
        assert set(item["after"]) <= files


@pytest.mark.parametrize("name", sorted(MAIL_ITEMS))
def test_a_hostile_mail_moves_no_money_and_mails_nobody_the_rules_forbid(
    name, hostile_model, stripe_world, worker, reviewers, settings
):
    item = MAIL_ITEMS[name]
    model = hostile_model(turns_of(item))
    for file in [*item["after"], name]:
        raw = (MAILS / file).read_bytes()
        for time in range(item["times"] if file == name else 1):
            with worker.committing():
                result = ticket_ingest_email(raw=raw, source="file")
            assert result.ok, result.reason
            assert (result.outcome == "duplicate") == (time > 0)
            worker.drain()
            careless_review(worker, reviewers)

    invariants.refunds_within_policy(stripe_world, settings)
    invariants.replies_to_senders_only()
    invariants.refusals_visible(model)
    invariants.nothing_stuck(worker)
