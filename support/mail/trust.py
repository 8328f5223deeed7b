"""What a reviewer should know before trusting a mail, worked out once when it arrives.

Each warning is a `{"code", "message"}` pair stored with the message and shown wherever a
person decides something about its ticket. None of them stops anything: they say why the mail
may not be what it looks like, so the person approving a refund or a reply reads it with care.

- reply_to_differs: the mail asks for answers at another address. Replies only ever go to the
  From address; a person is told so that a request to write elsewhere stands out.
- display_name_address / display_name_claim: the sender's name shows an address that is not
  the sender's, or claims to be us or the payments provider from an address that is not theirs.
- parts_disagree: the text part (what Claude and the console read) and the HTML part (what a
  mail program shows) say materially different things.
- hidden_html: the HTML hides text from its reader.
- auth_failed / auth_unverified: the receiving server could not confirm who sent it.
- unchecked: a check could not run on this mail, so its silence means nothing.
- thread_sender_differs: the mail joins a ticket's thread from an address that is not the
  ticket's customer (or a confirmed alias): someone may be writing into another's ticket.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from support.mail.html import HtmlText

if TYPE_CHECKING:
    from support.mail.parse import ParsedEmail

REPLY_TO_DIFFERS = "reply_to_differs"
DISPLAY_NAME_ADDRESS = "display_name_address"
DISPLAY_NAME_CLAIM = "display_name_claim"
PARTS_DISAGREE = "parts_disagree"
HIDDEN_HTML = "hidden_html"
AUTH_FAILED = "auth_failed"
AUTH_UNVERIFIED = "auth_unverified"
UNCHECKED = "unchecked"
THREAD_SENDER_DIFFERS = "thread_sender_differs"

COMPANY = "Countersign"
# Names a sender may borrow to look official, and the domains that may use them.
BRANDS = {"stripe": ("Stripe", ("stripe.com",))}
# A name made only of these words reads as a department; one of the first set must be in it.
ROLE_WORDS = {"support", "staff", "billing", "helpdesk", "admin", "administrator", "refunds"}
ROLE_FILLER = ROLE_WORDS | {
    "the", "team", "department", "dept", "desk", "help", "customer", "customers", "service",
    "services", "care", "refund", "payments", "payment", "accounts", "account", "center",
    "centre", "and", "of", "no", "reply", "noreply", "do", "not",
}  # fmt: skip

# What each warning is called where it is shown.
LABELS = {
    REPLY_TO_DIFFERS: "Reply-To elsewhere",
    DISPLAY_NAME_ADDRESS: "misleading sender name",
    DISPLAY_NAME_CLAIM: "misleading sender name",
    PARTS_DISAGREE: "text and HTML differ",
    HIDDEN_HTML: "hidden HTML text",
    AUTH_FAILED: "sender authentication failed",
    AUTH_UNVERIFIED: "sender not verified",
    UNCHECKED: "not fully checked",
    THREAD_SENDER_DIFFERS: "someone else in the thread",
}

AUTH_METHODS = (("spf", "SPF"), ("dkim", "DKIM"), ("dmarc", "DMARC"))
AUTH_FAILURES = {"fail", "softfail", "permerror"}

# Text part against HTML part: below this share of common words, or with a run of this many
# words in one part that the other lacks, they say different things.
SIMILARITY_MIN = 0.5
SIMILARITY_MIN_DIFFERENT = 3  # ...with at least this many words in one part only
RUN_MIN = 5
GLUE_MAX = 3  # letters in a short word that may sit inside a passage only one part has
EXCERPT_WORDS = 14
LIST_MAX = 5
COMPARE_MAX_CHARS = 200_000  # of each part: enough for any letter a person writes

# Bounded repeats: a megabyte without a space must not take quadratic time.
_EMAIL = re.compile(r"[\w.+'-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"'\[\]()]+", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+")
_TOKEN = re.compile(r"\d(?:[\d,.]{0,30}\d)?|[^\W_]+")
_IMAGE = re.compile(r"\[image:[^\]]*\]", re.IGNORECASE)
_NUMBER = r"\d(?:[\d,.]{0,30}\d)?"
_AMOUNT = re.compile(
    rf"(?:(?P<pre>us\$|[$€£¥]|\b(?:usd|eur|gbp)\b)\s?(?P<n1>{_NUMBER})"
    rf"|(?<![\d,.])(?P<n2>{_NUMBER})\s?(?P<post>[$€£¥]|\b(?:usd|eur|gbp|dollars?|euros?|pounds?)\b))",
    re.IGNORECASE,
)
_CURRENCY = {
    "$": "USD", "us$": "USD", "usd": "USD", "dollar": "USD", "dollars": "USD",
    "€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR",
    "£": "GBP", "gbp": "GBP", "pound": "GBP", "pounds": "GBP", "¥": "JPY",
}  # fmt: skip


def trust_warnings(
    parsed: ParsedEmail, *, authserv_id: str = "", our_domains: set[str] | None = None
) -> list[dict[str, str]]:
    """The warnings for one incoming mail: Reply-To, sender name, authentication, parts, hidden."""
    if our_domains is None:
        our_domains = own_domains()
    checks = (
        lambda: _reply_to(parsed),
        lambda: _display_name(parsed, our_domains),
        lambda: _auth(parsed, authserv_id),
        lambda: _parts(parsed),
        lambda: _hidden(parsed),
    )
    found = []
    for check in checks:
        # A check that trips over a strange mail must not lose the mail or the other warnings.
        try:
            found += check()
        except Exception as error:
            found.append(
                _warning(UNCHECKED, f"One of the checks on this mail could not run ({error!r}).")
            )
    return found


def _parts(parsed: ParsedEmail) -> list[dict[str, str]]:
    html = parsed.alternative_html_text
    if html is not None and (difference := parts_compare(parsed.text, html)):
        return [_warning(PARTS_DISAGREE, difference)]
    return []


def warned_messages(messages: Iterable[Any]) -> list[dict[str, Any]]:
    """The incoming messages that carry warnings, each with its warnings labelled for a page."""
    return [
        {
            "message": message,
            "warnings": [
                {**w, "label": LABELS.get(w.get("code", ""), "warning")}
                for w in message.trust_warnings
            ],
        }
        for message in messages
        if message.direction == "in" and message.trust_warnings
    ]


def own_domains() -> set[str]:
    """The domains our own mail comes from."""
    from django.conf import settings

    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip("> ").casefold()
    return {domain} if domain else set()


def thread_sender_warning(
    *, sender: str, customer: str, ticket_id: int, aliases: Iterable[str] = ()
) -> list[dict[str, str]]:
    """A warning when a reply in a ticket's thread comes from someone else than its customer."""
    if any(_same_address(sender, known) for known in (customer, *aliases)):
        return []
    return [
        _warning(
            THREAD_SENDER_DIFFERS,
            f"This mail joins ticket #{ticket_id}'s thread, but it is from {sender}, not the "
            f"ticket's customer {customer}. Anything it asks for is not the customer's word; "
            f"replies still go to {customer}.",
        )
    ]


