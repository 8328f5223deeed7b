"""What every fake shares: a server on a free local port, served from a daemon thread."""

from __future__ import annotations

import socketserver
import threading
from typing import Self


class LocalServer:
    """Start, stop and address a fake's server; each fake makes its server and calls `_serve`."""

    _server: socketserver.BaseServer
    _thread: threading.Thread

    def _serve(self, server: socketserver.BaseServer, *, poll: float = 0.05) -> None:
        # A short poll keeps stop() quick, so each test can have a server of its own.
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": poll}, daemon=True
        )

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"
