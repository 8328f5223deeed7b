"""Secrets masked out of everything the engine sends to Claude.

Detection is detect-secrets' (Yelp's) plugins, run on each line: the token shapes it knows
(AWS, GitHub, GitLab, Slack, Stripe, OpenAI, npm, PyPI, SendGrid, Twilio, JWTs, private keys,
basic-auth URLs, ...) and its keyword rules for `password = "…"`-style assignments. Around them
the engine adds what a log, a traceback or an email holds that a code scanner does not expect:
values assigned to secret-sounding names in any syntax (`SECRET_ACCESS_KEY = "…"`,
`{'password': '…'}`, `?token=…&`, `Authorization: Bearer …`, `.netrc`'s `password …`), whole
PEM blocks, Anthropic keys, card numbers (Luhn-valid, with or without separators) and the values
of the configured secret settings (`AGENTS_REDACT_SETTINGS`) and environment variables
(`SRE_REDACT_ENV`).

`mask` is applied by the engine where text enters a conversation (the first message, the system
prompt, every tool result), so no domain can forget it; the originals stay where staff read them
(the ticket, the tool call's recorded result).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString
from detect_secrets.plugins.ip_public import IPPublicDetector
from detect_secrets.plugins.keyword import CONFIG_DENYLIST_REGEX_TO_GROUP, KeywordDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector

MASK = "[REDACTED]"
MIN_SECRET = 4

# Names whose value is a secret whatever it looks like, and names (…KEY) whose value is one when
# it looks random. `_?` lets SECRET_ACCESS_KEY, api-key, x_auth_token, DB_PASSWD all match.
_ALWAYS = r"pass(?:word|wd|phrase|code)?|pwd|secret|token|credentials?|cookie|sessionid|pin"
_NAME = rf"[\w.\-]*(?:{_ALWAYS}|key|signature|sig)\b"
_ASSIGNED = re.compile(
    rf"""(?ix)
    (?P<name>["']?\b{_NAME}["']?)              # a name, bare or quoted (dict reprs, JSON)
    (?P<op>\s*(?:=>|:=|::|==|=|:)\s*[bru]{{0,2}})  # =, :, :=, =>, a Python bytes/raw prefix
    (?P<value>"[^"\n]*"|'[^'\n]*'|[^\s,;&'"\])}}<>]+)
    """
)
_KEYWORD_HINT = re.compile(r"(?i)key|pass|pwd|secret|contrase")
_ALWAYS_NAME = re.compile(rf"(?i)(?:{_ALWAYS})")
# .netrc (`machine h login u password p`) and speech (`my password is p`).
_NETRC = re.compile(
    r"(?im)((?:^\s*|\blogin\s+\S+\s+)(?:password|passwd|account)|\b(?:password|passcode|pin)\s+(?:is|was))"
    r"(\s+)(\S+)"
)
_AUTH_HEADER = re.compile(r"(?i)\b(bearer|basic|token|digest)(\s+)([A-Za-z0-9._~+/\-]{8,}=*)")
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^:/\s@]+:)([^@/\s]+)(@)")
_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END [A-Z0-9 ]*-----|\Z)", re.S
)
_VENDOR = re.compile(
    r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|\bwhsec_[A-Za-z0-9]{10,}"  # Stripe
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}|\bgithub_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|\bxox[abposr]-[A-Za-z0-9\-]{10,}|\bxapp-[A-Za-z0-9\-]{10,}"  # Slack
    r"|\bsk-ant-[A-Za-z0-9_\-]{10,}"  # Anthropic
    r"|\bb3BlbnNzaC1rZXktdjE[A-Za-z0-9+/=]*"  # an OpenSSH private key's body ("openssh-key-v1")
)
_CARD = re.compile(r"(?<![\d.])[2-6]\d{3}(?:[ \-]?\d){9,15}(?![\d.])")
# A bare token: long, from the base64 alphabet, mixed case and digits, and random (entropy above
# detect-secrets' base64 default). Hex strings (commit ids, request ids) are never bare secrets.
_BARE = re.compile(r"(?<![\w+/=.-])[A-Za-z0-9+/_\-]{30,}={0,2}(?![\w+/=.-])")
_NOT_A_VALUE = re.compile(
    r"""(?ix)^(?:none|null|nil|true|false|undefined|\*+|x+|\.\.\.|<[^>]*>|\{\{.*\}\}|\$\{.*\}
    |\[redacted\]|os\.environ.*|env(?:iron)?[.\[(].*|settings\.\w+|getenv.*|self\.\w+|\w+\(.*)$"""
)


@functools.cache
def _detectors() -> tuple[list[RegexBasedDetector], KeywordDetector, Base64HighEntropyString]:
    skip = (IPPublicDetector, PrivateKeyDetector)  # an address is not a secret; PEM blocks whole
    regex = [
        cls()
        for cls in get_mapping_from_secret_type_to_class().values()
        if issubclass(cls, RegexBasedDetector) and not issubclass(cls, skip)
    ]
    return regex, KeywordDetector(), Base64HighEntropyString(limit=3.0)


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return MASK if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'" else value


def _assigned(match: re.Match) -> str:
    name, value = match.group("name"), _unquote(match.group("value"))
    if len(value) < MIN_SECRET or _NOT_A_VALUE.match(value.strip()) or "REDACTED" in value:
        return match.group(0)
    if not _ALWAYS_NAME.search(name) and not _random(value):
        return match.group(0)  # cache_key = "user:1", primary_key=True
    quote = match.group("value")[0] if match.group("value")[0] in "\"'" else ""
    return f"{name}{match.group('op')}{quote}{MASK}{quote}"


def _bare(match: re.Match) -> str:
    value = match.group(0)
    mixed = re.search(r"[a-z]", value) and re.search(r"[A-Z]", value) and re.search(r"\d", value)
    if mixed and _detectors()[2].calculate_shannon_entropy(value) > 4.5:
        return MASK
    return value


def _random(value: str) -> bool:
    """A value that looks generated: long enough, mixed, high entropy."""
    if len(value) < 12 or value.isalpha() or " " in value:
        return False
    return _detectors()[2].calculate_shannon_entropy(value) > 3.0


def _plugin_secret(match: re.Match) -> str:
    """The secret in a plugin's match: its longest group, unless that is only a prefix (ghp)."""
    groups = [g for g in match.groups() if g]
    best = max(groups, key=len) if groups else ""
    return best if len(best) >= 8 else match.group(0)


def _found(text: str) -> set[str]:
    """Secret values detect-secrets' plugins find in `text`."""
    regex, keyword, _ = _detectors()
    found = {
        _plugin_secret(match)
        for plugin in regex
        for pattern in plugin.denylist
        for match in pattern.finditer(text)
    }
    for line in text.split("\n"):
        if _KEYWORD_HINT.search(line):  # the keyword rules are slow; most lines have no keyword
            found.update(keyword.analyze_string(line))
            found.update(
                keyword.analyze_string(line, denylist_regex_to_group=CONFIG_DENYLIST_REGEX_TO_GROUP)
            )
    values = {s.strip() for s in found if isinstance(s, str)}
    return {
        v
        for v in values
        if len(v) >= MIN_SECRET and "REDACTED" not in v and not _NOT_A_VALUE.match(v)
    }


def _configured() -> list[str]:
    from django.conf import settings

    values = [str(getattr(settings, name, "") or "") for name in settings.AGENTS_REDACT_SETTINGS]
    values += [os.environ.get(name, "") for name in getattr(settings, "SRE_REDACT_ENV", ())]
    return [v for v in values if len(v) >= 8]


def mask(text: str, *, values: Iterable[str] = ()) -> str:
    """`text` with every secret it holds replaced by [REDACTED]; the rest left as it was."""
    if not text:
        return text or ""
    known = tuple(sorted({v for v in [*values, *_configured()] if v and len(v) >= MIN_SECRET}))
    key = (hashlib.blake2b(text.encode("utf-8", "surrogatepass")).digest(), known)
    with _lock:
        if (masked := _recent.get(key)) is not None:
            _recent.move_to_end(key)
            return masked
    masked = _mask(text, known)
    # A tool's masked result is masked again where the engine sends it (masking is idempotent):
    # remember the masked text too, so that second pass costs a hash.
    again = (hashlib.blake2b(masked.encode("utf-8", "surrogatepass")).digest(), known)
    with _lock:
        _recent[key] = _recent[again] = masked
        while len(_recent) > RECENT:
            _recent.popitem(last=False)
    return masked


RECENT = 64
_recent: OrderedDict[tuple[bytes, tuple[str, ...]], str] = OrderedDict()
_lock = threading.Lock()


def _mask(text: str, known: tuple[str, ...]) -> str:
    for secret in sorted(known, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _PEM.sub(MASK, text)
    text = _VENDOR.sub(MASK, text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _ASSIGNED.sub(_assigned, text)
    text = _NETRC.sub(_netrc, text)
    text = _CARD.sub(_card, text)
    text = _BARE.sub(_bare, text)
    for secret in sorted(_found(text), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def holds_secret(text: str) -> bool:
    """True when `mask` would change `text`."""
    return mask(text) != text


def _netrc(match: re.Match) -> str:
    value = match.group(3)
    if "REDACTED" in value or value.startswith(("=", ":")) or _NOT_A_VALUE.match(value):
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{MASK}"


def content_mask(content: Any) -> Any:
    """A message's content (a string or a list of blocks) with every text in it masked."""
    if isinstance(content, str):
        return mask(content)
    if isinstance(content, list):
        return [content_mask(block) for block in content]
    if isinstance(content, dict):
        masked = dict(content)
        if isinstance(masked.get("text"), str):
            masked["text"] = mask(masked["text"])
        if "content" in masked:
            masked["content"] = content_mask(masked["content"])
        return masked
    return content
