"""A local SMTP server for Django's SMTP backend (smtplib) to talk to; it keeps what it accepts.

Each mail's data is recorded the moment its final "." arrives, before the server answers, as a
real server would have queued it. Faults for the next mail (`fail_next`): `drop` closes the
connection without answering (the client cannot tell whether the mail left), `hold` keeps the
answer until released and then drops it (kill the worker meanwhile), `refuse` answers 554.
"""

from __future__ import annotations

import socketserver
import threading
from dataclasses import dataclass, field

from tests.fakes.hold import Hold
from tests.fakes.server import LocalServer


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    data: bytes
    fault: str = ""


@dataclass
class _Fault:
    kind: str
    hold: Hold | None = None


@dataclass
class _Session:
    sender: str = ""
    recipients: list[str] = field(default_factory=list)


class FakeSmtp(LocalServer):
    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.connections = 0
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._serve(socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler()))

    @property
    def url(self) -> str:
        """An EMAIL_URL for django-environ."""
        return f"smtp://127.0.0.1:{self.port}"

    def fail_next(self, kind: str) -> Hold | None:
        """Fail the next mail's answer: "drop", "hold" (returns the Hold) or "refuse"."""
        if kind not in ("drop", "hold", "refuse"):
            raise ValueError(f"unknown fault {kind!r}")
        fault = _Fault(kind, Hold() if kind == "hold" else None)
        with self._lock:
            self._faults.append(fault)
        return fault.hold

    def mails_to(self, address: str) -> list[Mail]:
        return [m for m in self.mails if address in m.recipients and m.fault != "refuse"]

    def _handler(self) -> type[socketserver.StreamRequestHandler]:
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def _say(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")
                self.wfile.flush()

            def handle(self) -> None:
                with fake._lock:
                    fake.connections += 1
                session = _Session()
                self._say("220 fake.smtp ESMTP ready")
                while line := self.rfile.readline():
                    verb, _, rest = line.decode("utf-8", "replace").strip().partition(" ")
                    verb = verb.upper()
                    if verb == "EHLO":
                        self._say("250-fake.smtp\r\n250-8BITMIME\r\n250 SMTPUTF8")
                    elif verb == "HELO":
                        self._say("250 fake.smtp")
                    elif verb == "MAIL":
                        session = _Session(sender=rest.partition(":")[2].strip().strip("<>"))
                        self._say("250 OK")
                    elif verb == "RCPT":
                        session.recipients.append(rest.partition(":")[2].strip().strip("<>"))
                        self._say("250 OK")
                    elif verb == "DATA":
                        self._say("354 End data with <CR><LF>.<CR><LF>")
                        if not self._data(session):
                            return
                    elif verb in ("RSET", "NOOP"):
                        session = _Session() if verb == "RSET" else session
                        self._say("250 OK")
                    elif verb == "QUIT":
                        self._say("221 Bye")
                        return
                    else:
                        self._say("502 Command not implemented")

            def _data(self, session: _Session) -> bool:
                lines = []
                while (line := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                    lines.append(line[1:] if line.startswith(b"..") else line)
                with fake._lock:
                    fault = fake._faults.pop(0) if fake._faults else None
                    fake.mails.append(
                        Mail(
                            session.sender,
                            list(session.recipients),
                            b"".join(lines),
                            fault.kind if fault else "",
                        )
                    )
                if fault is None:
                    self._say("250 OK queued")
                    return True
                if fault.kind == "refuse":
                    self._say("554 Transaction failed: refused by the fake")
                    return True
                if fault.hold is not None:
                    fault.hold.hold()
                return False  # dropped: the connection closes without an answer

        return Handler
