"""django-q2 entry points for the support desk. Safe to deliver twice."""

from support.mail.imap import imap_poll


def imap_poll_task() -> str:
    """Poll the support mailbox once (nothing happens while IMAP_HOST is empty)."""
    return imap_poll().summary()
