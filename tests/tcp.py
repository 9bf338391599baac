"""A raw TCP server on 127.0.0.1 for tests that need an endpoint to misbehave exactly."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


def listen(handle: Callable[[socket.socket], None]) -> socket.socket:
    """Accept connections on a free port, each handled by `handle(conn)` in a thread of
    its own (`handle` closes it); close the returned listener to stop."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener
