"""A careless reviewer: approves whatever the console's inbox offers, through its own pages."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from django.test import Client
from django.urls import reverse

REVIEW_LINK = re.compile(r'href="(/admin/agents/toolcall/(\d+)/review/)"')


class _FormFields(HTMLParser):
    """The named inputs of the form with the given id, as the browser would post them."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id, self.inside, self.found = form_id, False, False
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id") == self.form_id:
            self.inside = self.found = True
        elif tag == "input" and self.inside and attrs.get("name"):
            kept = attrs.get("type") not in ("submit", "button")
            self.fields.update({attrs["name"]: attrs.get("value") or ""} if kept else {})

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False


def form_fields(html: str, form_id: str) -> dict[str, str] | None:
    parser = _FormFields(form_id)
    parser.feed(html)
    return parser.fields if parser.found else None


def careless_review(worker, reviewers: list[Client], *, rounds: int = 12) -> int:
    """Approve every proposal the inbox lists, by each reviewer the page lets approve.

    Each approval is posted as the review page's approve form, then the workers run what was
    queued. Rounds repeat until the inbox offers nothing more; returns the approvals posted.
    """
    posted = 0
    inbox = reverse("admin:agents_toolcall_approvals")
    for _ in range(rounds):
        progressed = False
        page = reviewers[0].get(inbox)
        assert page.status_code == 200, page.status_code
        links = dict.fromkeys(m.group(1) for m in REVIEW_LINK.finditer(page.content.decode()))
        for link in links:
            for client in reviewers:
                review = client.get(link)
                assert review.status_code == 200, (link, review.status_code)
                fields = form_fields(review.content.decode(), "approve-form")
                if fields is None:
                    continue
                fields.setdefault("note", "lgtm")
                with worker.committing():
                    answer = client.post(link, fields)
                assert answer.status_code in (200, 302), (link, answer.status_code)
                posted += 1
                progressed = True
        worker.drain()
        if not progressed:
            return posted
    raise AssertionError(f"The inbox still offered approvals after {rounds} rounds.")
