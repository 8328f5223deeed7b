"""Mangled mail through the parser and the ingest: never a crash, never a lost message.

Hypothesis builds messages the way broken clients and relays send them (random bytes, truncated
multiparts, wrong or missing boundaries, wrong and unknown charsets, broken base64 and
quoted-printable, huge and malformed headers, nested multiparts, no From) and checks that:
- `parse_email` returns a message or refuses it with InvalidEmail, nothing else, and every
  string it returns can be stored (no NUL, no undecoded bytes);
- `ticket_ingest_email` stores each mail as a message in a ticket or as a RejectedEmail with
  its reason and its exact bytes, and never needs its "the parser crashed" safety net.
"""

from __future__ import annotations

import encodings.aliases

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agents import registry
from support.mail import InvalidEmail, ParsedEmail, decode_text, parse_email, raw_digest
from support.models import Message, RejectedEmail
from support.services import Outcome, ticket_ingest_email
from tests.support import mails

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CRASHED = "The message could not be parsed ("
# Every codec Python knows by name: text ones, and ones that are not (base64, zlib, idna).
CODECS = sorted(set(encodings.aliases.aliases.values()) | {"idna", "punycode", "undefined"})

header_value = st.one_of(
    st.text(max_size=60),
    st.sampled_from(CODECS).map(lambda c: f"=?{c}?q?caf=E9?= <bob@test.com>"),
    st.sampled_from(
        [
            "=?utf-8?q?B=C3=B6b?= <bob@test.com>",
            "=?x-unknown?b?!!!?= <a@b.c>",
            "=?utf-8?b?not base64?=",
            "=?iso-8859-1?q?caf=E9=?=",
            '"unterminated <bob@test.com>',
            "<@> , ,, bob@",
            "a@b.c, c@d.e",
            "undisclosed-recipients:;",
            "Bob <" + "x" * 400 + "@test.com>",
            "=?utf-8?q?" + "=E2=82" * 50 + "?=",
        ]
    ),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)
header_name = st.sampled_from(
    ["From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
     "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "MIME-Version",
     "Auto-Submitted", "Authentication-Results", "X-Junk"]
)  # fmt: skip
charset = st.one_of(
    st.sampled_from(
        ["utf-8", "us-ascii", "iso-8859-1", "windows-1252", "utf-16", "x-unknown", "gb2312",
         "shift_jis", "utf-7", "bogus-charset", '"utf-8', "", "utf-8; format=flowed"]
    ),
    st.sampled_from(CODECS),
)  # fmt: skip
encoding = st.sampled_from(
    ["7bit", "8bit", "base64", "quoted-printable", "binary", "x-uuencode", ""]
)
body = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(
        [b"SGVsbG8gd29ybGQ=", b"SGVsbG8gd29y!!bGQ", b"=E2=82=AC=\r\n=ZZ=", b"caf\xe9 \xff\xfe"]
    ),
)


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@st.composite
def leaf(draw) -> bytes:
    ctype = draw(st.sampled_from(["text/plain", "text/html", "application/pdf", "message/rfc822"]))
    head = f"Content-Type: {ctype}; charset={draw(charset)}\n"
    if draw(st.booleans()):
        head += f"Content-Transfer-Encoding: {draw(encoding)}\n"
    if draw(st.booleans()):
        head += f'Content-Disposition: attachment; filename="{draw(header_value)}"\n'
    elif draw(st.booleans()):  # RFC 2231, in any charset
        head += f"Content-Disposition: attachment; filename*={draw(charset)}''caf%E9.pdf\n"
    return head.encode("utf-8", "surrogateescape") + b"\n" + draw(body)


def multipart(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw) -> bytes:
        boundary = draw(st.sampled_from(["b1", "=_b2", "", "b1 with space", "x" * 80]))
        declared = draw(st.sampled_from([boundary, boundary, "other", None]))
        subtype = draw(st.sampled_from(["mixed", "alternative", "related", "signed"]))
        head = f"Content-Type: multipart/{subtype}"
        head += f'; boundary="{declared}"\n' if declared is not None else "\n"
        parts = draw(st.lists(children, max_size=4))
        text = head.encode() + b"\npreamble\n"
        for part in parts:
            text += f"--{boundary}\n".encode() + part + b"\n"
        if draw(st.booleans()):
            text += f"--{boundary}--\n".encode()  # or no closing delimiter at all
        return text

    return build()


mime_body = st.recursive(leaf(), multipart, max_leaves=6)


