"""Raw-socket HTTP servers on 127.0.0.1 for the transport tests: each connection runs a script that may
drip bytes, hang, close midway or send bytes no HTTP server library would, which http.server cannot do.

    server = raw_server(drip_headers(0.2))    # the fixture starts it; teardown stops it
    fetcher(FeedRequest("t", server.url + "/x", server.url + "/x"))

A script gets a Peer (the accepted connection) and returns when it is done; the connection is closed
after it. Scripts stop early when the client goes away or the test ends.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ingest.config import FEED_KEYS, FeedSettings

_READ_BYTES = 65_536


class Peer:
    """One accepted connection, as a script sees it."""

    def __init__(self, sock: socket.socket, stop: threading.Event) -> None:
        self.sock = sock
        self.stop = stop
        self._buffer = b""

    def read_request(self) -> bytes | None:
        """The next request's head and body (by its Content-Length); None when the client closed."""
        while b"\r\n\r\n" not in self._buffer:
            data = self._recv()
            if not data:
                return None
            self._buffer += data
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            data = self._recv()
            if not data:
                return None
            rest += data
        self._buffer = rest[length:]
        return head + b"\r\n\r\n" + rest[:length]

    def send(self, data: bytes) -> bool:
        """Send it all; False when the client is gone."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def drip(self, data: bytes, interval_s: float) -> bool:
        """One byte every `interval_s`; False when the client went away or the test ended first."""
        return all(not self.stop.wait(interval_s) and self.send(data[i : i + 1]) for i in range(len(data)))

    def hang(self) -> None:
        """Send nothing until the client closes the connection (or the test ends)."""
        self.sock.settimeout(0.05)
        while not self.stop.is_set():
            try:
                if not self.sock.recv(_READ_BYTES):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def _recv(self) -> bytes:
        self.sock.settimeout(0.05)
        while not self.stop.is_set():
            try:
                return self.sock.recv(_READ_BYTES)
            except TimeoutError:
                continue
            except OSError:
                return b""
        return b""


Script = Callable[[Peer], None]


class RawServer:
    """Accepts connections on a free loopback port and runs `script` on each, in its own thread; with
    `tls`, over TLS (the handshake runs in that thread too)."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.stop = threading.Event()
        self.connections = 0
        self.requests: list[bytes] = []  # every request head a script read, in order
        self.lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, name=f"raw-server-{self.port}", daemon=True)
        self._accepter.start()

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self._accepter.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        if self.tls is not None:
            sock.settimeout(5)
            try:
                sock = self.tls.wrap_socket(sock, server_side=True)
            except OSError:  # the client gave up during the handshake
                sock.close()
                return
        peer = _RecordingPeer(sock, self.stop, self)
        with sock:
            self.script(peer)


class _RecordingPeer(Peer):
    def __init__(self, sock: socket.socket, stop: threading.Event, server: RawServer) -> None:
        super().__init__(sock, stop)
        self.server = server

    def read_request(self) -> bytes | None:
        request = super().read_request()
        if request is not None:
            with self.server.lock:
                self.server.requests.append(request.partition(b"\r\n\r\n")[0])
        return request


StartServer = Callable[..., RawServer]


def settings(**values: Any) -> FeedSettings:
    """A feed's settings with 0.5 s connect and read timeouts (a 2 s deadline) unless given."""
    base = {k.name: k.default for k in FEED_KEYS} | {"name": "drip", "kind": "readsb-v2", "base_url": ""}
    return FeedSettings(**(base | {"connect_timeout_s": 0.5, "read_timeout_s": 0.5} | values))


@pytest.fixture
def raw_server() -> Iterator[StartServer]:
    """Start a RawServer with a script (and a TLS context); every server started is stopped at teardown."""
    servers: list[RawServer] = []

    def start(script: Script, tls: ssl.SSLContext | None = None) -> RawServer:
        server = RawServer(script, tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


# -- scripts ----------------------------------------------------------------------------------------


def head(status: str = "200 OK", /, **headers: str | int) -> bytes:
    """A status line and headers (`Content_Length=3` is sent as Content-Length: 3), blank line included."""
    lines = [f"HTTP/1.1 {status}"] + [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def drip_headers(interval_s: float) -> Script:
    """A status line, then a header that never ends, one byte every `interval_s`: each gap is well inside
    any read timeout, so only a total deadline stops it."""

    def script(peer: Peer) -> None:
        if peer.read_request() is not None and peer.send(b"HTTP/1.1 200 OK\r\nX-Drip: "):
            peer.drip(b"a" * 100_000, interval_s)

    return script


def drip_body(interval_s: float, length: int = 100_000) -> Script:
    """Complete headers announcing `length` bytes, then the body one byte every `interval_s`."""

    def script(peer: Peer) -> None:
        if peer.read_request() is not None and peer.send(head(Content_Type="application/json", Content_Length=length)):
            peer.drip(b" " * length, interval_s)

    return script


def hang() -> Script:
    """Read the request and send nothing at all."""

    def script(peer: Peer) -> None:
        if peer.read_request() is not None:
            peer.hang()

    return script


def answer(raw: bytes, keep_alive: bool = False) -> Script:
    """Send `raw` (status line, headers and body as given) to each request; close after the first unless
    `keep_alive`."""

    def script(peer: Peer) -> None:
        while peer.read_request() is not None and peer.send(raw) and keep_alive:
            pass

    return script


def cut_short(body: bytes, sent: int, **headers: str | int) -> Script:
    """Announce the whole body's Content-Length, send its first `sent` bytes and close."""

    def script(peer: Peer) -> None:
        if peer.read_request() is not None:
            peer.send(head(Content_Length=len(body), **headers) + body[:sent])

    return script
