"""One webhook POST against real local sockets: the deadline, redirects, refused addresses,
and the short classes recorded for each failure."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from fglab.outbound import MAX_ANSWER, PostFailed, Refused, post, private_address
from tests.tcp import listen

BODY = b'{"event": "finished"}'
HEADERS = {"Content-Type": "application/json"}


@dataclass
class Server:
    """A TCP server on 127.0.0.1 that answers each connection with `answer(conn)`."""

    port: int = 0
    requests: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?x=1"


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Start a `Server`; `read=False`: answer at once, without reading a request."""
    listeners: list[socket.socket] = []

    def start(answer: Callable[[socket.socket], None], read: bool = True) -> Server:
        server = Server()

        def handle(conn: socket.socket) -> None:
            with conn:
                server.requests.append(read_request(conn) if read else b"")
                with contextlib.suppress(OSError):  # the client hung up (the deadline)
                    answer(conn)

        listeners.append(listen(handle))
        server.port = listeners[-1].getsockname()[1]
        return server

    yield start
    for listener in listeners:
        listener.close()


def read_request(conn: socket.socket) -> bytes:
    """The request's head and as much of its body as Content-Length says."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    length = next(
        (
            int(line.split(":", 1)[1])
            for line in head.split("\r\n")
            if line.startswith("content-length:")
        ),
        0,
    )
    while len(data.split(b"\r\n\r\n", 1)[1]) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def answers(text: str) -> Callable[[socket.socket], None]:
    return lambda conn: conn.sendall(text.encode())


def trickle(conn: socket.socket) -> None:
    """A byte of a valid answer every 0.2 s, for as long as the client reads."""
    for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"y" * 10_000:
        conn.sendall(bytes([byte]))
        time.sleep(0.2)


def test_the_answer_status_comes_back_with_the_body_and_host_sent(serve) -> None:
    server = serve(answers("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"))

    assert post(server.url, BODY, HEADERS, timeout=5) == 204

    request = server.requests[0].decode()
    assert request.startswith("POST /hook?x=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n" in request
    assert request.endswith("\r\n\r\n" + BODY.decode())


def test_a_server_that_trickles_is_cut_off_at_the_deadline_in_all(serve) -> None:
    server = serve(trickle)
    started = time.monotonic()

    with pytest.raises(PostFailed, match=r"^timed out$"):
        post(server.url, BODY, HEADERS, timeout=1.5)

    assert time.monotonic() - started < 3.0  # each byte came well within a read timeout


def test_a_redirect_is_answered_not_followed(serve) -> None:
    target = serve(answers("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    server = serve(answers(f"HTTP/1.1 302 Found\r\nLocation: {target.url}\r\n\r\n"))

    assert post(server.url, BODY, HEADERS, timeout=5) == 302
    assert target.requests == []


def test_only_so_much_of_an_answer_is_read(serve) -> None:
    huge = "HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n" + "x" * (MAX_ANSWER * 4)
    server = serve(answers(huge))

    assert post(server.url, BODY, HEADERS, timeout=5) == 200


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("HTTP/1.1 200 OK\r\n" + "X-A: b\r\n" * 200 + "\r\n", "answer too large"),
        ("HTTP/1.1 200 OK\r\nX-A: " + "b" * 70_000 + "\r\n\r\n", "answer too large"),
        ("SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP answer"),
        ("hello\r\n\r\n", "not an HTTP answer"),
    ],
)
def test_a_broken_answer_is_named_in_a_few_words(serve, answer: str, expected: str) -> None:
    server = serve(answers(answer))

    with pytest.raises(PostFailed) as failed:
        post(server.url, BODY, HEADERS, timeout=5)
    assert str(failed.value) == expected
    assert "OpenSSH" not in str(failed.value)


def test_a_closed_port_is_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(PostFailed, match=r"^connection refused$"):
        post(f"http://127.0.0.1:{port}/", BODY, HEADERS, timeout=5)


def test_https_to_a_server_that_speaks_no_tls_is_a_tls_error(serve) -> None:
    server = serve(answers("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), read=False)

    with pytest.raises(PostFailed, match=r"^TLS error$"):
        post(f"https://127.0.0.1:{server.port}/", BODY, HEADERS, timeout=5)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
def test_private_addresses_are_refused_before_any_connection(serve, host: str) -> None:
    server = serve(answers("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    url = f"http://{host}:{server.port}/"

    with pytest.raises(Refused, match=r"^refused: address .* is private$"):
        post(url, BODY, HEADERS, timeout=5, allow_private=False)
    assert server.requests == []


def test_a_name_is_connected_to_the_address_it_resolved_to_and_named_in_host(serve) -> None:
    server = serve(answers("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))

    assert post(f"http://localhost:{server.port}/", BODY, HEADERS, timeout=5) == 200
    assert f"Host: localhost:{server.port}\r\n".encode() in server.requests[0]


@pytest.mark.parametrize(
    ("address", "private"),
    [
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("127.0.0.1", True),
        ("169.254.169.254", True),  # cloud metadata
        ("100.64.0.1", True),  # carrier-grade NAT
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("::1", True),
        ("fe80::1", True),
        ("fd00::1", True),
        ("::ffff:10.0.0.1", True),
        ("8.8.8.8", False),
        ("2606:4700:4700::1111", False),
        ("example.org", False),  # a name: checked once resolved
    ],
)
def test_which_addresses_count_as_private(address: str, private: bool) -> None:
    assert (private_address(address) is not None) is private


@pytest.mark.parametrize("url", ["ftp://example.org/", "http:///path", "http://example.org:99999/"])
def test_a_url_that_is_no_http_url_is_refused(url: str) -> None:
    with pytest.raises(Refused, match=r"^bad URL"):
        post(url, BODY, HEADERS, timeout=1)
