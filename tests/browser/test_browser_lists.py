"""The console's lists in a real browser: a table at a desk, one card per row on a phone.

Invariant: at 390 px no list is wider than the screen, and every value in a card says which
column it is; at 1440 px the list is Django's table, headings and all.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.conftest import log_in
from tests.support.console_steps import refund_waiting

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
# Where to keep the phone pictures for a look (LISTS_SHOTS=/some/dir).
SHOTS = os.environ.get("LISTS_SHOTS", "")
LISTS = (
    "/admin/support/ticket/",
    "/admin/support/refund/",
    "/admin/agents/agentrun/",
    "/admin/agents/toolcall/",
    "/admin/agents/auditevent/",
)
PERMS = [
    "support.view_ticket",
    "support.view_refund",
    "agents.view_agentrun",
    "agents.view_toolcall",
    "agents.view_auditevent",
]

WIDTHS = """() => {
  const table = document.querySelector('#result_list');
  return {
    page: document.documentElement.scrollWidth,
    screen: window.innerWidth,
    table: table.getBoundingClientRect().width,
    head: getComputedStyle(table.querySelector('thead')).display,
    cells: table.querySelectorAll('tbody td, tbody th').length,
    // Cells left without a label although their column has a name.
    unlabelled: Array.from(table.querySelectorAll('tbody tr')).flatMap((row) =>
      Array.from(row.children).filter((c, i) => {
        const th = table.querySelectorAll('thead th')[i];
        const name = th && (th.querySelector('.text') || th).textContent.trim();
        return name && !c.dataset.label;
      }).map((c) => c.className)),
  };
}"""


@pytest.fixture
def lists_data():
    from agents.audit import audit_record

    for amount in (4000, 123456, 99):
        refund = refund_waiting(amount=amount)
        audit_record(
            kind="proposal.checked",
            run=refund.tool_call.run,
            tool_call=refund.tool_call,
            message="Checks passed: per-refund cap; a long message that wraps on a phone " * 3,
        )


def test_every_list_is_a_table_at_a_desk_and_cards_on_a_phone(page, lists_data):
    page.set_viewport_size(DESKTOP)
    log_in(page, perms=PERMS)
    for url in LISTS:
        page.goto(url)
        desk = page.evaluate(WIDTHS)
        assert desk["head"] != "none" and desk["cells"] > 0, (url, desk)
    page.set_viewport_size(PHONE)
    for url in LISTS:
        page.goto(url)
        phone = page.evaluate(WIDTHS)
        assert phone["head"] == "none", (url, phone)
        assert phone["page"] <= phone["screen"], (url, phone)
        assert phone["table"] <= phone["screen"], (url, phone)
        assert phone["unlabelled"] == [], (url, phone)
        labels = page.eval_on_selector_all(
            "#result_list tbody [data-label]", "cells => cells.map(c => c.dataset.label)"
        )
        assert all(label and not label[0].isdigit() for label in labels), (url, labels)
        if SHOTS:
            page.screenshot(path=str(Path(SHOTS) / f"list-{url.strip('/').replace('/', '-')}.png"))
