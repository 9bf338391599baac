"""A TCP proxy for outage tests: forwards one port to a service and can cut it off.

``down()`` stops listening (new connections are refused) and closes every forwarded
connection; ``up()`` listens again on the same port. Threads only, so a test drives it
directly from its own process.
"""

from __future__ import annotations

import contextlib
import socket
import threading

#: Seconds the accept loop waits before checking whether it should stop.
ACCEPT_POLL = 0.05


class _Pair:
    """One forwarded connection: the client's socket and the upstream one."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.sockets = (client, upstream)
        self._lock = threading.Lock()
        self._open_pumps = 2

    def cut(self) -> None:
        """Wake both pumps (their recv returns); the last one closes the sockets."""
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def pump_ended(self) -> bool:
        """Count a pump out; True for the last one, which then closes both sockets."""
        with self._lock:
            self._open_pumps -= 1
            last = self._open_pumps == 0
        if last:
            for sock in self.sockets:
                sock.close()
        return last


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``target``; ``down()``/``up()`` cut and restore it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.accepted = 0
        self._lock = threading.Lock()
        self._pairs: set[_Pair] = set()
        self._pumps: set[threading.Thread] = set()
        self._stop = threading.Event()
        self._acceptor: threading.Thread | None = None

    def uri(self, query: str = "directConnection=true") -> str:
        """A MongoDB URI that goes through the proxy."""
        return f"mongodb://127.0.0.1:{self.port}/?{query}"

    def up(self) -> TcpProxy:
        """Listen (again, on the same port once one was chosen) and forward."""
        if self._acceptor is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
        except OSError:
            listener.close()
            raise
        listener.settimeout(ACCEPT_POLL)
        self.port = listener.getsockname()[1]
        self._stop = threading.Event()
        self._acceptor = threading.Thread(
            target=self._accept, args=(listener, self._stop), name="proxy-accept", daemon=True
        )
        self._acceptor.start()
        return self

    def down(self) -> None:
        """Refuse new connections and close the forwarded ones; returns once all are shut."""
        if self._acceptor is not None:
            self._stop.set()
            self._acceptor.join(timeout=10)
            self._acceptor = None
        with self._lock:
            pairs, pumps = list(self._pairs), list(self._pumps)
        for pair in pairs:
            pair.cut()
        for pump in pumps:
            pump.join(timeout=10)

    close = down

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        with listener:
            while not stop.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                self._forward(client)

    def _forward(self, client: socket.socket) -> None:
        client.settimeout(None)
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        pair = _Pair(client, upstream)
        with self._lock:
            self.accepted += 1
            self._pairs.add(pair)
            for source, sink in ((client, upstream), (upstream, client)):
                pump = threading.Thread(
                    target=self._pump, args=(pair, source, sink), name="proxy-pump", daemon=True
                )
                self._pumps.add(pump)
                pump.start()

    def _pump(self, pair: _Pair, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            pair.cut()  # one side ended: end the other too
            with self._lock:
                self._pumps.discard(threading.current_thread())
                if pair.pump_ended():
                    self._pairs.discard(pair)
