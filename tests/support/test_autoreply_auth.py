"""Auto-replies and sender authentication, read from the headers real servers add."""

from __future__ import annotations

import pytest

from support.mail import parse_email
from tests.support import mails


@pytest.mark.parametrize(
    ("headers", "subject"),
    [
        ("Auto-Submitted: auto-replied\n", "Re: your mail"),
        ("Auto-Submitted: auto-generated; owner-email=x@y\n", "Hello"),
        ("X-Autoreply: yes\n", "Hello"),
        ("X-Autorespond: Vacation\n", "Hello"),
        ("Precedence: bulk\n", "Hello"),
        ("Precedence: auto_reply\n", "Hello"),
        ("Precedence: junk\n", "Hello"),
        ("Precedence: list\n", "Hello"),
        ("X-Auto-Response-Suppress: All\n", "Hello"),
        ("", "Out of Office: back Monday"),
        ("", "Automatic reply: My widget broke"),
        ("", "Autosvar: Ferie"),
        ("", "Abwesenheitsnotiz: Urlaub"),
        ("", "Undeliverable: My widget broke"),
    ],
)
def test_auto_replies_are_recognised(headers, subject):
    parsed = parse_email(mails.plain(subject=subject, headers=headers))
    assert parsed.is_auto_reply, parsed.auto_reply_reason


@pytest.mark.parametrize(
    ("headers", "subject"),
    [
        ("", "My widget broke"),
        ("Auto-Submitted: no\n", "Hello"),
        ("Precedence: first-class\n", "Hello"),
        ("", "Re: Out of Office: back Monday"),  # a person answering an auto-reply
        ("", "Question about out of office hours"),
    ],
)
def test_mail_a_person_wrote_is_not_an_auto_reply(headers, subject):
    parsed = parse_email(mails.plain(subject=subject, headers=headers))
    assert not parsed.is_auto_reply, parsed.auto_reply_reason


def test_bounces_are_auto_replies():
    parsed = parse_email(mails.plain(sender="Mail Delivery System <MAILER-DAEMON@mx.example>"))
    assert parsed.is_auto_reply


def test_spf_softfail_and_dmarc_fail_are_flagged_from_the_receiving_server():
    parsed = parse_email(mails.AUTH_FAILED)
    assert parsed.spf_failed and parsed.dmarc_failed
    # The forged "pass" further down, from another authserv-id, changes nothing.
    assert parsed.auth_summary == "spf=softfail dkim=none dmarc=fail (by mx.countersign.example)"


def test_a_forged_header_below_ours_cannot_hide_or_add_a_verdict():
    raw = mails.plain(
        headers="Authentication-Results: mx.countersign.example; spf=pass; dmarc=pass\n"
        "Authentication-Results: evil.example; spf=fail; dmarc=fail\n"
    )
    parsed = parse_email(raw)
    assert not parsed.spf_failed and not parsed.dmarc_failed


def test_one_server_may_write_one_header_per_method():
    raw = mails.plain(
        headers="Authentication-Results: mx.example; dmarc=fail header.from=test.com\n"
        "Authentication-Results: mx.example; spf=fail smtp.mailfrom=test.com\n"
    )
    parsed = parse_email(raw)
    assert parsed.spf_failed and parsed.dmarc_failed


@pytest.mark.parametrize(
    ("header", "spf", "dmarc"),
    [
        ("Authentication-Results: mx.example; spf=fail smtp.mailfrom=x", True, False),
        ("Authentication-Results: mx.example 1; spf=pass; dmarc=fail (p=none)", False, True),
        ("Authentication-Results: mx.example; spf=neutral; dmarc=pass", False, False),
        ("Authentication-Results: mx.example; none", False, False),
        (
            "Received-SPF: softfail (mx.example: transitioning domain) client-ip=1.2.3.4",
            True,
            False,
        ),
        ("Received-SPF: pass (mx.example: domain designates 1.2.3.4)", False, False),
    ],
)
def test_authentication_results_variants(header, spf, dmarc):
    parsed = parse_email(mails.plain(headers=header + "\n"))
    assert (parsed.spf_failed, parsed.dmarc_failed) == (spf, dmarc)
