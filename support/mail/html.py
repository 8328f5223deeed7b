"""HTML mail to plain text, dropping what a reader would not see.

Text a person cannot see is a prompt-injection vector: a mail can look harmless in a client
and still tell Claude to do something. So elements hidden by the `hidden` attribute, inline
styles (display:none, visibility:hidden, zero font size or opacity, zero height with hidden
overflow, text moved off screen, text the colour of its background) or simple class and id
rules in the mail's own <style> blocks are dropped, and what was dropped is reported.
Script, style and head contents are never text and are dropped without a report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

SKIPPED = {"script", "style", "head", "title", "template", "noscript", "object", "iframe"}
VOID = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
    "source", "track", "wbr",
}  # fmt: skip
BLOCK = {
    "address", "article", "aside", "blockquote", "center", "dd", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
    "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody",
    "tfoot", "thead", "tr", "ul",
}  # fmt: skip
# Elements a start tag closes implicitly (HTML's optional end tags): open -> closing starts.
IMPLIED_END = {
    "p": BLOCK,
    "li": {"li"},
    "dt": {"dt", "dd"},
    "dd": {"dt", "dd"},
    "td": {"td", "th", "tr"},
    "th": {"td", "th", "tr"},
    "tr": {"tr"},
    "option": {"option"},
}
SUMMARY_ITEM_CHARS = 200
SUMMARY_MAX_ITEMS = 10

WHITE = "#ffffff"
NAMED_COLOURS = {"white": "#ffffff", "black": "#000000", "transparent": "transparent"}
_ZERO = r"0*\.?0+(?:px|pt|em|rem|%|ex|ch|vh|vw)?"


@dataclass
class HtmlText:
    text: str
    hidden: list[str] = field(default_factory=list)

    @property
    def hidden_dropped(self) -> bool:
        return bool(self.hidden)

    @property
    def hidden_summary(self) -> str:
        lines = self.hidden[:SUMMARY_MAX_ITEMS]
        if len(self.hidden) > SUMMARY_MAX_ITEMS:
            lines.append(f"... and {len(self.hidden) - SUMMARY_MAX_ITEMS} more hidden elements")
        return "\n".join(lines)


def html_to_text(html: str) -> HtmlText:
    """Convert an HTML body to readable text; report the hidden text that was dropped."""
    parser = _Converter()
    parser.feed(html)
    parser.close()
    return parser.result()


def _declarations(style: str) -> dict[str, str]:
    out = {}
    for item in style.split(";"):
        name, sep, value = item.partition(":")
        if sep:
            value = re.sub(r"\s*!important\s*$", "", value.strip(), flags=re.I)
            out[name.strip().lower()] = value.lower()
    return out


def _colour(value: str | None) -> str | None:
    """Normalise a CSS colour to #rrggbb where it is simple enough to compare."""
    if not value:
        return None
    value = value.strip().lower()
    if value in NAMED_COLOURS:
        return NAMED_COLOURS[value]
    if m := re.fullmatch(r"#([0-9a-f]{3})", value):
        return "#" + "".join(c * 2 for c in m.group(1))
    if re.fullmatch(r"#[0-9a-f]{6}", value):
        return value
    if m := re.fullmatch(
        r"rgba?\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*(?:,\s*([\d.]+)\s*)?\)", value
    ):
        if m.group(4) is not None and float(m.group(4)) == 0:
            return "transparent"
        return "#" + "".join(f"{min(int(c), 255):02x}" for c in m.group(1, 2, 3))
    return None