@st.composite
def message(draw) -> bytes:
    headers = b""
    if draw(st.integers(0, 9)):  # a From header, most of the time
        headers += f"From: {draw(header_value)}\n".encode("utf-8", "surrogateescape")
    for name, value in draw(st.lists(st.tuples(header_name, header_value), max_size=6)):
        headers += f"{name}: {value}\n".encode("utf-8", "surrogateescape")
    if draw(st.booleans()):
        headers += b"Subject: " + b"long " * draw(st.integers(0, 4000)) + b"\n"  # a huge header
    if draw(st.booleans()):
        headers += b"X-Folded: a\n\tb\n c\n"
    raw = crlf(headers + b"MIME-Version: 1.0\n" + draw(mime_body))
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]  # cut off in transit
    if draw(st.booleans()) and raw:
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]  # one byte flipped
    return raw


any_mail = st.one_of(
    message(),
    st.binary(max_size=300),
    st.sampled_from([mails.plain(), mails.MULTIPART_ALTERNATIVE]).flatmap(
        lambda raw: st.integers(0, len(raw)).map(lambda n: raw[:n])
    ),
)


def assert_storable(value) -> None:
    if isinstance(value, str):
        assert "\x00" not in value
        value.encode("utf-8")  # no lone surrogates left from undecoded bytes
    elif isinstance(value, list | tuple):
        for item in value:
            assert_storable(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            assert_storable(key)
            assert_storable(item)


@FUZZ
@given(st.binary(max_size=50), st.one_of(st.sampled_from(CODECS), st.text(max_size=12)))
@example(b"caf\xe9", "base64")  # not a text encoding: LookupError
@example(b"caf\xe9", "idna")  # cannot replace what it cannot decode: UnicodeError
@example(b"caf\xe9", "punycode")
@example(b"caf\xe9", "utf\x008")  # a NUL in the label: ValueError from the codec lookup
def test_body_text_decodes_in_any_declared_charset(payload, label):
    defects: list[str] = []
    text = decode_text(payload, label, defects)
    assert isinstance(text, str)


@FUZZ
@given(any_mail)
@example(b"")
@example(b"From: bob@test.com\r\n\r\n")
@example(crlf(b"From: a@b.c\nContent-Type: multipart/mixed\n\n--\n--"))
@example(  # a filename in a charset Python cannot decode it with: the disposition raised
    crlf(
        b"From: a@b.c\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
        b"Content-Disposition: attachment; filename*=idna''caf%E9.pdf\n\ndata\n--b--\n"
    )
)
@example(crlf(b"From: a@b.c\nContent-Type: text/plain; charset=base64\n\ncaf\xe9\n"))
def test_the_parser_reads_or_refuses_anything(raw):
    try:
        parsed = parse_email(raw)
    except InvalidEmail as error:
        assert str(error)
        return
    assert isinstance(parsed, ParsedEmail)
    assert parsed.raw == raw
    assert "@" in parsed.from_email
    assert parsed.message_id.startswith("<") and parsed.message_id.endswith(">")
    for name, value in vars(parsed).items():
        if name != "raw":
            assert_storable(value)


@pytest.fixture
def _no_agent(monkeypatch):
    monkeypatch.delitem(registry._toolsets, "support")


@FUZZ
@given(any_mail)
@example(b"\x00\x00")
@example(mails.plain(sender="<@>"))
@example(crlf(b"From: a@b.c\nContent-Type: text/plain; charset=base64\n\ncaf\xe9\n"))  # crashed
def test_ingest_keeps_every_mail_as_a_ticket_message_or_a_recorded_refusal(db, _no_agent, raw):
    result = ticket_ingest_email(raw=raw, source="file")
    if result.outcome == Outcome.REJECTED:
        assert not result.reason.startswith(CRASHED), result.reason
        rejected = RejectedEmail.objects.get(digest=raw_digest(raw))
        assert bytes(rejected.raw) == raw and rejected.reason
        return
    assert result.outcome in (Outcome.CREATED, Outcome.JOINED, Outcome.DUPLICATE)
    message = Message.objects.get(pk=result.message_pk)
    assert message.ticket_id == result.ticket_id
    if result.outcome != Outcome.DUPLICATE:
        assert bytes(message.raw) == raw


def test_a_part_whose_filename_cannot_be_decoded_is_still_listed_as_an_attachment():
    parsed = parse_email(
        crlf(
            b"From: a@b.c\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
            b"Content-Disposition: attachment; filename*=idna''caf%E9.pdf\n\ndata\n--b--\n"
        )
    )
    assert parsed.attachments == [
        {"filename": "", "content_type": "text/plain", "size": 4, "disposition": "attachment"}
    ]


def test_a_body_in_a_charset_that_is_not_for_text_is_read_and_noted():
    parsed = parse_email(mails.plain(body="café").replace(b'charset="utf-8"', b"charset=base64"))
    assert parsed.text == "café"
    assert any("is not one for text" in d for d in parsed.defects)
