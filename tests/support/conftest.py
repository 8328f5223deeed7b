from __future__ import annotations

import pytest

from agents import registry
from agents.prompts import prompt_register
from tests.fakes.imap import FakeImap


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
    """A stand-in "support" toolset, as the later change will register, with no tools."""
    prompt_register(name="support-test", version=1, template="prompts/toolbox/v1.txt")
    toolset = registry.Toolset(name="support", label="Support desk", prompt="support-test")
    monkeypatch.setitem(registry._toolsets, "support", toolset)
    return toolset
