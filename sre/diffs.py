"""A unified diff as HTML: each line coloured by kind, its code highlighted by file type."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.util import ClassNotFound

_FORMATTER = HtmlFormatter(nowrap=True, classprefix="hl-")


def diff_styles() -> SafeString:
    """The CSS for the highlighted code, scoped to the diff box."""
    return mark_safe(_FORMATTER.get_style_defs(".cs-diff"))  # noqa: S308 (Pygments' own CSS)


def _lexer(path: str):
    try:
        return get_lexer_for_filename(path, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False, ensurenl=False)


def diff_lines(diff: str) -> list[tuple[str, SafeString]]:
    """(kind, html) for each line: kind is hunk, add, del or ctx; all text is escaped."""
    lexer = TextLexer(stripnl=False, ensurenl=False)
    out: list[tuple[str, SafeString]] = []
    for line in diff.splitlines():
        if line.startswith("+++ "):
            path = line[4:].removeprefix("b/")
            lexer = _lexer(path)
            out.append(("hunk", escape(line)))
        elif line.startswith(("--- ", "diff ", "index ", "@@", "new file", "deleted file")):
            out.append(("hunk", escape(line)))
        elif line[:1] in ("+", "-", " "):
            kind = {"+": "add", "-": "del", " ": "ctx"}[line[0]]
            code = highlight(line[1:], lexer, _FORMATTER).rstrip("\n")
            # Pygments escapes the code it emits; the prefix is a single known character.
            out.append((kind, mark_safe(escape(line[0]) + code)))  # noqa: S308
        else:
            out.append(("ctx", escape(line)))
    return out


# --- the review page's view: files, hunks, line numbers, folded context -----------------------

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
# Unchanged lines kept in sight next to a change; longer runs of them fold away.
KEEP = 1
FOLD_MIN = 2


@dataclass
class DiffLine:
    kind: str  # add, del, ctx or meta ("\ No newline at end of file")
    old: int | None
    new: int | None
    html: SafeString


@dataclass
class DiffChunk:
    lines: list[DiffLine]
    folded: bool = False  # a run of unchanged lines, shown on request


@dataclass
class DiffHunk:
    header: str
    chunks: list[DiffChunk] = field(default_factory=list)


@dataclass
class DiffFile:
    path: str
    old_path: str = ""
    status: str = "changed"  # changed, added, deleted or renamed
    meta: list[str] = field(default_factory=list)  # diff --git, index, ---, +++ as written
    hunks: list[DiffHunk] = field(default_factory=list)
    added: int = 0
    removed: int = 0


def _fold(lines: list[DiffLine]) -> list[DiffChunk]:
    """Split a hunk's lines so that long runs of unchanged lines fold away."""
    chunks: list[DiffChunk] = []
    run: list[DiffLine] = []

    def flush(*, first: bool, last: bool) -> None:
        if not run:
            return
        head = 0 if first else KEEP
        tail = 0 if last else KEEP
        if len(run) - head - tail >= FOLD_MIN:
            if head:
                chunks.append(DiffChunk(run[:head]))
            chunks.append(DiffChunk(run[head : len(run) - tail], folded=True))
            if tail:
                chunks.append(DiffChunk(run[len(run) - tail :]))
        else:
            chunks.append(DiffChunk(list(run)))
        run.clear()

    seen_change = False
    for line in lines:
        if line.kind == "ctx":
            run.append(line)
            continue
        flush(first=not seen_change, last=False)
        seen_change = True
        if chunks and not chunks[-1].folded and chunks[-1].lines[-1].kind != "ctx":
            chunks[-1].lines.append(line)
        else:
            chunks.append(DiffChunk([line]))
    flush(first=not seen_change, last=True)
    return chunks


def diff_files(diff: str) -> list[DiffFile]:
    """The diff per file: each hunk's lines with old and new numbers, long context folded."""
    files: list[DiffFile] = []
    current: DiffFile | None = None
    hunk_lines: list[DiffLine] = []
    old = new = old_left = new_left = 0
    lexer = TextLexer(stripnl=False, ensurenl=False)

    def close_hunk() -> None:
        if current is not None and current.hunks and not current.hunks[-1].chunks:
            current.hunks[-1].chunks = _fold(hunk_lines)
        hunk_lines.clear()

    for line in diff.splitlines():
        if current is not None and current.hunks and (old_left > 0 or new_left > 0):
            # Inside a hunk its header's counts say what each line is, whatever it starts with.
            prefix = line[:1] or " "
            if prefix == "\\":
                hunk_lines.append(DiffLine("meta", None, None, escape(line)))
                continue
            code = highlight(line[1:], lexer, _FORMATTER).rstrip("\n")
            # Pygments escapes the code it emits; the prefix is a single known character.
            html = mark_safe(escape(prefix) + code)  # noqa: S308
            if prefix == "+":
                hunk_lines.append(DiffLine("add", None, new, html))
                new, new_left = new + 1, new_left - 1
                current.added += 1
            elif prefix == "-":
                hunk_lines.append(DiffLine("del", old, None, html))
                old, old_left = old + 1, old_left - 1
                current.removed += 1
            else:
                hunk_lines.append(DiffLine("ctx", old, new, html))
                old, new, old_left, new_left = old + 1, new + 1, old_left - 1, new_left - 1
            continue
        match = _HUNK.match(line)
        if match and current is not None:
            close_hunk()
            old, new = int(match.group(1)), int(match.group(3))
            old_left = int(match.group(2)) if match.group(2) is not None else 1
            new_left = int(match.group(4)) if match.group(4) is not None else 1
            current.hunks.append(DiffHunk(header=line))
            continue
        if line.startswith("\\") and hunk_lines:
            hunk_lines.append(DiffLine("meta", None, None, escape(line)))
            continue
        starts_file = line.startswith("diff ") or (
            line.startswith("--- ") and (current is None or current.hunks)
        )
        if starts_file:
            close_hunk()
            current = DiffFile(path="")
            files.append(current)
            if line.startswith("diff "):
                parts = line.split(" b/", 1)
                current.path = parts[1] if len(parts) == 2 else ""
        if current is None:
            continue  # text before the first file
        current.meta.append(line)
        if line.startswith("--- "):
            current.old_path = line[4:].removeprefix("a/")
            if current.old_path == "/dev/null":
                current.status = "added"
        elif line.startswith("+++ "):
            path = line[4:].removeprefix("b/")
            if path == "/dev/null":
                current.status = "deleted"
                current.path = current.old_path
            else:
                current.path = path
                if current.old_path not in ("", "/dev/null", path):
                    current.status = "renamed"
            lexer = _lexer(current.path)
        elif line.startswith("new file"):
            current.status = "added"
        elif line.startswith("deleted file"):
            current.status = "deleted"
    close_hunk()
    for file in files:
        file.path = file.path or file.old_path or "(unnamed file)"
    return files
