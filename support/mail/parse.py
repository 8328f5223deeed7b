"""Reading one RFC 5322 message into the facts a ticket needs.

Uses the stdlib parser with `policy.default`, which decodes RFC 2047 headers and transfer
encodings. Body text is decoded here rather than by `get_content()` so that a mislabelled or
unknown charset still gives readable text (and a note) instead of an exception.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from support.mail.auth import auth_verdict
from support.mail.autoreply import auto_reply_reason
from support.mail.errors import InvalidEmail
from support.mail.html import html_to_text
from support.mail.trust import trust_warnings

MAX_ID_LENGTH = 998
MAX_ADDRESS_LENGTH = 320
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_SURROGATES = re.compile("[\udc80-\udcff]+")
# Labels mail clients treat as another encoding (the WHATWG Encoding Standard): text marked
# ISO-8859-1 or ASCII is in practice Windows-1252, whose curly quotes and euro sign would
# otherwise decode as invisible C1 control characters.
CHARSET_ALIASES = {
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
}


@dataclass
class ParsedEmail:
    raw: bytes
    message_id: str
    message_id_synthesized: bool
    in_reply_to: str
    references: list[str]
    from_email: str
    from_name: str
    to: str
    cc: str
    subject: str
    sent_at: datetime | None
    text: str
    html_converted: bool = False
    hidden_content: list[str] = field(default_factory=list)
    hidden_content_summary: str = ""
    attachments: list[dict[str, Any]] = field(default_factory=list)
    auto_reply_reason: str = ""
    spf_failed: bool = False
    dmarc_failed: bool = False
    auth_summary: str = ""
    auth_results: dict[str, str] = field(default_factory=dict)  # method -> result
    reply_to: list[str] = field(default_factory=list)  # Reply-To addresses; never replied to
    reply_to_header: str = ""
    # When the text part is the body: the visible text and hidden text of its HTML alternative.
    alternative_html_text: str | None = None
    alternative_hidden: list[str] = field(default_factory=list)
    trust_warnings: list[dict[str, str]] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)

    @property
    def is_auto_reply(self) -> bool:
        return bool(self.auto_reply_reason)

    @property
    def hidden_content_dropped(self) -> bool:
        return bool(self.hidden_content)

    @property
    def thread_ids(self) -> list[str]:
        """Message-IDs this one answers, the most direct first."""
        ids = ([self.in_reply_to] if self.in_reply_to else []) + self.references[::-1]
        return list(dict.fromkeys(ids))


def raw_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def parse_email(raw: bytes) -> ParsedEmail:
    """Read a raw message. Raises InvalidEmail when it is empty or has no usable From."""
    if not isinstance(raw, bytes | bytearray):
        raise TypeError("parse_email takes the raw message as bytes.")
    raw = bytes(raw)
    if not raw.strip():
        raise InvalidEmail("The message is empty.")
    message: EmailMessage = BytesParser(policy=policy.default).parsebytes(raw)
    defects: list[str] = []
    if not message.keys():
        raise InvalidEmail("No mail headers found: this is not an RFC 5322 message.")
    from_email, from_name = _sender(message, defects)
    subject = _header_text(message, "Subject", defects)
    message_id = _first_id(_header_text(message, "Message-ID", defects))
    synthesized = False
    if not message_id or len(message_id) > MAX_ID_LENGTH:
        defects.append(
            "No usable Message-ID header; one was made from the message's digest."
            if not message_id
            else "The Message-ID was too long to keep; one was made from the message's digest."
        )
        message_id = f"<{raw_digest(raw)}@digest.countersign.invalid>"
        synthesized = True
    in_reply_to = _first_id(_header_text(message, "In-Reply-To", defects))
    reply_to_header = _header_text(message, "Reply-To", defects)
    references = _MESSAGE_ID.findall(_header_text(message, "References", defects))
    parsed = ParsedEmail(
        raw=raw,
        message_id=message_id,
        message_id_synthesized=synthesized,
        in_reply_to=in_reply_to if len(in_reply_to) <= MAX_ID_LENGTH else "",
        references=[r for r in references if len(r) <= MAX_ID_LENGTH],
        from_email=from_email,
        from_name=from_name,
        to=_header_text(message, "To", defects),
        cc=_header_text(message, "Cc", defects),
        subject=subject,
        sent_at=_date(message, defects),
        text="",
        reply_to_header=reply_to_header[:2000],
        reply_to=_addresses(message, "Reply-To") if reply_to_header else [],
        defects=defects,
    )
    _read_body(message, parsed)
    parsed.auto_reply_reason = auto_reply_reason(message, subject=subject, from_email=from_email)
    verdict = auth_verdict(message)
    parsed.spf_failed, parsed.dmarc_failed = verdict.spf_failed, verdict.dmarc_failed
    parsed.auth_summary = verdict.summary[:500]
    parsed.auth_results = dict(verdict.results)
    parsed.trust_warnings = trust_warnings(parsed, authserv_id=verdict.authserv_id)
    for defect in message.defects:
        defects.append(f"{type(defect).__name__}: {defect}".strip(": "))
    _clean(parsed)
    return parsed


def _clean(parsed: ParsedEmail) -> None:
    """Make every string storable: no NUL characters, no undecoded bytes (PostgreSQL takes neither)."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return unescape_8bit(value).replace("\x00", "")
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    for name, value in vars(parsed).items():
        if name != "raw":
            setattr(parsed, name, clean(value))


