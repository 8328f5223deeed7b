"""Reading inbound mail: parsing, HTML to text, auto-reply and sender-authentication checks."""

from support.mail.errors import InvalidEmail, MailboxError
from support.mail.parse import ParsedEmail, decode_text, parse_email, raw_digest

__all__ = [
    "InvalidEmail",
    "MailboxError",
    "ParsedEmail",
    "decode_text",
    "parse_email",
    "raw_digest",
]
