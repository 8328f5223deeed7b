"""Browser tests: a real Chromium (the system's, never a downloaded one) against live_server.

Playwright's sync API runs an event loop in the test's thread, which Django's async-safety
check would take for async code: the check is turned off for this session. The tests are
transactional (live_server); the suite's `flush` empties the guarded tables afterwards.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.factories.users import user_create
from tests.support.conftest import stripe_fake  # noqa: F401  (Bob's Stripe, for these tests too)

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        message = f"No Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_db(transactional_db):
    """Transactional database access (the live server's threads see the test's rows).

    Emptied afterwards by the suite's own `flush` (tests/toolbox), which gets past the audit
    tables' guards and puts them back.
    """
    yield


@pytest.fixture
def page(browser, live_server, browser_db):
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def log_in(page, *, perms: list[str]):
    """Create a staff user and log in through the admin's real login page."""
    user = user_create(perms=perms)
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    return user