def decode_text(payload: bytes, charset: str | None, defects: list[str]) -> str:
    """Decode body bytes by their declared charset, falling back sensibly when it is wrong."""
    label = (charset or "").strip().strip('"').lower()
    if label in ("", "us-ascii", "ascii", "unknown-8bit", "x-unknown"):
        # Undeclared 8-bit text is most often UTF-8, else Windows-1252.
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            return _decode_cp1252(payload)
    encoding = CHARSET_ALIASES.get(label, label)
    try:
        encoding = codecs.lookup(encoding).name
    except (LookupError, ValueError):  # ValueError: a NUL in the label
        defects.append(f"Unknown charset {charset!r}; read as UTF-8 or Windows-1252.")
        return decode_text(payload, None, defects)
    if encoding == "cp1252":
        return _decode_cp1252(payload)
    try:
        return payload.decode(encoding)
    except UnicodeDecodeError:
        pass
    except (LookupError, UnicodeError):
        # Not a text encoding (base64, zlib, rot13) or one for host names only (idna).
        defects.append(
            f"The charset {charset!r} is not one for text; read as UTF-8 or Windows-1252."
        )
        return decode_text(payload, None, defects)
    defects.append(f"The text is not valid {charset}; undecodable bytes were replaced.")
    try:
        return payload.decode(encoding, errors="replace")
    except UnicodeError:  # a codec that cannot replace what it cannot decode (punycode)
        return decode_text(payload, None, defects)


def _decode_cp1252(payload: bytes) -> str:
    # The five bytes Windows-1252 leaves undefined decode as their Latin-1 code points.
    return "".join(
        chunk.decode("cp1252", errors="strict") if i % 2 == 0 else chunk.decode("latin-1")
        for i, chunk in enumerate(re.split(rb"([\x81\x8d\x8f\x90\x9d]+)", payload))
    )


def _header(message: EmailMessage, name: str) -> Any:
    """The first `name` header, parsed; raw 8-bit bytes in it are decoded first.

    The stdlib turns 8-bit bytes in an unstructured header into U+FFFD unless they are UTF-8,
    so a Windows-1252 subject would lose its accents; the raw value still has them.
    """
    for key, value in message.raw_items():
        if key.lower() == name.lower():
            if _SURROGATES.search(value):
                return policy.default.header_factory(
                    key, unescape_8bit("".join(value.splitlines()))
                )
            return message.get(name)
    return None


def _header_text(message: EmailMessage, name: str, defects: list[str]) -> str:
    try:
        value = _header(message, name)
    except Exception as error:  # the header parser has edge cases that raise
        defects.append(f"The {name} header could not be read: {error}")
        return ""
    return "" if value is None else re.sub(r"[\r\n]+\s*", " ", str(value)).strip()


def unescape_8bit(text: str) -> str:
    """Decode raw 8-bit header bytes (which the parser keeps as surrogates) as UTF-8 or cp1252."""

    def decode(match: re.Match[str]) -> str:
        data = match.group(0).encode("utf-8", "surrogateescape")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return _decode_cp1252(data)

    return _SURROGATES.sub(decode, text)


def _sender(message: EmailMessage, defects: list[str]) -> tuple[str, str]:
    if "From" not in message:
        raise InvalidEmail("The message has no From header.")
    try:
        addresses = _header(message, "From").addresses
    except Exception as error:
        raise InvalidEmail(f"The From header could not be read: {error}") from error
    usable = [a for a in addresses if a.username and a.domain]
    if not usable:
        raise InvalidEmail(
            f"The From header has no usable address: {_header_text(message, 'From', defects)!r}"
        )
    if len(usable[0].addr_spec) > MAX_ADDRESS_LENGTH:
        raise InvalidEmail(f"The From address is longer than {MAX_ADDRESS_LENGTH} characters.")
    if len(addresses) > 1:
        defects.append(f"The From header lists {len(addresses)} addresses; the first is used.")
    return usable[0].addr_spec, usable[0].display_name[:200]


