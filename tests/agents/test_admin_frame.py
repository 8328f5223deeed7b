"""The console's frame on every admin page: a favicon, the inbox in the sidebar, a tidy header."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.urls import reverse

from tests.factories.users import user_create

pytestmark = pytest.mark.django_db

PAGES = (
    "admin:index",
    "admin:support_ticket_changelist",
    "admin:sre_incident_changelist",
    "admin:agents_auditevent_changelist",
    "admin:support_refund_changelist",
)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_links_the_favicon_and_the_inbox(client, page):
    client.force_login(User.objects.create_superuser(username="root", password="pw"))
    text = client.get(reverse(page)).content.decode()
    assert 'rel="icon" type="image/svg+xml" href="/static/agents/favicon.svg"' in text
    inbox = reverse("admin:agents_toolcall_approvals")
    # The home page has no sidebar: it shows the inbox itself.
    assert f'<a href="{inbox}">Waiting for a person</a>' in text or page == "admin:index"
    # Admin's `ul li` bullets are kept off the strip of live parts.
    assert "#header .cs-live li { list-style: none;" in text


def test_the_favicon_is_served_from_static():
    path = finders.find("agents/favicon.svg")
    assert path and Path(path).read_text().startswith("<svg")


def test_the_inbox_is_not_offered_to_someone_who_may_not_see_it(client):
    client.force_login(user_create(perms=["support.view_ticket"]))
    text = client.get(reverse("admin:support_ticket_changelist")).content.decode()
    assert "Waiting for a person" not in text
