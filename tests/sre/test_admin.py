"""The watchdog's console pages render, show log text escaped, and cost the same for any size."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from sre.models import Incident, LogSource
from tests.factories.users import user_create
from tests.sre.logfiles import scan_all

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user() -> User:
    return User.objects.create_superuser(username="root", password="pw")


@pytest.fixture
def scanned(settings, seed_files):
    settings.SRE_LOG_SOURCES = (
        f"django:{seed_files['django']},nginx_access:{seed_files['nginx_access']}"
    )
    scan_all(from_start=True)


def test_every_page_renders(client, admin_user, scanned):
    client.force_login(admin_user)
    incident = Incident.objects.get(culprit="shop/api.py in profile")
    source = LogSource.objects.get(kind="django")
    pages = {
        reverse("admin:sre_incident_changelist"): [
            "KeyError: &#x27;user_profile&#x27;",
            "Code (traceback)",
        ],
        reverse("admin:sre_incident_change", args=[incident.pk]): [
            "profile = reply[&quot;user_profile&quot;]",
            "Counts per window",
            "GET /api/users/40/profile HTTP/1.1",
            "The SRE agent on a spike of 5xx",
        ],
        reverse("admin:sre_logsource_changelist"): ["byte ", "Django error log"],
        reverse("admin:sre_logsource_change", args=[source.pk]): ["SRE_LOG_SOURCES", "sha256"],
        reverse("admin:sre_spike_changelist"): ["13"],
        reverse("admin:sre_trafficwindow_changelist"): [
            "(all routes)",
            "/api/users/&lt;n&gt;/profile",
        ],
    }
    for url, texts in pages.items():
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        for text in texts:
            assert text in body, (url, text)


def test_log_text_is_escaped(client, admin_user, logs, source):
    log = logs("error.log").write(
        "2025-03-14 09:00:00,000 ERROR x.y <img src=x onerror=alert(1)> failed\n"
    )
    source("django", log.path, read_existing=True)
    scan_all()
    client.force_login(admin_user)
    incident = Incident.objects.get()
    body = client.get(reverse("admin:sre_incident_change", args=[incident.pk])).content.decode()
    assert "<img src=x" not in body and "&lt;img src=x onerror=alert(1)&gt;" in body


def test_list_pages_cost_the_same_for_any_number_of_rows(client, admin_user, scanned, logs, source):
    client.force_login(admin_user)
    urls = [
        reverse("admin:sre_incident_changelist"),
        reverse("admin:sre_logsource_changelist"),
        reverse("admin:sre_trafficwindow_changelist"),
    ]
    before = {}
    for url in urls:
        with CaptureQueriesContext(connection) as ctx:
            client.get(url)
        before[url] = len(ctx)
    for i in range(3):
        log = logs(f"more{i}.log").write(
            f"2025-03-14 10:0{i}:00,000 ERROR x.y failure number {i} of kind {'abc'[i]}\n"
        )
        source("django", log.path, read_existing=True)
    scan_all()
    for url in urls:
        with CaptureQueriesContext(connection) as ctx:
            client.get(url)
        assert len(ctx) == before[url], url


def test_incident_actions_need_the_decide_permission(client, scanned):
    incident = Incident.objects.get(culprit="shop/api.py in profile")
    url = reverse("admin:sre_incident_changelist")
    data = {"action": "resolve", "_selected_action": [incident.pk]}
    viewer = user_create(perms=["sre.view_incident"])
    client.force_login(viewer)
    client.post(url, data)
    assert Incident.objects.get(pk=incident.pk).status == "open"
    decider = user_create(perms=["sre.view_incident", "sre.decide_incident"])
    client.force_login(decider)
    client.post(url, data)
    assert Incident.objects.get(pk=incident.pk).status == "resolved"


def test_sources_from_the_environment_are_read_only_in_the_console(client, admin_user, scanned):
    client.force_login(admin_user)
    source = LogSource.objects.get(kind="django")
    url = reverse("admin:sre_logsource_change", args=[source.pk])
    client.post(
        url, {"kind": "nginx_error", "path": "/etc/passwd", "enabled": "", "read_existing": "on"}
    )
    source.refresh_from_db()
    assert (source.kind, source.enabled) == ("django", True) and source.path.endswith("error.log")


def test_a_source_added_in_the_console_is_scanned(client, admin_user, logs):
    log = logs("access.log").write(
        '10.0.0.1 - - [14/Mar/2025:09:00:00 +0000] "GET / HTTP/1.1" 502 5 "-" "-"\n'
    )
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:sre_logsource_add"),
        {"kind": "nginx_access", "path": str(log.path), "enabled": "on", "read_existing": "on"},
    )
    assert response.status_code == 302
    source = LogSource.objects.get()
    response = client.post(
        reverse("admin:sre_logsource_changelist"),
        {"action": "scan_now", "_selected_action": [source.pk]},
        follow=True,
    )
    assert "1 requests, 1 5xx" in response.content.decode()
    assert Incident.objects.get().infrastructure_kind == "bad_gateway"
