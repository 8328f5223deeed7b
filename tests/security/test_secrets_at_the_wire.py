"""No planted secret reaches the model server: not from files, logs, tracebacks or emails.

Every shape in tests/corpus/secrets.py is planted in a repository file, in the incident's
traceback (its message and its locals), in the access-log lines and in a customer's email; the
agents run against the wire-level Messages API fake and read what they can. Each request body
the fake received is searched for every secret, while the code around them stays readable.
"""

from __future__ import annotations

import json

import pytest

from agents.models import ToolCall
from sre.models import ErrorRequest, Incident
from support.models import Ticket
from support.services import ticket_ingest_email
from tests.corpus.secrets import READABLE, SETTING_VALUE, SHAPES, planted
from tests.sre.agent_steps import (
    W,
    code_incident,
    sre_settings,  # noqa: F401
    start,
)
from tests.sre.conftest import git, repo  # noqa: F401
from tests.support import mails

pytestmark = pytest.mark.django_db


def sent(fake_anthropic) -> str:
    bodies = [json.dumps(r.body, ensure_ascii=False) for r in fake_anthropic.message_requests]
    assert bodies, "the model server was never asked"
    return "\n".join(bodies)


def leaks(text: str) -> list[str]:
    return [shape.name for shape in SHAPES if shape.secret in text]


def leak_report(text: str) -> str:
    found = [(s.name, text.index(s.secret)) for s in SHAPES if s.secret in text]
    return "\n".join(f"{name}: ...{text[max(0, i - 120) : i + 60]!r}" for name, i in found)


@pytest.fixture
def configured(settings):
    settings.STRIPE_API_KEY = SETTING_VALUE  # masked because it is a configured secret
    return settings


def test_the_corpus_has_the_shapes_the_threat_model_names():
    assert len(SHAPES) >= 30
    assert len({s.secret for s in SHAPES}) == len(SHAPES)


def test_secrets_in_code_logs_and_tracebacks_never_reach_the_model(
    fake_anthropic,
    worker,
    sre_settings,  # noqa: F811
    repo,  # noqa: F811
    configured,
):
    (repo / "app" / "planted.py").write_text(planted() + "\n")
    (repo / "shop").mkdir()
    (repo / "shop" / "settings.py").write_text(
        "DEBUG = False\n" + "\n".join(s.line for s in SHAPES[:3]) + "\n"
    )
    (repo / "shop" / "clean_settings.py").write_text(
        "import os\nSECRET_KEY = os.environ['DJANGO_SECRET_KEY']\nTIMEOUT_SECONDS = 30\n"
    )
    git(repo, "add", "app", "shop")
    git(repo, "commit", "-qm", "planted")
    traceback = (
        "Internal Server Error: /api/export\nTraceback (most recent call last):\n"
        '  File "/srv/service/app/planted.py", line 4, in charge_customer\n'
        + "\n".join(f"    {shape.line}" for shape in SHAPES)
        + "\nValueError: bad credentials "
        + " ".join(s.secret for s in SHAPES[:10])
    )
    incident = code_incident(sample_text=traceback)
    title = f"ValueError: bad credentials {SHAPES[5].secret} (app/planted.py in charge_customer)"
    Incident.objects.filter(pk=incident.pk).update(title=title, exception_message=SHAPES[6].line)
    incident.refresh_from_db()
    for index, shape in enumerate(SHAPES):
        line = f'10.0.0.7 - - [14/Mar/2025:09:25:01 +0000] "GET /api/x?{shape.line} HTTP/1.1" 500 1'
        ErrorRequest.objects.create(
            incident=incident,
            occurred_at=W,
            status=500,
            method="GET",
            path=f"/x/{index}",
            line=line,
        )
    reads = fake_anthropic.push_tool_use(
        ("read_file", {"path": "app/planted.py"}),
        ("search_code", {"query": "password"}),
        ("search_code", {"query": "AWS_SECRET_ACCESS_KEY"}),
        ("read_file", {"path": "shop/settings.py"}),
        ("read_file", {"path": "shop/clean_settings.py"}),
    )
    fake_anthropic.push_tool_use(
        (
            "edit_file",
            {"path": "app/planted.py", "search": "TIMEOUT_SECONDS = 30", "replace": "TIMEOUT = 31"},
        )
    )
    fake_anthropic.push_tool_use(("escalate_to_human", {"reason": "Credentials in the code."}))
    start(worker, incident)

    body = sent(fake_anthropic)
    assert leaks(body) == [], leak_report(body)
    assert "(app/planted.py in charge_customer)" in body  # the title was sent, masked
    # What surrounds the secrets still reads as code.
    for line in READABLE:
        assert json.dumps(line)[1:-1] in body, line
    # The settings module with secrets is refused; the one without is read.
    calls = {c.tool_use_id: c for c in ToolCall.objects.all()}
    planted_read, _, _, settings_read, clean_read = (calls[i] for i in reads)
    assert "[REDACTED]" in planted_read.result and not planted_read.is_error
    assert settings_read.is_error and "settings module that holds secrets" in settings_read.result
    assert not clean_read.is_error and "os.environ['DJANGO_SECRET_KEY']" in clean_read.result


def test_secrets_in_a_customers_email_never_reach_the_model_and_stay_on_the_ticket(
    fake_anthropic, worker, configured
):
    fake_anthropic.push_text("I will pass this to a person.")
    body = "Hello, here is everything you asked for:\n" + planted()
    raw = mails.plain(subject=f"Login trouble {SHAPES[0].secret}", body=body)
    with worker.committing():
        ticket_ingest_email(raw=raw, source="webhook")
    worker.drain()

    assert leaks(sent(fake_anthropic)) == []
    assert "[REDACTED]" in sent(fake_anthropic)
    # The reviewer still reads the mail as the customer wrote it.
    ticket = Ticket.objects.get()
    stored = ticket.messages.get().text
    assert all(shape.secret in stored for shape in SHAPES if "\n" not in shape.line)
