"""A local IMAP4rev1 server, plain TCP on 127.0.0.1, for the real imaplib to talk to.

It speaks enough of RFC 3501 for a mailbox poller: CAPABILITY, LOGIN, SELECT / EXAMINE,
UID SEARCH, UID FETCH (BODY.PEEK[], BODY[], RFC822, FLAGS), UID STORE, NOOP, CLOSE, LOGOUT.
Like a real server, fetching BODY[] or RFC822 from a read-write mailbox sets \\Seen at once,
while BODY.PEEK[] does not. Tests add messages, read back their flags and every command sent.
"""

from __future__ import annotations

import re
import socketserver
import threading
from dataclasses import dataclass, field

from tests.fakes.server import LocalServer


@dataclass
class StoredMessage:
    uid: int
    raw: bytes
    flags: set[str] = field(default_factory=set)


class FakeImap(LocalServer):
    def __init__(self, *, user: str = "support", password: str = "secret") -> None:
        self.user, self.password = user, password
        self.folders: dict[str, list[StoredMessage]] = {"INBOX": []}
        self.commands: list[str] = []
        self.lock = threading.Lock()
        self._next_uid = 1
        self._serve(socketserver.ThreadingTCPServer(("127.0.0.1", 0), _handler(self)))

    # --- lifecycle -----------------------------------------------------------------------

    # --- the mailbox ---------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.folders = {"INBOX": []}
            self.commands.clear()

    def add(self, raw: bytes, *, folder: str = "INBOX", seen: bool = False) -> int:
        with self.lock:
            uid = self._next_uid
            self._next_uid += 1
            flags = {"\\Seen"} if seen else set()
            self.folders.setdefault(folder, []).append(StoredMessage(uid, raw, flags))
            return uid

    def flags(self, uid: int) -> set[str]:
        with self.lock:
            for messages in self.folders.values():
                for message in messages:
                    if message.uid == uid:
                        return set(message.flags)
        raise KeyError(uid)

    def seen(self, uid: int) -> bool:
        return "\\Seen" in self.flags(uid)


_TOKEN = re.compile(rb'"((?:[^"\\]|\\.)*)"|(\((?:[^()]|\([^()]*\))*\))|([^\s()"]+)')


def _tokens(text: bytes) -> list[str]:
    out = []
    for quoted, group, atom in _TOKEN.findall(text):
        if group:
            out.append(group.decode())
        elif atom:
            out.append(atom.decode())
        else:
            out.append(re.sub(rb"\\(.)", rb"\1", quoted).decode())
    return out


def _uid_set(spec: str, uids: list[int]) -> list[int]:
    wanted: set[int] = set()
    top = max(uids, default=0)
    for part in spec.split(","):
        low, _, high = part.partition(":")
        a = top if low == "*" else int(low)
        b = a if not high else (top if high == "*" else int(high))
        wanted |= {u for u in uids if min(a, b) <= u <= max(a, b)}
    return sorted(wanted)


