"""The support desk's console pages: tickets and their replies, the refund queue and review."""

from support.admin import refunds, tickets

__all__ = ["refunds", "tickets"]