def _hiding_reason(decl: dict[str, str]) -> str:
    """Why these declarations hide an element's text, or '' when they do not."""
    if decl.get("display", "").startswith("none"):
        return "display:none"
    if decl.get("visibility", "") in ("hidden", "collapse"):
        return f"visibility:{decl['visibility']}"
    if decl.get("mso-hide", "") == "all":
        return "mso-hide:all"
    if re.fullmatch(_ZERO, decl.get("font-size", "").strip()):
        return "font-size:0"
    if re.fullmatch(r"0*\.?0+%?", decl.get("opacity", "").strip()):
        return "opacity:0"
    overflow_hidden = decl.get("overflow", "") == "hidden"
    for prop in ("max-height", "height", "max-width", "width"):
        if overflow_hidden and re.fullmatch(_ZERO, decl.get(prop, "").strip()):
            return f"{prop}:0 with overflow:hidden"
    for prop in ("text-indent", "left", "top", "margin-left", "margin-top"):
        m = re.fullmatch(r"(-\d{3,})(?:\.\d+)?(px|pt|em|rem)?", decl.get(prop, "").strip())
        if m and int(m.group(1)) <= -500:
            return f"{prop}:{m.group(0)} (off screen)"
    if "rect(0" in decl.get("clip", "").replace(" ", "") and "absolute" in decl.get("position", ""):
        return "clipped to nothing"
    if re.fullmatch(r"scale\(\s*0+(\.0+)?\s*\)", decl.get("transform", "").strip()):
        return "transform:scale(0)"
    return ""


class _StyleRules:
    """Hiding rules for simple `.class`, `#id` and `tag.class` selectors in <style> blocks."""

    def __init__(self) -> None:
        self.classes: dict[str, str] = {}
        self.ids: dict[str, str] = {}

    def add(self, css: str) -> None:
        css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
        # Media queries and other at-rules: read the rules inside them too (a client may apply them).
        for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
            reason = _hiding_reason(_declarations(body))
            if not reason:
                continue
            for selector in selectors.split(","):
                selector = selector.strip()
                if m := re.fullmatch(r"[a-z0-9]*\.([\w-]+)", selector, flags=re.I):
                    self.classes[m.group(1)] = f"{reason} (rule {selector})"
                elif m := re.fullmatch(r"[a-z0-9]*#([\w-]+)", selector, flags=re.I):
                    self.ids[m.group(1)] = f"{reason} (rule {selector})"

    def reason(self, attrs: dict[str, str]) -> str:
        for name in attrs.get("class", "").split():
            if name in self.classes:
                return self.classes[name]
        return self.ids.get(attrs.get("id", ""), "")


@dataclass
class _Open:
    tag: str
    hidden: str  # why this element is hidden; "" when visible
    skipped: bool
    background: str | None
    colour: str | None
    pre: bool
    href: str = ""
    text_start: int = 0


