"""django-q2 entry points for the support desk. Safe to deliver twice."""

from support.mail.imap import imap_poll


def imap_poll_task() -> str:
    """Poll the support mailbox once (nothing happens while IMAP_HOST is empty)."""
    return imap_poll().summary()


def reply_deliver_task(draft_id: int) -> str:
    """Send one reply the console queued; a repeat delivery sends nothing."""
    from support.services.replies import reply_deliver

    return reply_deliver(draft_id=draft_id)


def ticket_escalation_notify_task(ticket_id: int) -> str:
    from support.services.tickets import ticket_escalation_notify

    return f"escalation mails sent: {ticket_escalation_notify(ticket_id=ticket_id)}"
