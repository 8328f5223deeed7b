"""Every admin URL that takes an id answers a bad or missing one with a 404 or a redirect."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.urls import reverse

pytestmark = pytest.mark.django_db

APPS = ("agents", "support", "sre")
# Said in the path as a person might type or paste them; `%00` reaches the view as a NUL.
BAD_IDS = (
    "xyz",
    "-1",
    "0",
    "999999",
    "1.5",
    "%00",
    "%C2%B2",  # "²": a digit to str.isdigit(), not to int()
    "99999999999999999999999",
    "1%20OR%201",
)
# Arguments that are not object ids: a format, a file name.
OTHER_ARGS = {"fmt", "name"}
POSTED = {"support_ticket_reply", "support_ticket_alias", "agents_agentrun_cancel"}


def _routes() -> list[tuple[str, str]]:
    """(url name, argument) for every id-taking admin URL of the console's apps."""
    routes = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in APPS:
            continue
        for pattern in model_admin.get_urls():
            args = list(pattern.pattern.converters)
            if len(args) == 1 and pattern.name:
                routes.append((pattern.name, args[0]))
    return sorted(routes)


ROUTES = _routes()


def _url(name: str, arg: str, value: str) -> str:
    # Reverse with a placeholder any converter accepts, then put the raw value in its place.
    url = reverse(f"admin:{name}", kwargs={arg: 1})
    return url.replace("/1/", f"/{value}/") if "/1/" in url else url[: -len("1")] + value


def test_the_routes_cover_the_custom_pages():
    names = {name for name, _ in ROUTES}
    for expected in (
        "support_refund_change",
        "support_refund_review",
        "sre_patchproposal_review",
        "agents_toolcall_review",
        "support_ticket_change",
        "sre_incident_change",
        "agents_agentrun_change",
        "agents_auditevent_change",
    ):
        assert expected in names


@pytest.mark.parametrize("value", BAD_IDS)
@pytest.mark.parametrize(("name", "arg"), ROUTES, ids=[n for n, _ in ROUTES])
def test_a_bad_id_is_a_404_or_a_redirect(client, name, arg, value):
    client.force_login(User.objects.create_superuser(username="root", password="pw"))
    url = _url(name, arg, value)
    method = client.post if name in POSTED else client.get
    response = method(url)
    # Deleting is refused to everyone on these read-only logs, before any id is read.
    allowed = (302, 403, 404) if name.endswith("_delete") else (302, 404)
    assert response.status_code in allowed, (url, response.status_code)
    if response.status_code == 302:
        # A redirect says why on the page it leads to.
        page = client.get(response["Location"], follow=True)
        assert page.status_code == 200, (url, response["Location"])
        if arg not in OTHER_ARGS and not name.endswith(("_delete", "_history")):
            shown = [str(m) for m in page.context["messages"]] if page.context else []
            assert shown, (url, "redirected without saying why")
