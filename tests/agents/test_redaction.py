"""The engine masks secrets wherever text enters a conversation, and leaves the rest alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

from agents.models import AgentRun, ToolCall
from agents.redaction import MASK, content_mask, holds_secret, mask
from tests.agents.helpers import start
from tests.corpus.secrets import READABLE, SETTING_VALUE, SHAPES, planted
from tests.toolbox.models import Widget

BASE = Path(settings.BASE_DIR) / "config" / "settings" / "base.py"


@pytest.fixture
def configured(settings):
    settings.STRIPE_API_KEY = SETTING_VALUE


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_each_secret_shape_is_masked_in_its_surroundings(shape, configured):
    out = mask(shape.line)
    assert shape.secret not in out and MASK in out
    assert holds_secret(shape.line)


@pytest.mark.parametrize("line", READABLE)
def test_ordinary_code_and_prose_pass_unchanged(line, configured):
    assert mask(line) == line and not holds_secret(line)


@pytest.mark.parametrize(
    "line",
    [
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 deployed",  # a commit id
        "request_id=7f9c2ba4e88f827d616045507605853e",  # hex ids stay
        "SECRET_KEY = os.environ['DJANGO_SECRET_KEY']",  # a lookup, not a value
        "password = None",
        "input_tokens: 1500, output_tokens: 230",
        "refund 4000 cents on charge ch_3PqL9x2eZvKYlo2C0b5N8x1A",  # charge ids are data
        "2026-12-01T10:56:29.123456+00:00 GET /api/orders/1234567890123 200",
    ],
)
def test_ids_lookups_and_counts_are_not_secrets(line):
    assert mask(line) == line


def test_the_settings_values_and_environment_variables_configured_are_masked(settings, monkeypatch):
    settings.AGENTS_REDACT_SETTINGS = ["SLACK_SIGNING_SECRET"]
    settings.SLACK_SIGNING_SECRET = "plainish-signing-value"
    monkeypatch.setenv("SERVICE_DB_PASSWORD", "correct-horse-battery")
    settings.SRE_REDACT_ENV = ["SERVICE_DB_PASSWORD"]
    out = mask("sig plainish-signing-value and pw correct-horse-battery here")
    assert out == f"sig {MASK} and pw {MASK} here"


def test_the_default_secret_names_are_real_settings_and_variables():
    """SRE_REDACT_ENV once named STRIPE_SECRET_KEY, which nothing reads: the key went through."""
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z0-9_]+)"', BASE.read_text()))
    from config.settings import base

    assert "STRIPE_API_KEY" in base.SRE_REDACT_ENV
    assert set(base.SRE_REDACT_ENV) <= read, set(base.SRE_REDACT_ENV) - read
    assert all(hasattr(base, name) for name in base.AGENTS_REDACT_SETTINGS)


def test_content_blocks_are_masked_recursively():
    token = SHAPES[0].secret
    blocks = [
        {"type": "text", "text": f"key {token}"},
        {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": token}]},
    ]
    assert token not in str(content_mask(blocks))
    assert content_mask(blocks)[1]["tool_use_id"] == "t1"


@pytest.mark.django_db
def test_a_tool_result_is_masked_on_the_wire_but_kept_for_the_reviewer(fake_anthropic, worker):
    """The engine masks every tool result, whatever the tool: the toolbox's does not mask."""
    token = next(s.secret for s in SHAPES if s.name == "stripe secret key")
    Widget.objects.create(name=token, stock=3)
    fake_anthropic.push_tool_use(("lookup_widget", {"name": token}))
    fake_anthropic.push_text("Done.")
    run = start(worker, text="Look the widget up.")
    worker.drain()
    call = ToolCall.objects.get(run=run)
    assert token in call.result  # the recorded result, as staff read it
    last = fake_anthropic.message_requests[-1].body["messages"]
    result = last[-1]["content"][0]
    assert result["type"] == "tool_result" and token not in str(result) and MASK in str(result)
    # The scripted assistant turn echoes the model's own input; nothing else carries the token.
    run.refresh_from_db()
    assert token not in str(run.messages[-1]) and run.status == AgentRun.Status.COMPLETED


@pytest.mark.django_db
def test_the_first_message_and_the_system_prompt_are_masked(fake_anthropic, worker):
    token = next(s.secret for s in SHAPES if s.name == "github classic token")
    fake_anthropic.push_text("Done.")
    start(worker, text=f"Ship a gear; my token is {token}")
    worker.drain()
    first = fake_anthropic.message_requests[0].body
    assert token not in str(first) and MASK in str(first["messages"][0])


def test_masking_is_idempotent_so_a_masked_text_passes_a_second_time_unchanged(configured):
    from agents.redaction import _mask

    text = planted()
    once = _mask(text, (SETTING_VALUE,))
    assert _mask(once, (SETTING_VALUE,)) == once
    assert mask(mask(text)) == mask(text) == once
