"""Fixtures the engine's tests share."""

from tests.agents.slack_steps import slack_fake  # noqa: F401