def _addresses(message: EmailMessage, name: str) -> list[str]:
    """The usable addresses of an address header; [] when it cannot be read."""
    try:
        addresses = _header(message, name).addresses
    except Exception:
        return []
    return [a.addr_spec[:MAX_ADDRESS_LENGTH] for a in addresses if a.username and a.domain]


def _first_id(value: str) -> str:
    if m := _MESSAGE_ID.search(value):
        return m.group(0)
    token = value.strip().split()[0] if value.strip() else ""
    return f"<{token}>" if token else ""


def _date(message: EmailMessage, defects: list[str]) -> datetime | None:
    header = value = None
    try:
        header = message.get("Date")
        value = getattr(header, "datetime", None) if header is not None else None
    except Exception:
        value = None
    if header is not None and value is None:
        defects.append(f"The Date header could not be read: {str(header)[:100]!r}")
        return None
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # "-0000": the zone is unknown; UTC is the convention
    return value


def _read_body(message: EmailMessage, parsed: ParsedEmail) -> None:
    body = None
    try:
        plain = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
    except Exception as error:
        parsed.defects.append(f"The MIME structure could not be read: {error}")
        plain = html = None
    if plain is not None and (text := _part_text(plain, parsed.defects)).strip():
        body, parsed.text = plain, text.rstrip()
        if html is not None:
            # Not the body, but what a mail program shows: kept to compare with the text part.
            try:
                converted = html_to_text(_part_text(html, parsed.defects))
            except Exception as error:
                parsed.defects.append(f"The HTML alternative could not be read: {error}")
            else:
                parsed.alternative_html_text = converted.text
                parsed.alternative_hidden = converted.hidden
    elif html is not None:
        body = html
        converted = html_to_text(_part_text(html, parsed.defects))
        parsed.text = converted.text
        parsed.html_converted = True
        parsed.hidden_content = converted.hidden
        parsed.hidden_content_summary = converted.hidden_summary
    elif plain is not None:
        body = plain
    elif message.get_content_maintype() != "multipart":
        parsed.defects.append(f"The body is {message.get_content_type()}, not text.")
    parsed.attachments = _attachments(message, skip={id(body), id(plain), id(html)})


def _part_text(part: EmailMessage, defects: list[str]) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        return ""
    return decode_text(payload, part.get_content_charset(), defects).replace("\r\n", "\n")


def _filename(part: EmailMessage) -> str:
    try:
        name = part.get_filename() or ""
    except Exception:
        return ""
    if "\ufffd" not in name:
        return name
    # Raw 8-bit bytes in the parameter became U+FFFD; read them from the raw header instead.
    for header, param in (("Content-Disposition", "filename"), ("Content-Type", "name")):
        fixed = _header(part, header)
        value = getattr(fixed, "params", {}).get(param) if fixed is not None else None
        if value:
            return str(value)
    return name


def _attachments(message: EmailMessage, *, skip: set[int]) -> list[dict[str, Any]]:
    """List every part that is not the body or its alternative; never keep the content."""
    found: list[dict[str, Any]] = []

    def visit(part: EmailMessage) -> None:
        content_type = part.get_content_type()
        if content_type == "message/rfc822" or (
            part.get_content_maintype() != "multipart" and id(part) not in skip
        ):
            filename = _filename(part)
            if content_type == "message/rfc822" and not filename:
                inner = part.get_payload()
                inner = inner[0] if isinstance(inner, list) and inner else None
                filename = f"{(inner.get('Subject', '') if inner else '') or 'message'}.eml"
            try:
                disposition = part.get_content_disposition() or ""
            except Exception:  # a parameter in a charset that cannot decode it (RFC 2231)
                raw = next(
                    (v for k, v in part.raw_items() if k.lower() == "content-disposition"), ""
                )
                disposition = raw.split(";", 1)[0].strip().lower()
            if (
                content_type in ("text/plain", "text/html")
                and not filename
                and disposition != ("attachment")
            ):
                return  # an alternative rendering of the body, not an attachment
            try:
                if content_type == "message/rfc822":
                    payload = part.as_bytes()
                else:
                    payload = part.get_payload(decode=True) or b""
            except Exception:  # a part too broken to measure is still listed
                payload = b""
            found.append(
                {
                    "filename": str(filename)[:255],
                    "content_type": content_type,
                    "size": len(payload),
                    "disposition": disposition,
                }
            )
            return
        if part.is_multipart():
            for child in part.get_payload():
                visit(child)

    visit(message)
    return found
