"""Test settings: the base settings plus a small toolset of the tests' own."""

import os
import tempfile

from config.settings.base import *  # noqa: F403
from config.settings.base import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.toolbox"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# Tests talk to a local server that speaks the Messages API (tests/fakes/anthropic.py);
# the `fake_anthropic` fixture points ANTHROPIC_BASE_URL at it.
ANTHROPIC_API_KEY = "sk-ant-test"
# A closed port unless a test starts worker processes against its fake (tests/e2e).
ANTHROPIC_BASE_URL = os.environ.get("TEST_ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
ANTHROPIC_MAX_RETRIES = 2
ANTHROPIC_TIMEOUT = 10.0
AGENTS_LLM_BACKEND = "anthropic"
AGENTS_MAX_TURNS = 8
AGENTS_MAX_COST_USD = 1.0

# The sandbox payments backend keeps its refunds in a file: one per test session, never the
# repository's var/. (Tests that refund through it reset it; see tests/conftest.py.)
SUPPORT_SANDBOX_STATE = os.path.join(
    tempfile.mkdtemp(prefix="countersign-sandbox-"), "sandbox-payments.json"
)

# Notices are tested where they are the subject (tests/agents/test_notices.py); elsewhere the
# approvers' mail would only add tasks to every queue.
AGENTS_NOTICE_EMAIL = False