def _handler(imap: FakeImap) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.authenticated = False
            self.folder: str | None = None
            self.readonly = False
            self.send(b"* OK Fake IMAP4rev1 server ready")
            while line := self.rfile.readline():
                line = line.rstrip(b"\r\n")
                if not line:
                    continue
                tag, _, rest = line.partition(b" ")
                command, _, args = rest.partition(b" ")
                name = command.decode().upper()
                args_tokens = _tokens(args)
                with imap.lock:
                    imap.commands.append(
                        f"{name} {args.decode(errors='replace')}".strip()
                        if name != "LOGIN"
                        else "LOGIN ***"
                    )
                if name == "UID" and args_tokens:
                    name = "UID " + args_tokens.pop(0).upper()
                handler = getattr(self, "do_" + name.replace(" ", "_"), None)
                if handler is None:
                    self.send(tag + b" BAD Unknown command " + command)
                    continue
                try:
                    done = handler(tag, args_tokens)
                except (ValueError, IndexError) as error:
                    self.send(tag + b" BAD " + str(error).encode())
                    continue
                if done:
                    return

        def send(self, line: bytes) -> None:
            self.wfile.write(line + b"\r\n")
            self.wfile.flush()

        def ok(self, tag: bytes, text: str) -> None:
            self.send(tag + b" OK " + text.encode())

        def messages(self) -> list[StoredMessage]:
            return imap.folders.get(self.folder or "", [])

        def need_selected(self, tag: bytes) -> bool:
            if self.folder is None:
                self.send(tag + b" BAD No mailbox selected")
                return False
            return True

        # --- commands --------------------------------------------------------------------
        def do_CAPABILITY(self, tag: bytes, args: list[str]) -> None:
            self.send(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN")
            self.ok(tag, "CAPABILITY completed")

        def do_NOOP(self, tag: bytes, args: list[str]) -> None:
            self.ok(tag, "NOOP completed")

        def do_LOGIN(self, tag: bytes, args: list[str]) -> None:
            if args[:2] == [imap.user, imap.password]:
                self.authenticated = True
                self.ok(tag, "LOGIN completed")
            else:
                self.send(tag + b" NO [AUTHENTICATIONFAILED] Invalid credentials")

        def do_SELECT(self, tag: bytes, args: list[str], readonly: bool = False) -> None:
            if not self.authenticated:
                self.send(tag + b" NO Not authenticated")
                return
            if args[0] not in imap.folders:
                self.send(tag + b" NO [NONEXISTENT] No such mailbox")
                return
            self.folder, self.readonly = args[0], readonly
            with imap.lock:
                messages = self.messages()
                unseen = [i for i, m in enumerate(messages, 1) if "\\Seen" not in m.flags]
                self.send(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)")
                self.send(f"* {len(messages)} EXISTS".encode())
                self.send(b"* 0 RECENT")
                if unseen:
                    self.send(f"* OK [UNSEEN {unseen[0]}] First unseen".encode())
                self.send(b"* OK [UIDVALIDITY 1] UIDs valid")
                self.send(f"* OK [UIDNEXT {imap._next_uid}] Predicted next UID".encode())
            mode = "READ-ONLY" if readonly else "READ-WRITE"
            self.ok(tag, f"[{mode}] {'EXAMINE' if readonly else 'SELECT'} completed")

        def do_EXAMINE(self, tag: bytes, args: list[str]) -> None:
            self.do_SELECT(tag, args, readonly=True)

        def do_UID_SEARCH(self, tag: bytes, args: list[str]) -> None:
            if not self.need_selected(tag):
                return
            criteria = [a.upper() for a in args if a.upper() != "CHARSET"]
            with imap.lock:
                found = [
                    m.uid
                    for m in self.messages()
                    if ("UNSEEN" not in criteria or "\\Seen" not in m.flags)
                    and ("SEEN" not in criteria or "\\Seen" in m.flags)
                ]
            self.send(("* SEARCH " + " ".join(map(str, found))).strip().encode())
            self.ok(tag, "UID SEARCH completed")

        def do_UID_FETCH(self, tag: bytes, args: list[str]) -> None:
            if not self.need_selected(tag):
                return
            items = args[1].strip("()").upper().split()
            with imap.lock:
                messages = self.messages()
                uids = _uid_set(args[0], [m.uid for m in messages])
                for seq, message in enumerate(messages, 1):
                    if message.uid not in uids:
                        continue
                    parts = [f"UID {message.uid}".encode()]
                    body_item = next(
                        (i for i in items if i in ("RFC822", "BODY[]", "BODY.PEEK[]")), None
                    )
                    if body_item in ("RFC822", "BODY[]") and not self.readonly:
                        message.flags.add("\\Seen")  # RFC 3501 6.4.5: an implicit \Seen
                    if "FLAGS" in items or body_item in ("RFC822", "BODY[]"):
                        parts.append(f"FLAGS ({' '.join(sorted(message.flags))})".encode())
                    head = b"* %d FETCH (" % seq + b" ".join(parts)
                    if body_item:
                        name = b"RFC822" if body_item == "RFC822" else b"BODY[]"
                        self.wfile.write(head + b" %s {%d}\r\n" % (name, len(message.raw)))
                        self.wfile.write(message.raw)
                        self.send(b")")
                    else:
                        self.send(head + b")")
            self.ok(tag, "UID FETCH completed")

        def do_UID_STORE(self, tag: bytes, args: list[str]) -> None:
            if not self.need_selected(tag):
                return
            if self.readonly:
                self.send(tag + b" NO Mailbox is read-only")
                return
            mode = args[1].upper()
            flags = set(args[2].strip("()").split())
            with imap.lock:
                messages = self.messages()
                uids = _uid_set(args[0], [m.uid for m in messages])
                for seq, message in enumerate(messages, 1):
                    if message.uid not in uids:
                        continue
                    if mode.startswith("+FLAGS"):
                        message.flags |= flags
                    elif mode.startswith("-FLAGS"):
                        message.flags -= flags
                    else:
                        message.flags = set(flags)
                    if not mode.endswith(".SILENT"):
                        self.send(
                            f"* {seq} FETCH (UID {message.uid} FLAGS "
                            f"({' '.join(sorted(message.flags))}))".encode()
                        )
            self.ok(tag, "UID STORE completed")

        def do_CLOSE(self, tag: bytes, args: list[str]) -> None:
            self.folder = None
            self.ok(tag, "CLOSE completed")

        def do_LOGOUT(self, tag: bytes, args: list[str]) -> bool:
            self.send(b"* BYE Logging out")
            self.ok(tag, "LOGOUT completed")
            return True

    return Handler
