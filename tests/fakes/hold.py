"""A fault the fakes share: act on a request, then hold its answer until released, then drop it.

The worker waiting for the answer can be killed while it waits: the effect has happened at the
fake, and the worker never heard of it — the moment between an effect and its record.
"""

from __future__ import annotations

import threading

# However long a test forgets to release a hold, the fake's thread does not wait forever.
MAX_HOLD_SECONDS = 180.0


class Hold:
    def __init__(self) -> None:
        self.arrived = threading.Event()
        self._released = threading.Event()

    def wait_arrived(self, timeout: float = 120.0) -> None:
        """Block until the request has arrived and taken effect at the fake."""
        assert self.arrived.wait(timeout), f"the held request never arrived within {timeout}s"

    def release(self) -> None:
        self._released.set()

    def hold(self) -> None:
        """Called by the fake's request thread after acting; returns once released."""
        self.arrived.set()
        self._released.wait(MAX_HOLD_SECONDS)
