from __future__ import annotations

import pytest

from agents import registry
from agents.prompts import prompt_register
from tests.fakes.imap import FakeImap
from tests.fakes.stripe import FakeStripe


@pytest.fixture(scope="session")
def _imap_server():
    server = FakeImap().start()
    yield server
    server.stop()


@pytest.fixture
def fake_imap(_imap_server, settings) -> FakeImap:
    """The local IMAP server, empty, with the IMAP settings pointed at it (plain TCP)."""
    _imap_server.reset()
    settings.IMAP_HOST = "127.0.0.1"
    settings.IMAP_PORT = _imap_server.port
    settings.IMAP_SSL = False
    settings.IMAP_USER = _imap_server.user
    settings.IMAP_PASSWORD = _imap_server.password
    settings.IMAP_FOLDER = "INBOX"
    return _imap_server


@pytest.fixture
def support_toolset(monkeypatch) -> registry.Toolset:
    """A stand-in "support" toolset with no tools, in place of the real one."""
    prompt_register(name="support-test", version=1, template="prompts/toolbox/v1.txt")
    toolset = registry.Toolset(name="support", label="Support desk", prompt="support-test")
    monkeypatch.setitem(registry._toolsets, "support", toolset)
    return toolset


@pytest.fixture
def stripe_fake(settings):
    """A local Stripe with Bob, his $40 widget charge, and the SDK pointed at it."""
    server = FakeStripe().start()
    settings.STRIPE_API_KEY = server.api_key
    settings.STRIPE_API_BASE = server.url
    settings.STRIPE_MAX_NETWORK_RETRIES = 1
    settings.STRIPE_WEBHOOK_SECRET = "whsec_test"
    bob = server.customer_add("bob@test.com", name="Bob")
    server.bob_charge = server.charge_add(bob["id"], 4000, description="Widget")
    yield server
    server.stop()
