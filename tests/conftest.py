from __future__ import annotations

import pytest

from agents import llm
from tests.fakes.anthropic import FakeAnthropic
from tests.toolbox.models import Widget
from tests.worker import Worker


@pytest.fixture(scope="session")
def _anthropic_server():
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture
def fake_anthropic(_anthropic_server, settings):
    """The wire-level fake of the Messages API, empty, with the SDK pointed at it."""
    server = _anthropic_server
    server.requests.clear()
    server._script.clear()
    settings.ANTHROPIC_BASE_URL = server.url
    settings.AGENTS_LLM_BACKEND = "anthropic"
    llm._client.cache_clear()
    yield server
    assert server.pending == 0, f"{server.pending} scripted replies were never requested"


@pytest.fixture
def worker(db) -> Worker:
    return Worker()


@pytest.fixture
def widgets(db) -> dict[str, Widget]:
    return {
        "gear": Widget.objects.create(name="gear", stock=10),
        "sprocket": Widget.objects.create(name="sprocket", stock=1),
    }
