"""Browser tests: a real Chromium (the system's, never a downloaded one) against live_server.

Playwright's sync API runs an event loop in the test's thread, which Django's async-safety
check would take for async code: the check is turned off for this session. The tests are
transactional (live_server), and on SQLite Django empties the tables afterwards with DELETE,
which the audit tables' append-only triggers refuse: `browser_db` drops the triggers for its own
flush and puts them back, so every test after it still runs against guarded tables.
"""

from __future__ import annotations

import os
import shutil

import pytest
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connection

from agents import guards
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


def _execute(statements: list[str]) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


@pytest.fixture
def browser_db(transactional_db):
    """Transactional database access whose teardown gets past the audit tables' guards."""
    yield
    if connection.vendor != "sqlite":
        return  # PostgreSQL flushes with TRUNCATE, which row triggers do not see
    # Set up after transactional_db, so torn down before its flush: empty the tables here,
    # with the DELETE guards lifted, and put the guards back; its own flush then finds
    # nothing left to delete in the guarded tables.
    _execute(guards.sqlite_uninstall() + guards.sqlite_unseal(guards.LATER_SEALED))
    try:
        call_command(
            "flush",
            verbosity=0,
            interactive=False,
            database=DEFAULT_DB_ALIAS,
            reset_sequences=False,
            allow_cascade=False,
            inhibit_post_migrate=False,
        )
    finally:
        _execute(guards.sqlite_install() + guards.sqlite_seal(guards.LATER_SEALED))


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
