"""Grouping keys for incidents, versioned: a change of rules is a new version, never an edit.

Version 1:
- a traceback: the exception types of the whole chain (with their depth in exception groups)
  plus its in-app frames as (module, function, whitespace-collapsed source line). Line numbers
  are left out, so an edit elsewhere in the file keeps the group; frames in site-packages, the
  standard library and `<frozen ...>` are left out; recursion is collapsed (a frame or a short
  cycle of frames repeated is kept once). With no in-app frame at all, the library frames'
  (module, function) are used instead.
- a looser key over the in-app (module, function) pairs only, to suggest merges.
- a message with no traceback: its text with URLs, emails, UUIDs, hex ids and numbers replaced.
- an infrastructure failure: its kind and, for upstream failures, the upstream address.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache

from sre.logs.tracebacks import Frame, ParsedTraceback

VERSION = 1

_LIBRARY_RE = re.compile(
    r"[\\/](?:site|dist)-packages[\\/]"
    r"|[\\/]lib(?:64)?[\\/](?:pypy|python)\d+(?:\.\d+)?t?[\\/]"
    r"|^[A-Za-z]:[\\/].*[\\/]Lib[\\/]"
)
_LIBRARY_ROOT_RE = re.compile(
    r"^.*?[\\/](?:(?:site|dist)-packages|lib(?:64)?[\\/](?:pypy|python)\d+(?:\.\d+)?t?|Lib)[\\/]"
)
# Deploy directories that change with every release (git SHAs, timestamps).
_RELEASE_RE = re.compile(r"^(?:[0-9a-f]{12,40}|\d{8,14})$")

_URL_RE = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_UUID_RE = re.compile(
    r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\b"
)
_HEX_RE = re.compile(
    r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"
)
_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")
_DIGITS_RE = re.compile(r"\d+")
_LONG_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32,}")


@dataclass(frozen=True)
class TracebackKeys:
    fingerprint: str
    loose: str
    culprit: str  # "shop/api.py in profile"
    culprit_module: str
    culprit_function: str


def _digest(prefix: str, payload: object) -> str:
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"{prefix}{VERSION}:{hashlib.sha256(data.encode()).hexdigest()[:40]}"


def is_frozen(filename: str) -> bool:
    return filename.startswith("<frozen ")


def is_library(filename: str) -> bool:
    return is_frozen(filename) or bool(_LIBRARY_RE.search(filename))


def frame_module(filename: str) -> str:
    """A dotted name for a file: the import path for libraries, the last three parts otherwise."""
    if filename.startswith("<"):
        return filename
    m = _LIBRARY_ROOT_RE.match(filename)
    if m:
        parts = re.split(r"[\\/]", filename[m.end() :])
    else:
        parts = [p for p in re.split(r"[\\/]", filename) if p and not _RELEASE_RE.match(p)]
        parts = parts[-3:]
    if parts and parts[-1].endswith(".py"):
        parts[-1] = parts[-1][:-3]
    if len(parts) > 1 and parts[-1] == "__init__":
        parts.pop()
    return ".".join(p for p in parts if p and not p.endswith(":"))


def short_path(filename: str) -> str:
    return "/".join(re.split(r"[\\/]", filename)[-2:])


def collapse(keys: list) -> list:
    """Drop recursion: a repeated frame, or a repeated cycle of up to four frames, kept once."""
    out: list = []
    for key in keys:
        if out and out[-1] == key:
            continue
        out.append(key)
        for size in (2, 3, 4):
            if len(out) >= 2 * size and out[-size:] == out[-2 * size : -size]:
                del out[-size:]
                break
    return out


def traceback_keys(tb: ParsedTraceback) -> TracebackKeys:
    in_app = [[f for f in u.frames if not is_library(f.filename)] for u in tb.units]
    any_in_app = any(in_app)
    strict: list = []
    loose: list = []
    for unit, app_frames in zip(tb.units, in_app, strict=True):
        strict.append(f"{unit.depth}|{unit.type}")
        if any_in_app:
            frames = [(frame_module(f.filename), f.function, f.source_line) for f in app_frames]
            strict.append(collapse(frames))
            loose.extend((m, fn) for m, fn, _ in frames)
        else:
            frames = [
                (frame_module(f.filename), f.function)
                for f in unit.frames
                if not is_frozen(f.filename)
            ]
            strict.append(collapse(frames))
    if not any_in_app:
        loose = [tb.final.type, *(strict[-1] if strict else [])]
    culprit = _culprit(tb, in_app)
    return TracebackKeys(
        fingerprint=_digest("tb", strict),
        loose=_digest("tbl", collapse(loose)),
        culprit=f"{short_path(culprit.filename)} in {culprit.function}" if culprit else "",
        culprit_module=frame_module(culprit.filename) if culprit else "",
        culprit_function=culprit.function if culprit else "",
    )


def _culprit(tb: ParsedTraceback, in_app: list[list[Frame]]) -> Frame | None:
    """The innermost in-app frame of the final exception, else of the nearest one that has any."""
    final = tb.final
    order = [tb.units.index(final)] + list(range(len(tb.units) - 1, -1, -1))
    for index in order:
        if in_app[index]:
            return in_app[index][-1]
    frames = [f for f in final.frames if not is_frozen(f.filename)]
    return frames[-1] if frames else None


def normalize_message(text: str) -> str:
    """The message with its variable parts replaced, for grouping."""
    text = _URL_RE.sub("<url>", text)
    text = _EMAIL_RE.sub("<email>", text)
    text = _UUID_RE.sub("<uuid>", text)
    text = _HEX_RE.sub("<hex>", text)
    text = _NUMBER_RE.sub("<n>", text)
    return " ".join(text.split())[:2000]


def message_fingerprint(text: str) -> str:
    return _digest("msg", normalize_message(text))


def infrastructure_fingerprint(kind: str, key: str = "") -> str:
    return _digest("infra", [kind, key])


@lru_cache(maxsize=65536)
def route_of(path: str) -> str:
    """A request path with ids replaced, to count per route: /users/42/ -> /users/<n>/."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    path = _UUID_RE.sub("<uuid>", path)
    path = _HEX_RE.sub("<hex>", path)
    path = _LONG_TOKEN_RE.sub("<token>", path)
    return _DIGITS_RE.sub("<n>", path)[:500]
