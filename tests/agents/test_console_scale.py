"""No console list page, filter or search reads a large table from end to end (PostgreSQL).

Every list page of the admin is opened as a superuser, then once with each of its filters and
once with a search; every SELECT it ran is explained with sequential scans switched off, so the
plan uses an index wherever one can serve. A Seq Scan of a large table left in such a plan means
that no index can: at a million rows that page reads them all. A search is explained with plain
index scans off as well, so that walking a whole index under the page's LIMIT is caught too. Speed itself is measured by
bench/console.py, never here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bench.console_load import load

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="plans are PostgreSQL's; SQLite is small"
    ),
]

LARGE = {
    "agents_agentrun",
    "agents_toolcall",
    "agents_modelcall",
    "agents_auditevent",
    "agents_proposal",
    "agents_approval",
    "support_ticket",
    "support_message",
    "support_refund",
    "support_replydraft",
    "sre_trafficwindow",
}
SEARCH = "okafor"
EXTRA_PAGES = ["admin:agents_toolcall_approvals", "admin:agents_toolcall_approvals_live"]


@pytest.fixture
def rows():
    """A few hundred runs' worth of every console row, in this test's transaction."""
    return load(tool_calls=800, audit_events=800, copy=False, say=lambda line: None)


@pytest.fixture
def root(client):
    client.force_login(User.objects.create_superuser(username="root", password="pw"))
    return client


def _seq_scans(plan: dict[str, Any]) -> list[str]:
    found = []
    if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") in LARGE:
        found.append(plan["Relation Name"])
    for child in plan.get("Plans", []):
        found += _seq_scans(child)
    return found


# A search must find its rows through an index condition (the trigram indexes), not by walking
# a whole index in order and testing every row, which a LIMIT makes look cheap on small tables:
# its plans are made with plain index scans off too, so only bitmap scans, which need an index
# condition, can read a large table without a Seq Scan.
SEARCH_OFF = ("enable_indexscan", "enable_indexonlyscan")


def _full_reads(client, url: str) -> tuple[Any, list[tuple[str, str]]]:
    """The page's response, and (table, SQL) for each large table a query of it reads whole."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    reads = []
    off = ("enable_seqscan", *(SEARCH_OFF if "q=" in url else ()))
    with connection.cursor() as cursor:
        for setting in off:
            cursor.execute(f"SET {setting} = off")
        try:
            for query in queries.captured_queries:
                sql = query["sql"]
                if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
                    continue
                cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
                plan = cursor.fetchone()[0]
                plan = json.loads(plan) if isinstance(plan, str) else plan
                reads += [(table, sql) for table in _seq_scans(plan[0]["Plan"])]
        finally:
            for setting in off:
                cursor.execute(f"RESET {setting}")
    return response, reads


def _list_urls(client) -> list[str]:
    """Each list page, then with each of its filters (the first choice of each) and a search."""
    urls = [reverse(name) for name in EXTRA_PAGES]
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in ("agents", "support", "sre"):
            continue
        base = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        urls.append(base)
        response = client.get(base)
        changelist = response.context["cl"]
        for spec in changelist.filter_specs:
            choices = [c for c in spec.choices(changelist) if not c.get("selected")]
            if choices:
                urls.append(base + choices[0]["query_string"])
        if model_admin.search_fields or getattr(model_admin, "search_related", None):
            urls.append(f"{base}?q={SEARCH}")
            urls.append(f"{base}?q={SEARCH}+widget")
    return urls


def test_no_list_filter_or_search_reads_a_large_table_whole(root, rows):
    assert rows["agents_toolcall"] >= 800 and rows["support_ticket"] > 0
    failures = []
    urls = _list_urls(root)
    assert len(urls) > 40
    for url in urls:
        _response, reads = _full_reads(root, url)
        failures += [f"{url}: Seq Scan on {table}\n    {sql[:400]}" for table, sql in reads]
    assert not failures, "\n".join(failures)


def test_the_check_finds_a_search_no_index_serves(root, rows):
    """Without one column's trigram index, the tool-call search must read the whole table."""
    url = reverse("admin:agents_toolcall_changelist") + f"?q={SEARCH}"
    assert _full_reads(root, url)[1] == []
    with connection.cursor() as cursor:
        cursor.execute('DROP INDEX "agents_toolcall_result_trgm"')  # undone with the test
    assert {table for table, _sql in _full_reads(root, url)[1]} == {"agents_toolcall"}


def test_the_check_finds_a_search_that_would_walk_a_whole_index(root, rows):
    """The traffic windows' route search without its trigram index: seen, though a walk of the
    primary key under the page's LIMIT avoids a Seq Scan on a small table."""
    url = reverse("admin:sre_trafficwindow_changelist") + f"?q={SEARCH}"
    assert _full_reads(root, url)[1] == []
    with connection.cursor() as cursor:
        cursor.execute('DROP INDEX "sre_trafficwindow_route_trgm"')  # undone with the test
    assert "sre_trafficwindow" in {table for table, _sql in _full_reads(root, url)[1]}


def test_counts_stop_at_the_cap_and_say_about(root, rows, monkeypatch):
    """Past the cap a list shows the planner's estimate and says so, without a full count."""
    from agents.admin import base

    monkeypatch.setattr(base, "COUNT_CAP", 50)
    response = root.get(reverse("admin:agents_toolcall_changelist"))
    changelist = response.context["cl"]
    assert changelist.paginator.estimated and changelist.result_count > 50
    assert b"about" in response.content
    response = root.get(reverse("admin:agents_toolcall_changelist") + "?q=find_customer")
    assert response.context["cl"].paginator.estimated
    assert b"about " in response.content and b" results" in response.content
    response = root.get(reverse("admin:agents_toolcall_changelist") + "?status__exact=failed")
    assert not response.context["cl"].paginator.estimated  # a few: counted exactly


def test_a_long_list_reads_its_page_by_id_first_and_shows_the_same_rows(root, rows, monkeypatch):
    from agents.admin import base
    from agents.models import AuditEvent

    monkeypatch.setattr(base, "IDS_FIRST_OVER", 10)
    url = reverse("admin:agents_auditevent_changelist")
    for page in (1, 2):
        with CaptureQueriesContext(connection) as queries:
            response = root.get(url, {"p": page})
        shown = [event.pk for event in response.context["cl"].result_list]
        expected = AuditEvent.objects.order_by("-created_at", "-id").values_list("pk", flat=True)
        assert shown == list(expected[(page - 1) * 100 : page * 100])
        ids_first = [
            q["sql"] for q in queries if q["sql"].startswith('SELECT "agents_auditevent"."id" AS')
        ]
        assert len(ids_first) == 1
