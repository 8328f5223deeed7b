"""Reading the receiving server's verdict on who sent a mail (SPF, DKIM, DMARC).

Only the server that received the mail for us can be believed, and it adds its headers on
top. So we read the topmost Authentication-Results header and the others carrying the same
authserv-id (one server may add one header per method); headers further down were written by
the sender or by servers on the way. A forged header can only add a failure, never hide ours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import EmailMessage

SPF_FAILURES = {"fail", "softfail"}
DMARC_FAILURES = {"fail"}
_RESULT = re.compile(r"^\s*([a-z0-9_.-]+)(?:/[0-9]+)?\s*=\s*([a-z]+)", re.IGNORECASE)


@dataclass
class AuthVerdict:
    results: dict[str, str] = field(default_factory=dict)  # method -> result
    authserv_id: str = ""

    @property
    def spf_failed(self) -> bool:
        return self.results.get("spf", "") in SPF_FAILURES

    @property
    def dmarc_failed(self) -> bool:
        return self.results.get("dmarc", "") in DMARC_FAILURES

    @property
    def summary(self) -> str:
        if not self.results:
            return ""
        parts = " ".join(f"{method}={result}" for method, result in self.results.items())
        return f"{parts} (by {self.authserv_id})" if self.authserv_id else parts


def auth_verdict(message: EmailMessage) -> AuthVerdict:
    """The SPF, DKIM and DMARC results the receiving server recorded."""
    verdict = AuthVerdict()
    headers = [_uncomment(str(h)) for h in message.get_all("Authentication-Results", [])]
    if headers:
        verdict.authserv_id = _authserv_id(headers[0])
        for header in headers:
            if _authserv_id(header) != verdict.authserv_id:
                continue
            for resinfo in header.split(";")[1:]:
                if m := _RESULT.match(resinfo):
                    method, result = m.group(1).lower(), m.group(2).lower()
                    # Keep the worst result when a method appears twice (several DKIM keys).
                    if method not in verdict.results or result in SPF_FAILURES | {"fail"}:
                        verdict.results[method] = result
    received_spf = message.get("Received-SPF")
    if "spf" not in verdict.results and received_spf is not None:
        m = re.match(r"\s*([a-z]+)", str(received_spf), re.IGNORECASE)
        verdict.results["spf"] = m.group(1).lower() if m else "none"
    return verdict


def _uncomment(value: str) -> str:
    # RFC 5322 comments may nest; strip them from the inside out.
    value = re.sub(r"\s+", " ", value)
    previous = None
    while previous != value:
        previous, value = value, re.sub(r"\([^()]*\)", "", value)
    return value


def _authserv_id(header: str) -> str:
    first = header.split(";", 1)[0].strip().split()
    return first[0].lower() if first else ""
