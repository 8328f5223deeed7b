"""Building an RFC 5322 message from an inbound-mail provider's JSON fields.

The webhook's mail then goes through the same parser and service as mail from a file or the
IMAP mailbox, and its raw source is kept like theirs.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from email import policy, utils
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from typing import Any

from support.mail.errors import InvalidEmail

TEXT_FIELDS = ("from", "to", "subject", "text", "html", "message_id", "in_reply_to", "references")
REQUIRED = ("from", "to")
_headers = HeaderRegistry()


def email_from_fields(fields: dict[str, Any]) -> bytes:
    """Build the raw message for {from, to, subject, text, html, message_id, in_reply_to}."""
    if not isinstance(fields, dict):
        raise InvalidEmail("The body must be a JSON object.")
    for name in REQUIRED:
        if not fields.get(name):
            raise InvalidEmail(f"The field {name!r} is required.")
    for name in TEXT_FIELDS:
        if fields.get(name) is not None and not isinstance(fields[name], str):
            raise InvalidEmail(f"The field {name!r} must be a string.")
    if not (fields.get("text") or fields.get("html")):
        raise InvalidEmail("One of the fields 'text' or 'html' is required.")
    for name in ("from", "to", "subject", "message_id", "in_reply_to", "references"):
        if any(c in (fields.get(name) or "") for c in "\r\n\0"):
            raise InvalidEmail(f"The field {name!r} may not contain line breaks.")
    sender = _headers("From", fields["from"])
    if not any(a.username and a.domain for a in sender.addresses) or sender.defects:
        raise InvalidEmail(f"The field 'from' is not an email address: {fields['from']!r}")

    message = EmailMessage(policy=policy.SMTP)
    message["From"] = fields["from"]
    message["To"] = fields["to"]
    message["Subject"] = fields.get("subject") or ""
    message["Date"] = utils.format_datetime(datetime.now(UTC))
    message["Message-ID"] = _angle(fields.get("message_id") or "") or _digest_id(fields)
    if in_reply_to := _angle(fields.get("in_reply_to") or ""):
        message["In-Reply-To"] = in_reply_to
        message["References"] = fields.get("references") or in_reply_to
    elif fields.get("references"):
        message["References"] = fields["references"]
    text, html = fields.get("text") or "", fields.get("html") or ""
    if text:
        message.set_content(text)
        if html:
            message.add_alternative(html, subtype="html")
    else:
        message.set_content(html, subtype="html")
    return message.as_bytes()


def _angle(value: str) -> str:
    value = value.strip()
    if not value:
        return ""
    return value if value.startswith("<") and value.endswith(">") else f"<{value.strip('<>')}>"


def _digest_id(fields: dict[str, Any]) -> str:
    # The same JSON posted twice (a provider's retry) gets the same id and is ignored once seen.
    canonical = json.dumps({k: fields.get(k) for k in TEXT_FIELDS}, sort_keys=True)
    return f"<{hashlib.sha256(canonical.encode()).hexdigest()}@webhook.countersign.invalid>"