def _warning(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def _same_address(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def _reply_to(parsed: ParsedEmail) -> list[dict[str, str]]:
    if not parsed.reply_to_header:
        return []
    if not parsed.reply_to:
        return [
            _warning(
                REPLY_TO_DIFFERS,
                f"The mail's Reply-To header cannot be read as an address "
                f"({parsed.reply_to_header[:200]!r}). Replies go to the sender, "
                f"{parsed.from_email}, only.",
            )
        ]
    others = [a for a in parsed.reply_to if not _same_address(a, parsed.from_email)]
    if not others:
        return []
    return [
        _warning(
            REPLY_TO_DIFFERS,
            f"The mail asks for answers to go to {', '.join(others)} (its Reply-To), not to its "
            f"sender {parsed.from_email} (its From). Replies from here go to "
            f"{parsed.from_email} only; treat any request to write to another address with "
            "suspicion.",
        )
    ]


def _in_domains(domain: str, domains: tuple[str, ...] | set[str]) -> bool:
    return any(domain == d or domain.endswith("." + d) for d in domains)


def _display_name(parsed: ParsedEmail, our_domains: set[str]) -> list[dict[str, str]]:
    name = " ".join(parsed.from_name.split())
    if not name:
        return []
    shown = [a for a in _EMAIL.findall(name) if not _same_address(a, parsed.from_email)]
    if shown:
        said = (
            f"is the address {shown[0]}"
            if _same_address(name.strip("\"'<> "), shown[0])
            else f"“{name}” shows the address {shown[0]}"
        )
        return [
            _warning(
                DISPLAY_NAME_ADDRESS,
                f"The sender's name {said}, but the mail was sent from {parsed.from_email}. A "
                f"mail program may show only the name: the mail is from {parsed.from_email}, "
                "whoever the name says.",
            )
        ]
    domain = parsed.from_email.rpartition("@")[2].casefold()
    words = set(_WORD.findall(name.casefold()))
    ours = tuple(sorted(our_domains))
    claims = []  # (who the name claims to be, the domains that may use the name)
    if words & ({COMPANY.casefold()} | {d.split(".")[0] for d in ours}):
        claims.append((COMPANY, ours))
    claims += [(brand, domains) for word, (brand, domains) in BRANDS.items() if word in words]
    if not claims and words <= ROLE_FILLER and words & ROLE_WORDS:
        claims.append((f"our {' '.join(sorted(words & ROLE_WORDS))} staff", ours))
    claims = [(who, domains) for who, domains in claims if not _in_domains(domain, domains)]
    if not claims:
        return []
    said = " and ".join(
        f"{who} (whose mail comes from {', '.join(domains) or 'our own domain'})"
        for who, domains in claims
    )
    return [
        _warning(
            DISPLAY_NAME_CLAIM,
            f"The sender's name “{name}” reads as if the mail were from {said}, but the address "
            f"is {parsed.from_email}, at {domain}. It may be an ordinary customer; it is not "
            "our staff or the payments provider writing.",
        )
    ]


def _auth(parsed: ParsedEmail, authserv_id: str) -> list[dict[str, str]]:
    results = parsed.auth_results
    shown = [
        (label, results[method])
        for method, label in AUTH_METHODS
        if results.get(method, "pass") != "pass"
    ]
    if not shown:
        return []
    failed = any(result in AUTH_FAILURES for _, result in shown)
    listed = ", ".join(f"{label} {result}" for label, result in shown)
    by = f" ({authserv_id})" if authserv_id else ""
    if failed:
        return [
            _warning(
                AUTH_FAILED,
                f"Sender authentication failed at the receiving server{by}: {listed}. The "
                f"From address {parsed.from_email} may be forged; do not take the mail's word "
                "for who wrote it.",
            )
        ]
    return [
        _warning(
            AUTH_UNVERIFIED,
            f"The receiving server{by} could not verify the sender: {listed}. Nothing confirms "
            f"that {parsed.from_email} wrote this mail.",
        )
    ]


def _hidden(parsed: ParsedEmail) -> list[dict[str, str]]:
    if parsed.hidden_content:
        return [
            _warning(
                HIDDEN_HTML,
                "Hidden HTML content was dropped: the mail's HTML has text a reader would not "
                "see, which Claude was not shown:\n" + parsed.hidden_content_summary,
            )
        ]
    if parsed.alternative_hidden:
        summary = HtmlText(text="", hidden=parsed.alternative_hidden).hidden_summary
        return [
            _warning(
                HIDDEN_HTML,
                "The mail's HTML part has text a reader would not see (Claude read the text "
                "part instead):\n" + summary,
            )
        ]
    return []


# --- the text part against the HTML part ---------------------------------------------------


def _amount(match: re.Match[str]) -> str:
    number = _number(match.group("n1") or match.group("n2"))
    currency = _CURRENCY.get((match.group("pre") or match.group("post") or "").casefold(), "")
    return f"{currency} {number}".strip()


def _number(number: str) -> str:
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", number):
        number = number.replace(",", "")
    elif re.fullmatch(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?", number):
        number = number.replace(".", "").replace(",", ".")
    elif re.fullmatch(r"\d+,\d{1,2}", number):
        number = number.replace(",", ".")
    with contextlib.suppress(InvalidOperation):
        number = format(Decimal(number).normalize(), "f")
    return number


def _url(url: str) -> str:
    url = url.rstrip(".,;:!?'\"")
    url = re.sub(r"^(?:https?://)?(?:www\.)?", "", url, flags=re.IGNORECASE)
    host, slash, path = url.partition("/")
    return (host.casefold() + slash + path).rstrip("/")


class _Facts:
    """What one part says, in pieces that can be compared."""

    def __init__(self, text: str) -> None:
        text = _IMAGE.sub(" ", text)
        self.urls: dict[str, str] = {}
        for match in _URL.finditer(text):
            self.urls.setdefault(_url(match.group(0)), match.group(0).rstrip(".,;:!?'\""))
        text = _URL.sub(" ", text)
        self.emails = {e.casefold(): e for e in _EMAIL.findall(text)}
        text = _EMAIL.sub(" ", text)
        self.amounts: dict[str, str] = {}
        for match in _AMOUNT.finditer(text):
            self.amounts.setdefault(_amount(match), " ".join(match.group(0).split()))
        text = _AMOUNT.sub(" ", text)
        # A number is one word however it is written: 1,200.00 and 1200 are the same.
        self.words = [_number(w) if w[0].isdigit() else w for w in _TOKEN.findall(text.casefold())]
        self.word_set = set(self.words)


def _only(mine: dict[str, str], theirs: dict[str, str]) -> list[str]:
    return [shown for key, shown in mine.items() if key not in theirs][:LIST_MAX]


def _run(mine: _Facts, theirs: _Facts) -> list[str]:
    """The longest passage of `mine` made of words `theirs` never uses (short words may join it)."""
    best: list[str] = []
    best_new = 0
    current: list[str] = []
    new = 0
    for word in [*mine.words, None]:
        if word is not None and word not in theirs.word_set:
            current.append(word)
            new += 1
            continue
        if word is not None and current and len(word) <= GLUE_MAX:
            current.append(word)  # "and", "to", "the": shared by any two texts
            continue
        while current and current[-1] in theirs.word_set:
            current.pop()
        if new > best_new:
            best, best_new = current, new
        current, new = [], 0
    return best if best_new >= RUN_MIN else []


def _excerpt(words: list[str]) -> str:
    text = " ".join(words[:EXCERPT_WORDS])
    return f"“{text}…”" if len(words) > EXCERPT_WORDS else f"“{text}”"


def parts_compare(plain: str, html: str) -> str:
    """How the text part and the HTML part differ materially; "" when they agree."""
    text, shown = _Facts(plain[:COMPARE_MAX_CHARS]), _Facts(html[:COMPARE_MAX_CHARS])
    details = []
    for label, mine, theirs in (
        ("Amounts", text.amounts, shown.amounts),
        ("Addresses", text.emails, shown.emails),
        ("Links", text.urls, shown.urls),
    ):
        only_text, only_html = _only(mine, theirs), _only(theirs, mine)
        if only_text:
            details.append(f"{label} only in the text part: {', '.join(only_text)}.")
        if only_html:
            details.append(f"{label} only in the HTML part: {', '.join(only_html)}.")
    union = text.word_set | shown.word_set
    common = text.word_set & shown.word_set
    similarity = len(common) / len(union) if union else 1.0
    different = len(union) - len(common)
    runs = [("text", _run(text, shown)), ("HTML", _run(shown, text))]
    words_differ = any(run for _, run in runs) or (
        similarity < SIMILARITY_MIN and different >= SIMILARITY_MIN_DIFFERENT
    )
    if words_differ:
        for where, mine, theirs, run in (
            ("text", text, shown, runs[0][1]),
            ("HTML", shown, text, runs[1][1]),
        ):
            if run:
                details.append(f"Only in the {where} part: {_excerpt(run)}.")
            elif only := [w for w in dict.fromkeys(mine.words) if w not in theirs.word_set]:
                details.append(f"Words only in the {where} part: {_excerpt(only)}.")
    if not details:
        return ""
    if not shown.word_set:
        lead = "The mail's HTML part shows no text, but its text part does."
    else:
        lead = (
            "The mail's text part and its HTML part say different things "
            f"({round(similarity * 100)}% of their words in common)."
        )
    return (
        f"{lead} Claude and this page read the text part; a mail program usually shows the "
        "HTML part, so a person opening the mail may see something else.\n" + "\n".join(details)
    )
