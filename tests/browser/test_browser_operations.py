"""The dashboard's Operations panel in a real browser: it fits a desk and a phone (390×844)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from playwright.sync_api import expect

from agents.models import AgentRun
from tests.agents.test_metrics import OPERATOR, queued_make, run_make, task_make
from tests.browser.conftest import log_in
from tests.support.console_steps import refund_waiting

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
# Where to keep the pictures for a look (not docs/screenshots: the README's are the dashboard's).
SHOTS = os.environ.get("OPERATIONS_SHOTS", "")


def test_the_operations_panel_fits_a_desk_and_a_phone(page, tmp_path: Path):
    refund_waiting(amount=4000)
    for minutes in (3, 50, 200):
        task_make(
            success=False,
            ago=timedelta(minutes=minutes),
            name=f"tool_call_execute_task:{minutes}:a-long-task-name-that-must-wrap-on-a-phone",
        )
    for _ in range(4):
        queued_make()
    run_make(status=AgentRun.Status.RUNNING)
    shots = Path(SHOTS) if SHOTS else tmp_path
    page.set_viewport_size(DESKTOP)
    log_in(page, perms=OPERATOR + ["agents.view_toolcall"])
    panel = page.locator("#cs-panel-operations")
    expect(panel).to_contain_text("tasks waiting in the queue")
    expect(page.locator("#cs-ops-queue")).to_have_text("4")
    expect(page.locator("#cs-ops-failed")).to_have_text("3")
    expect(panel).to_contain_text("ORM broker (the database)")
    panel.screenshot(path=str(shots / "operations-desktop.png"))

    page.set_viewport_size(PHONE)
    page.reload()
    expect(page.locator("#cs-ops-queue")).to_have_text("4")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    box = panel.bounding_box()
    assert box is not None and box["width"] <= PHONE["width"]
    panel.screenshot(path=str(shots / "operations-phone.png"))
    # Its links go where they say: the failed tasks' list.
    panel.get_by_role("link", name="failed tasks, last 24 h").click()
    page.wait_for_url("**/admin/django_q/failure/")
    expect(page.locator("#result_list")).to_contain_text("a-long-task-name")
