"""The inbox: everything that waits on a person, oldest first, filtered, at a fixed cost."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from agents.models import Approval, ToolCall
from agents.selectors import proposal_inbox
from tests.factories.proposals import proposal_waiting
from tests.factories.users import user_create

pytestmark = pytest.mark.django_db
INBOX = "admin:agents_toolcall_approvals"
_n = itertools.count(1)


def waiting(*, tool: str = "ship_widget", toolset: str = "toolbox", hours: float = 0, **extra):
    """A proposal waiting for a person, as the engine leaves it, `hours` old."""
    n = next(_n)
    permission = {"ship_widget": "toolbox.approve_shipment"}.get(tool, "support.approve_refund")
    return proposal_waiting(
        toolset=toolset,
        tool_name=tool,
        permission=permission,
        input={"name": "gear", "quantity": 1, "address": f"{n} Main St"},
        summary=f"1 × gear to {n} Main St",
        checks=[{"name": "small order", "passed": n % 2 == 0, "detail": "", "hard": False}],
        hours=hours,
        **extra,
    )


def test_the_inbox_lists_what_waits_oldest_first_with_age_summary_and_checks(client):
    young, old = waiting(hours=1), waiting(hours=30)
    ToolCall.objects.filter(pk=waiting().pk).update(status=ToolCall.Status.REJECTED)
    client.force_login(user_create(perms=["toolbox.approve_shipment"]))
    response = client.get(reverse(INBOX))
    rows = response.context["rows"]
    assert [r["proposal"].pk for r in rows] == [old.pk, young.pk]
    assert rows[0]["age"] >= timedelta(hours=30) and rows[0]["can_decide"]
    text = response.content.decode()
    assert old.summary in text
    assert "small order" in text
    assert "1\xa0day" in text  # timesince keeps "1 day" together


def test_the_filters(client):
    ship_old = waiting(hours=50)
    ship_new = waiting()
    refund = waiting(tool="process_refund", toolset="support", approvals_required=2)
    ann = user_create(perms=["toolbox.approve_shipment", "support.approve_refund"])
    Approval.objects.create(proposal=refund, user=ann)
    client.force_login(ann)

    def shown(**query) -> list[int]:
        return [r["proposal"].pk for r in client.get(reverse(INBOX), query).context["rows"]]

    assert shown() == [ship_old.pk, ship_new.pk, refund.pk]
    assert shown(kind="ship_widget") == [ship_old.pk, ship_new.pk]
    assert shown(agent="support") == [refund.pk]
    assert shown(age="1d") == [ship_old.pk]
    assert shown(second="1") == [refund.pk]
    assert refund.pk not in shown(mine="1")  # Ann approved it: the next approval is another's
    bob = user_create(perms=["support.approve_refund"])
    client.force_login(bob)
    assert shown() == [refund.pk]  # an approver without the log sees only their kinds
    assert shown(mine="1") == [refund.pk]


def test_someone_who_may_neither_decide_nor_read_the_log_is_refused(client):
    waiting()
    client.force_login(user_create(perms=[]))
    assert client.get(reverse(INBOX)).status_code == 403


@pytest.mark.parametrize("rows", [5, 50])
def test_the_inbox_costs_the_same_for_5_and_50_rows(client, rows):
    for i in range(rows):
        proposal = waiting(hours=i)
        if i % 3 == 0:
            Approval.objects.create(proposal=proposal, user=user_create())
    client.force_login(user_create(perms=["toolbox.approve_shipment", "agents.view_toolcall"]))
    client.get(reverse(INBOX))  # warm the session and the content types
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse(INBOX))
    assert len(response.context["rows"]) == rows
    # Session, user, permissions, the count, the page, its approvals and their users.
    assert len(queries) <= 10, [q["sql"][:120] for q in queries]


def test_the_review_page_answers_any_bad_id_without_an_error(client):
    client.force_login(user_create(perms=["agents.view_toolcall"]))
    for bad in ("999999", "abc", "0", "-1", str(2**70)):
        response = client.get(f"/admin/agents/toolcall/{bad}/review/")
        assert response.status_code == 302, bad
        assert response["Location"] == reverse(INBOX)


def test_the_selector_and_the_page_agree(client):
    for i in range(3):
        waiting(hours=i)
    client.force_login(user_create(perms=["agents.view_toolcall"]))
    rows = client.get(reverse(INBOX)).context["rows"]
    assert [r["proposal"].pk for r in rows] == list(proposal_inbox().values_list("pk", flat=True))


def _queries(client, url: str) -> int:
    client.get(url)  # warm the session and the content types
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.fixture
def counted(client):
    """50 or 5 proposals waiting, a third with an approval: the queries of a page for each."""

    def count(rows: int, url_of) -> int:
        proposals = []
        for i in range(rows):
            proposals.append(waiting(hours=i))
            if i % 3 == 0:
                Approval.objects.create(proposal=proposals[-1], user=user_create())
        client.force_login(user_create(perms=["toolbox.approve_shipment", "agents.view_toolcall"]))
        return _queries(client, url_of(proposals))

    return count


PAGES = {
    "inbox live": lambda ps: reverse("admin:agents_toolcall_approvals_live"),
    "review": lambda ps: reverse("admin:agents_toolcall_review", args=[ps[len(ps) // 2].pk]),
    "review live": lambda ps: reverse(
        "admin:agents_toolcall_review_live", args=[ps[len(ps) // 2].pk]
    ),
}


@pytest.mark.parametrize("page", PAGES)
def test_the_live_parts_and_the_review_page_cost_the_same_for_5_and_50_rows(counted, page):
    few = counted(5, PAGES[page])
    many = counted(45, PAGES[page])  # 50 in all
    assert few == many, (page, few, many)
    assert many <= 16, (page, many)