class _Converter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rules = _StyleRules()
        self.stack: list[_Open] = []
        self.out: list[str] = []
        self.hidden: list[str] = []
        self.hidden_text: list[str] = []  # text of the hidden element being dropped
        self.style_text: list[str] = []
        self.list_depth = 0

    # --- state of the innermost open element ------------------------------------------------
    @property
    def _top(self) -> _Open | None:
        return self.stack[-1] if self.stack else None

    def _inherited(self) -> tuple[str, bool, str | None, str | None, bool]:
        top = self._top
        if top is None:
            return "", False, WHITE, None, False
        return top.hidden, top.skipped, top.background, top.colour, top.pre

    # --- parser callbacks ----------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k.lower(): (v or "") for k, v in attrs_list}
        # As a browser does: <p>a<p>b is two siblings, so the first one's style ends at the second.
        while self.stack and tag in IMPLIED_END.get(self.stack[-1].tag, ()):
            self._close(self.stack.pop())
        hidden, skipped, background, colour, pre = self._inherited()
        decl = _declarations(attrs.get("style", ""))
        background = (
            _colour(decl.get("background-color"))
            or _colour(decl.get("background"))
            or _colour(attrs.get("bgcolor"))
            or background
        )
        if background == "transparent":
            background = self._inherited()[2]
        colour = _colour(decl.get("color")) or _colour(attrs.get("color")) or colour
        reason = ""
        if not hidden and not skipped:
            reason = self._element_hiding(tag, attrs, decl, colour, background)
        if tag in VOID:
            if not skipped:
                self._void(tag, attrs, hidden, reason)
            return
        element = _Open(
            tag=tag,
            hidden=hidden or reason,
            skipped=skipped or tag in SKIPPED,
            background=background,
            colour=colour,
            pre=pre or tag == "pre",
            href=attrs.get("href", "") if tag == "a" else "",
        )
        if reason:
            self.hidden_text = []
        if not element.hidden and not element.skipped:
            self._open_visible(tag)
            element.text_start = len(self.out)
        self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        # Close the most recent matching element and everything left open inside it.
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index].tag == tag:
                while len(self.stack) > index:
                    self._close(self.stack.pop())
                return

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        hidden, skipped, _, _, pre = self._inherited()
        top = self._top
        if top is not None and top.tag == "style":
            self.style_text.append(data)
            return
        if skipped:
            return
        if hidden:
            self.hidden_text.append(data)
            return
        self._emit(data if pre else re.sub(r"\s+", " ", data), pre=pre)

    def close(self) -> None:
        super().close()
        while self.stack:
            self._close(self.stack.pop())

    # --- helpers -------------------------------------------------------------------------
    def _element_hiding(
        self,
        tag: str,
        attrs: dict[str, str],
        decl: dict[str, str],
        colour: str | None,
        background: str | None,
    ) -> str:
        if "hidden" in attrs:
            return "hidden attribute"
        if tag == "input" and attrs.get("type", "").lower() == "hidden":
            return "hidden input"
        if reason := _hiding_reason(decl):
            return reason
        if reason := self.rules.reason(attrs):
            return reason
        if colour and colour == background and colour != "transparent":
            return f"text colour {colour} on the same background"
        return ""

    def _emit(self, text: str, *, pre: bool = False) -> None:
        if not pre and (not self.out or self.out[-1][-1:] in ("\n", " ")):
            text = text.lstrip(" ")
        if text:
            self.out.append(text)

    def _void(self, tag: str, attrs: dict[str, str], inherited: str, own: str) -> None:
        text = ""
        if tag == "br":
            text = "\n"
        elif tag == "hr":
            text = "\n\n"
        elif tag == "img" and attrs.get("alt", "").strip():
            text = f"[image: {attrs['alt'].strip()}]"
        elif tag == "input" and attrs.get("value", "").strip():
            text = attrs["value"]
        if not text:
            return
        if inherited:
            self.hidden_text.append(text)
        elif own:
            self._record_hidden(f"<{tag}> ({own})", text)
        else:
            self._emit(text)

    def _open_visible(self, tag: str) -> None:
        if tag in ("ul", "ol"):
            self.list_depth += 1
        if tag == "li":
            self.out.append("\n" + "  " * max(self.list_depth - 1, 0) + "- ")
        elif tag in BLOCK:
            self.out.append(
                "\n\n" if tag in ("p", "h1", "h2", "h3", "table", "blockquote") else "\n"
            )
        elif tag in ("td", "th"):
            self._emit(" ")

    def _close(self, element: _Open) -> None:
        if element.tag == "style":
            self.rules.add("".join(self.style_text))
            self.style_text = []
        parent_hidden = self._inherited()[0]
        if element.hidden and not parent_hidden:
            # The outermost hidden element: report what it held.
            self._record_hidden(f"<{element.tag}> ({element.hidden})", "".join(self.hidden_text))
            self.hidden_text = []
            return
        if element.hidden or element.skipped:
            return
        if element.tag in ("ul", "ol"):
            self.list_depth = max(self.list_depth - 1, 0)
        if element.tag == "a" and element.href:
            label = "".join(self.out[element.text_start :]).strip()
            href = element.href.strip()
            if href.lower().startswith(("http:", "https:", "mailto:")) and href.removeprefix(
                "mailto:"
            ) != label.removeprefix("mailto:"):
                self.out.append(f" <{href}>")
        if element.tag in BLOCK and element.tag != "li":
            self.out.append("\n\n" if element.tag in ("p", "table", "blockquote") else "\n")

    def _record_hidden(self, where: str, text: str) -> None:
        text = re.sub(r"\s+", " ", text).strip()
        if not text:
            return  # an empty spacer hides nothing
        if len(text) > SUMMARY_ITEM_CHARS:
            text = text[: SUMMARY_ITEM_CHARS - 1] + "…"
        self.hidden.append(f"{where}: {text!r}")

    def result(self) -> HtmlText:
        text = "".join(self.out).replace("\xa0", " ")
        text = "\n".join(line.rstrip() for line in text.split("\n"))
        text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
        return HtmlText(text=text, hidden=self.hidden)
