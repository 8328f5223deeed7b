"""The console's home page in a real browser, at a desk's size and a phone's (390×844).

Saves the screenshots docs/screenshots/dashboard-desktop.png and dashboard-phone.png.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.utils import timezone
from playwright.sync_api import expect

from agents.models import AgentRun, ModelCall, ToolCall
from sre.models import ErrorRequest, Incident, IncidentWindow, Spike, TrafficWindow
from sre.services.windows import window_start
from tests.agents.test_dashboard import decided_call, run_make
from tests.browser.conftest import log_in
from tests.factories.users import user_create
from tests.support.console_steps import refund_waiting

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
PERMS = [
    "support.approve_refund",
    "support.view_refund",
    "sre.view_incident",
    "sre.view_trafficwindow",
    "agents.view_agentrun",
    "agents.view_modelcall",
    "agents.view_toolcall",
]


def a_day_of_work() -> None:
    """What a console sees on a busy day: refunds waiting, a spike, a failed run."""
    refund_waiting(amount=4000)
    refund_waiting(amount=25000, approved_by=None)
    sent = refund_waiting(amount=1250, call_status=ToolCall.Status.SUCCEEDED)
    ToolCall.objects.filter(pk=sent.tool_call_id).update(finished_at=timezone.now())
    run = AgentRun.objects.create(
        toolset="sre",
        prompt_name="sre",
        prompt_version=2,
        system="",
        model="claude-sonnet-4-5",
        backend="replay",
        max_tokens=1024,
        status=AgentRun.Status.FAILED,
        status_reason="The model call failed 6 times in a row (overloaded).",
        cost_usd="0.42",
    )
    ModelCall.objects.create(run=run, step=1, backend="replay", model="m", cost_usd="0.42")
    person = user_create()
    for version, decisions in ((1, "aaear"), (2, "aaaax")):
        support_run = run_make(prompt_version=version)
        for n, letter in enumerate(decisions):
            decided_call(
                run=support_run,
                decision={"a": "approved", "e": "approved", "r": "rejected", "x": "expired"}[
                    letter
                ],
                edited=letter == "e",
                minutes=7 * (n + 1),
                by=None if letter == "x" else person,
            )
    now = window_start(timezone.now())
    incident = Incident.objects.create(
        fingerprint="tb1:demo",
        fingerprint_version=1,
        category="code",
        title="KeyError: 'user_profile' in shop.views.profile",
        first_seen_at=now - timedelta(hours=6),
        last_seen_at=now,
        occurrences=120,
    )
    for i in range(288):
        start = now - timedelta(minutes=5 * i)
        errors = (i * 7) % 5 + (40 if i in (30, 31) else 0)
        TrafficWindow.objects.create(window_start=start, requests=900, server_errors=errors)
        ErrorRequest.objects.bulk_create(  # the 5xx lines, spread over the window's minutes
            ErrorRequest(
                occurred_at=start + timedelta(seconds=(61 * n) % 300),
                status=500,
                method="GET",
                path="/api/profile",
                line="500",
            )
            for n in range(errors)
        )
        if i % 4 == 0 and i < 72:
            IncidentWindow.objects.create(incident=incident, window_start=start, count=i % 9 + 1)
    for i in (30, 31):
        Spike.objects.create(
            window_start=now - timedelta(minutes=5 * i), server_errors=42, baseline=2, threshold=10
        )


def test_the_dashboard_fits_a_desk_and_a_phone(page):
    a_day_of_work()
    page.set_viewport_size(DESKTOP)
    log_in(page, perms=PERMS)
    waiting = page.locator("#cs-approvals-module")
    expect(waiting).to_contain_text("2 pending")
    expect(page.locator("#cs-waiting-process_refund")).to_contain_text("$290.00")
    expect(page.locator("#cs-traffic-chart")).to_be_visible()
    expect(page.locator("#cs-traffic-chart-narrow")).to_be_hidden()
    expect(page.locator("#cs-panel-runs")).to_contain_text("overloaded")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "dashboard-desktop.png"), full_page=True)

    page.set_viewport_size(PHONE)
    page.reload()
    expect(page.locator("#cs-waiting-process_refund")).to_contain_text("$290.00")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    expect(page.locator("#cs-traffic-chart")).to_be_hidden()
    box = page.locator("#cs-traffic-chart-narrow").bounding_box()
    assert box is not None and box["width"] <= PHONE["width"]
    page.screenshot(path=str(SHOTS / "dashboard-phone.png"), full_page=True)
    # The apps stay reachable below the panels.
    expect(page.locator("#content-main")).to_contain_text("Support desk")
