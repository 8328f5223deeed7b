"""Reading and searching the repository, bounded, for the agent's read_file and search_code."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agents.redaction import holds_secret
from sre.workspace.paths import PathRefused, path_denied, path_resolve, settings_module

READ_MAX_BYTES = 200_000
SEARCH_MAX_FILE_BYTES = 1_000_000


def _text_of(target: Path, max_bytes: int) -> str:
    size = target.stat().st_size
    with target.open("rb") as handle:
        head = handle.read(min(size, max_bytes))
    if b"\x00" in head[:8192]:
        raise PathRefused(f"{target.name} is a binary file.")
    return head.decode("utf-8", errors="replace")


def file_read(
    root: Path,
    path: str,
    *,
    start: int | None = None,
    end: int | None = None,
    max_bytes: int = READ_MAX_BYTES,
    deny: tuple[str, ...] = (),
) -> str:
    """The file's lines `start`..`end` (1-based, inclusive), numbered, within the size cap."""
    target = path_resolve(root, path, deny=deny)
    if not target.is_file():
        raise PathRefused(f"{path!r} is not a file in the repository.")
    size = target.stat().st_size
    if size > max_bytes and start is None:
        raise PathRefused(
            f"{path!r} is {size:,} bytes, over the {max_bytes:,}-byte cap: read a line range."
        )
    text = _text_of(target, max(max_bytes, size if start is not None else 0))
    if _settings_with_secrets(target.relative_to(root.resolve()), text):
        raise PathRefused(
            f"{path!r} is a settings module that holds secrets; it is not shown to the agent."
        )
    lines = text.splitlines()
    first = max(1, start or 1)
    last = min(len(lines), end or len(lines))
    if first > last and lines:
        raise PathRefused(f"{path!r} has {len(lines)} lines; {first}..{last} is empty.")
    out, used = [], 0
    for number in range(first, last + 1):
        line = f"{number:>5} | {lines[number - 1]}"
        used += len(line) + 1
        if used > max_bytes:
            out.append(f"... cut at {max_bytes:,} bytes; read from line {number} on.")
            break
        out.append(line)
    return "\n".join(out)


def _settings_with_secrets(relative: Path, text: str) -> bool:
    return settings_module(relative) and holds_secret(text)


@dataclass(frozen=True)
class Hit:
    path: str
    line: int
    text: str


def code_search(
    root: Path,
    query: str,
    *,
    regex: bool = False,
    max_results: int = 50,
    deny: tuple[str, ...] = (),
) -> tuple[list[Hit], bool]:
    """Lines matching `query` in the repository's tracked files; True when results were cut."""
    if not query:
        raise ValueError("The search text is empty.")
    try:
        pattern = re.compile(query if regex else re.escape(query))
    except re.error as error:
        raise ValueError(f"The regular expression is invalid: {error}") from None
    hits: list[Hit] = []
    for relative in _tracked_files(root):
        if path_denied(Path(relative), deny=deny):
            continue
        try:
            # A tracked symlink is followed only where read_file would go: inside the tree,
            # onto a file the deny list does not name.
            target = path_resolve(root, relative, deny=deny)
            if not target.is_file() or target.stat().st_size > SEARCH_MAX_FILE_BYTES:
                continue
            text = _text_of(target, SEARCH_MAX_FILE_BYTES)
        except (OSError, PathRefused):
            continue
        if _settings_with_secrets(Path(relative), text):
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if pattern.search(line):
                hits.append(Hit(relative, number, line.strip()[:300]))
                if len(hits) >= max_results:
                    return hits, True
    return hits, False


def _tracked_files(root: Path) -> list[str]:
    """Files git tracks under root (so ignored and untracked files, often secrets, stay out)."""
    result = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise ValueError(f"{root} is not a git repository: {result.stderr.decode()[:200]}")
    return [p for p in result.stdout.decode("utf-8", "replace").split("\x00") if p]
