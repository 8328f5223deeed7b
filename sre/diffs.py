"""A unified diff as HTML: each line coloured by kind, its code highlighted by file type."""

from __future__ import annotations

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
