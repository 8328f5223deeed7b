"""The accounts service the shop asks about a user: its raw JSON reply."""

from urllib.request import urlopen

ACCOUNTS_URL = "http://accounts.internal/v2/users/{user_id}"


def account_reply(user_id: int) -> bytes:
    with urlopen(ACCOUNTS_URL.format(user_id=user_id), timeout=5) as reply:
        return reply.read()
