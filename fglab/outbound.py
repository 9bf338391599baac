"""One POST to a URL a user registered (a webhook), made safe to send from the server.

Whoever registers a hook chooses where FGLab connects, so an attempt is bounded in all:
one deadline covers resolving, connecting, the TLS handshake, sending and the answer (a
server that trickles a byte every few seconds is cut off at the deadline, not waited on
read by read); at most `MAX_ANSWER` bytes of the answer are read; redirects are not
followed. With private addresses refused, the host is resolved once, the address
checked, and the connection made to that very address (a second lookup could answer
differently); the request still names the host, for virtual hosts and TLS.

Failures are reported as short classes ("timed out", "connection refused"), never the
remote side's words.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as LookupTimeout
from urllib.parse import SplitResult, urlsplit

#: Most bytes of an answer read; the rest is left unread.
MAX_ANSWER = 64 * 1024

# Lookups have no timeout of their own: they run here, waited on until the deadline.
_lookups = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook-lookup")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class PostFailed(Exception):
    """The attempt got no answer; the message is a short class of what went wrong."""


class Refused(PostFailed):
    """FGLab would not send it (a private address while they are refused): not retried."""


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    allow_private: bool = True,
) -> int:
    """POST `body` to `url` within `timeout` seconds in all; the answer's HTTP status.

    Raises `Refused` for a private address when `allow_private` is false, `PostFailed`
    when no answer came.
    """
    deadline = time.monotonic() + timeout
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as e:
        raise Refused("bad URL: the port is not a number from 0 to 65535") from e
    host = parts.hostname
    if parts.scheme not in {"http", "https"} or not host:
        raise Refused("bad URL: not http(s)://host/...")
    family, address = _resolve(host, port, deadline)
    if not allow_private:
        private = private_address(address[0])
        if private:
            raise Refused(f"refused: address {private} is private")
    attempt = _Attempt(socket.socket(family, socket.SOCK_STREAM), deadline)
    try:
        return attempt.exchange(address, parts, host, port, body, headers)
    except PostFailed:
        raise
    except Exception as e:
        raise PostFailed("timed out" if attempt.cut else failure_class(e)) from e
    finally:
        attempt.close()


def private_address(text: str) -> str | None:
    """`text` (an IP address) when it is not a public one (private, loopback, link-local,
    reserved, multicast), else None; None also for a name, which is checked once resolved."""
    try:
        ip: IPAddress = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return None if ip.is_global and not ip.is_multicast else str(ip)


def failure_class(error: BaseException) -> str:
    """A short name for why an attempt failed (what the hook's history records)."""
    if isinstance(error, ssl.SSLError | ssl.CertificateError):
        return "TLS error"
    if isinstance(error, TimeoutError | LookupTimeout):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return "could not resolve host"
    if isinstance(error, http.client.LineTooLong) or "got more than" in str(error):
        return "answer too large"
    if isinstance(error, http.client.HTTPException):
        return "not an HTTP answer"
    return "connection failed"


def _resolve(host: str, port: int, deadline: float) -> tuple[int, tuple]:
    """The first address `host` resolves to, as (family, socket address)."""
    found = _lookups.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    try:
        family, _, _, _, address = found.result(timeout=_left(deadline))[0]
    except (LookupTimeout, OSError, IndexError) as e:
        raise PostFailed(failure_class(e)) from e
    return family, address


class _Attempt:
    """One connection under one deadline: a timer shuts the socket when it passes, which
    wakes a read that a trickling server would otherwise keep alive."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.cut = False
        self._timer = threading.Timer(_left(deadline), self._cut_off)
        self._timer.daemon = True
        self._timer.start()

    def exchange(
        self,
        address: tuple,
        parts: SplitResult,
        host: str,
        port: int,
        body: bytes,
        headers: dict[str, str],
    ) -> int:
        self.sock.settimeout(_left(self.deadline))
        self.sock.connect(address)
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            context = ssl.create_default_context()
            self.sock = context.wrap_socket(
                self.sock, server_hostname=host, do_handshake_on_connect=False
            )
            self.sock.do_handshake()  # under the timer, now that it holds the TLS socket
            connection = http.client.HTTPSConnection(host, port, context=context)
        else:
            connection = http.client.HTTPConnection(host, port)
        connection.sock = self.sock  # already connected, to the checked address
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.sock.settimeout(_left(self.deadline))
        try:
            connection.request("POST", target, body=body, headers=headers)
            answer = connection.getresponse()
            answer.read(MAX_ANSWER)
            return answer.status
        finally:
            connection.close()

    def close(self) -> None:
        self._timer.cancel()
        self.sock.close()

    def _cut_off(self) -> None:
        self.cut = True
        with contextlib.suppress(OSError):  # not connected yet: connect's timeout ends it
            self.sock.shutdown(socket.SHUT_RDWR)


def _left(deadline: float) -> float:
    """Seconds to the deadline; a sliver past it, so a socket call fails fast."""
    return max(0.001, deadline - time.monotonic())
