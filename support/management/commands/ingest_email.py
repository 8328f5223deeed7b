"""manage.py ingest_email FILE...: read .eml and mbox files into tickets."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from agents.services.batches import batches_enabled
from support.models import Message
from support.services import ticket_ingest_email

MBOX_SUFFIXES = {".mbox", ".mbx"}


class Command(BaseCommand):
    help = (
        "Ingest mail from .eml files (one message each) and mbox files (many), printing what "
        "happened to each message. Exits non-zero when any message failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument(
            "--batch",
            action="store_true",
            help="Backlog mode: each new ticket's first model call waits for a Message Batch, at "
            "half price (AGENTS_BATCH_ENABLED must be on; docs/BACKLOG.md).",
        )

    def handle(self, *args, files: list[str], batch: bool = False, **options):
        if batch and not batches_enabled():
            raise CommandError("Backlog mode is off: set AGENTS_BATCH_ENABLED to use --batch.")
        total = failed = 0
        for name in files:
            for label, raw, problem in _messages(Path(name)):
                total += 1
                if problem:
                    failed += 1
                    self.stderr.write(f"{label}: error: {problem}")
                    continue
                result = ticket_ingest_email(raw=raw, source=Message.Source.FILE, batch=batch)
                if result.ok:
                    self.stdout.write(f"{label}: {result.describe()}")
                else:
                    failed += 1
                    self.stderr.write(f"{label}: {result.describe()}")
        if failed:
            raise CommandError(f"{failed} of {total} messages failed.")
        self.stdout.write(f"{total} message{'s' if total != 1 else ''} read.")


def _messages(path: Path) -> Iterator[tuple[str, bytes, str]]:
    """(label, raw bytes, problem) for each message in the file; problem is '' when read."""
    try:
        with path.open("rb") as handle:
            head = handle.read(5)
    except OSError as error:
        yield str(path), b"", f"cannot read the file ({error.strerror or error})"
        return
    if path.suffix.lower() not in MBOX_SUFFIXES and head != b"From ":
        yield str(path), path.read_bytes(), ""
        return
    box = mailbox.mbox(path, create=False)
    try:
        keys = box.keys()
        if not keys:
            yield str(path), b"", "the mbox file holds no messages"
        for number, key in enumerate(keys, start=1):
            yield f"{path}#{number}", box.get_bytes(key), ""
    finally:
        box.close()
