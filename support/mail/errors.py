"""The mail package's exceptions."""


class InvalidEmail(ValueError):
    """The bytes are not a message we can read: empty, no From address, or not mail at all."""


class MailboxError(Exception):
    """The IMAP mailbox could not be reached or read; the message says why."""
