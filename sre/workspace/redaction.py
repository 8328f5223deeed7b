"""Redaction of secrets from anything sent to Claude: logs, tracebacks, file contents."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

MASK = "[REDACTED]"

PATTERNS = [
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{10,}"),
    re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{10,}"),
    re.compile(r"\bwhsec_[A-Za-z0-9]{10,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),  # JWTs
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._\-~+/]{12,}=*"),
    re.compile(
        r"(?i)((?:password|passwd|secret|token|api[_-]?key)\s*[=:]\s*)['\"]?[^\s'\"&,;]{4,}"
    ),
    re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^:/\s@]+:)[^@/\s]+(@)"),  # passwords in URLs
]


def redact(text: str, *, env_names: Iterable[str] = (), values: Iterable[str] = ()) -> str:
    """Mask tokens by pattern, and the values of the named environment variables."""
    secrets = [v for v in values if v and len(v) >= 4]
    secrets += [os.environ[n] for n in env_names if len(os.environ.get(n, "")) >= 4]
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, MASK)
    for pattern in PATTERNS:
        text = pattern.sub(_masker, text)
    return text


def _masker(match: re.Match) -> str:
    groups = [g for g in match.groups() if g is not None] if match.groups() else []
    if len(groups) == 2:  # a URL: keep scheme://user: and @
        return f"{groups[0]}{MASK}{groups[1]}"
    if len(groups) == 1:  # keep the "password=" or "Bearer " prefix
        return f"{groups[0]}{MASK}"
    return MASK
