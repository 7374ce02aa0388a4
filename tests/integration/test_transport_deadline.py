"""The transport's hard total deadline and Fetcher.abort(), through real sockets on 127.0.0.1.

A feed that drips one byte every 0.2 s never trips a 0.5 s read timeout; only the total deadline
(connect + 3 x read timeout, ingest/feeds/transport.py) ends the request, in every phase: connect,
status line and headers, body, the OAuth2 token POST. abort() ends it at once from another thread.
"""

from __future__ import annotations

import functools
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from ingest.errors import FeedUnavailable
from ingest.feeds import transport
from ingest.feeds.base import FeedRequest
from ingest.feeds.hosts import KNOWN_HOSTS, HostLimit
from ingest.feeds.transport import Fetcher
from tests.integration.drip import (
    Peer,
    RawServer,
    StartServer,
    answer,
    cut_short,
    drip_body,
    drip_headers,
    hang,
    head,
    raw_server,
    settings,
)  # fmt: skip

__all__ = ["raw_server"]  # the fixture, used by name

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DRIP_S = 0.2  # one byte this often: well inside every read timeout below
OK = head(Content_Type="application/json", Content_Length=9) + b'{"ac":[]}'


def request(server: RawServer, path: str = "/v2/hex/ae01d2") -> FeedRequest:
    url = server.url + path
    return FeedRequest("drip", url, url)


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    """Deadline 0.5 + 3 x 0.5 = 2 s."""
    f = Fetcher(settings(), "ingest-test/1")
    yield f
    f.close()


def failure(call: Callable[[], object]) -> tuple[FeedUnavailable, float]:
    """The FeedUnavailable that `call` raises, and how long it took."""
    t0 = time.monotonic()
    with pytest.raises(FeedUnavailable) as info:
        call()
    return info.value, time.monotonic() - t0


# -- the deadline ----------------------------------------------------------------------------------


@pytest.mark.parametrize("script", [drip_headers(DRIP_S), drip_body(DRIP_S)], ids=["headers", "body"])
def test_a_feed_that_drips_fails_at_the_deadline(
    script: Callable[[Peer], None], raw_server: StartServer, fetcher: Fetcher
) -> None:
    server = raw_server(script)
    exc, took_s = failure(lambda: fetcher(request(server)))
    assert fetcher.deadline_s == 2.0
    assert 1.9 <= took_s < fetcher.deadline_s + 1
    assert exc.reason == "timeout (no complete answer within 2 s)"
    assert exc.feed == "drip" and exc.url == request(server).safe_url


def test_a_body_dripped_over_tls_fails_at_the_deadline(
    raw_server: StartServer, fetcher: Fetcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # socket.socket.shutdown on the SSLSocket ends the blocked TLS read as it does a plain one.
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    server = raw_server(drip_body(DRIP_S), tls=server_ctx)
    exc, took_s = failure(lambda: fetcher(request(server)))
    assert 1.9 <= took_s < fetcher.deadline_s + 1
    assert exc.reason == "timeout (no complete answer within 2 s)"


def test_the_deadline_holds_through_an_http_proxy(
    raw_server: StartServer, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = raw_server(drip_headers(DRIP_S))  # a proxy that drips whatever it is asked for
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, proxy.url)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    url = "http://feed.invalid/v2/hex/ae01d2"
    exc, took_s = failure(lambda: fetcher(FeedRequest("drip", url, url)))
    assert proxy.requests and proxy.requests[0].startswith(b"GET http://feed.invalid/")
    assert took_s < fetcher.deadline_s + 1
    assert exc.reason == "timeout (no complete answer within 2 s)"


def fill_accept_queue(port: int) -> list[socket.socket]:
    """Connect to a listener that never accepts until a connect hangs (kept 0.3 s, then dropped)."""
    fillers: list[socket.socket] = []
    while len(fillers) < 10:
        probe = socket.socket()
        probe.settimeout(0.3)
        try:
            probe.connect(("127.0.0.1", port))
        except TimeoutError:
            probe.close()
            return fillers
        fillers.append(probe)
    for s in fillers:
        s.close()
    pytest.fail("the listener's accept queue never filled: connects do not hang on this machine")


def test_a_connect_that_hangs_ends_at_the_deadline_not_after_three_attempts(raw_server: StartServer) -> None:
    # A listener whose accept queue is full drops further SYNs: connect() hangs. Three attempts of 0.8 s
    # and the 1 s backoff would take 3.4 s; the 1.1 s deadline clamps the second and refuses the third.
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        port = listener.getsockname()[1]
        fillers = fill_accept_queue(port)
        f = Fetcher(settings(connect_timeout_s=0.8, read_timeout_s=0.1), "ingest-test/1")
        url = f"http://127.0.0.1:{port}/v2/hex/ae01d2"
        try:
            exc, took_s = failure(lambda: f(FeedRequest("drip", url, url)))
        finally:
            f.close()
            for s in fillers:
                s.close()
    assert 1.0 <= took_s < 1.1 + 1
    assert exc.reason == "timeout (no complete answer within 1.1 s)"


def test_a_silent_server_fails_on_the_read_timeout(raw_server: StartServer, fetcher: Fetcher) -> None:
    exc, took_s = failure(lambda: fetcher(request(raw_server(hang()))))
    assert 0.45 <= took_s < 1.5
    assert exc.reason == "timeout (no answer within the 0.5 s read timeout)"


def test_a_body_cut_short_says_so(raw_server: StartServer, fetcher: Fetcher) -> None:
    body = b'{"ac":[' + b" " * 993
    exc, _ = failure(lambda: fetcher(request(raw_server(cut_short(body, 400)))))
    assert exc.reason == "body cut short: the connection closed after 400 of 1000 bytes"


def test_the_token_post_has_the_same_deadline(raw_server: StartServer, fetcher: Fetcher) -> None:
    server = raw_server(drip_body(DRIP_S, length=1000))  # under the 64 KiB token cap
    url = server.url + "/token"
    exc, took_s = failure(lambda: fetcher.post_form("drip", url, {"client_secret": "s3cret"}, "OpenSky"))
    assert 1.9 <= took_s < fetcher.deadline_s + 1
    assert exc.reason == "OpenSky token request failed: timeout (no complete answer within 2 s)"
    assert "s3cret" not in str(exc)


def test_keep_alive_is_reused_and_a_cut_connection_is_not(raw_server: StartServer, fetcher: Fetcher) -> None:
    def script(peer: Peer) -> None:
        while (req := peer.read_request()) is not None:
            if b"/slow" in req:
                peer.drip(b"HTTP/1.1 200 OK\r\nX-Drip: " + b"a" * 1000, DRIP_S)
                return
            if not peer.send(OK):
                return

    server = raw_server(script)
    assert fetcher(request(server, "/fast")).body == b'{"ac":[]}'
    assert fetcher(request(server, "/fast")).body == b'{"ac":[]}'
    assert server.connections == 1  # the second request went over the first connection
    exc, _ = failure(lambda: fetcher(request(server, "/slow")))  # also over that connection: cut
    assert exc.reason.startswith("timeout")
    assert fetcher(request(server, "/fast")).body == b'{"ac":[]}'
    assert server.connections == 2  # the cut connection was dropped, not reused
    assert [r.split(b" ")[1] for r in server.requests] == [b"/fast", b"/fast", b"/slow", b"/fast"]


# -- abort -----------------------------------------------------------------------------------------


def fetch_in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def abort_and_time(f: Fetcher, thread: threading.Thread) -> float:
    t0 = time.monotonic()
    f.abort()
    thread.join(timeout=5)
    assert not thread.is_alive()
    return time.monotonic() - t0


@pytest.mark.parametrize(
    "script", [drip_headers(DRIP_S), drip_body(DRIP_S), hang()], ids=["drip headers", "drip body", "silent"]
)
def test_abort_cuts_the_fetch_in_flight_at_once(script: Callable[[Peer], None], raw_server: StartServer) -> None:
    server = raw_server(script)
    f = Fetcher(settings(connect_timeout_s=5, read_timeout_s=10), "ingest-test/1")  # deadline 35 s
    try:
        thread, errors = fetch_in_thread(lambda: f(request(server)))
        time.sleep(0.6)
        took_s = abort_and_time(f, thread)
    finally:
        f.close()
    assert took_s < 0.5
    assert len(errors) == 1 and isinstance(errors[0], FeedUnavailable)
    assert errors[0].reason == "stopped"


def test_abort_cuts_a_token_post(raw_server: StartServer) -> None:
    server = raw_server(drip_body(DRIP_S, length=1000))
    f = Fetcher(settings(connect_timeout_s=5, read_timeout_s=10), "ingest-test/1")
    try:
        thread, errors = fetch_in_thread(lambda: f.post_form("drip", server.url + "/token", {}, "OpenSky"))
        time.sleep(0.6)
        assert abort_and_time(f, thread) < 0.5
    finally:
        f.close()
    assert isinstance(errors[0], FeedUnavailable) and errors[0].reason == "stopped"


def test_abort_during_a_hanging_connect_waits_for_that_attempt_only() -> None:
    # urllib3 shows the socket only once connected: abort() cannot cut the attempt in progress, but it
    # ends when its connect timeout does (1 s here, not 3 attempts and a backoff), never reaching the 31 s
    # deadline.
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        port = listener.getsockname()[1]
        fillers = fill_accept_queue(port)
        f = Fetcher(settings(connect_timeout_s=1.0, read_timeout_s=10), "ingest-test/1")
        url = f"http://127.0.0.1:{port}/v2/hex/ae01d2"
        try:
            thread, errors = fetch_in_thread(lambda: f(FeedRequest("drip", url, url)))
            time.sleep(0.3)
            took_s = abort_and_time(f, thread)
        finally:
            f.close()
            for s in fillers:
                s.close()
    assert took_s < 1.0
    assert isinstance(errors[0], FeedUnavailable) and errors[0].reason == "stopped"


def test_after_abort_every_call_fails_without_network_io(raw_server: StartServer) -> None:
    server = raw_server(answer(OK, keep_alive=True))
    f = Fetcher(settings(client_id="me", client_secret="s3cret"), "ingest-test/1")
    try:
        f.abort()
        f.abort()  # idempotent
        assert f.stopped
        for req in (
            request(server),
            FeedRequest("drip", server.url + "/a", server.url + "/a", bearer_token_url=server.url + "/token"),
            FeedRequest("drip", "/nonexistent/aircraft.json", "/nonexistent/aircraft.json"),
        ):
            exc, took_s = failure(functools.partial(f, req))
            assert exc.reason == "stopped" and took_s < 0.1
        exc, _ = failure(lambda: f.post_form("drip", server.url + "/token", {}))
        assert exc.reason == "stopped"
    finally:
        f.close()
    assert server.connections == 0


@pytest.fixture
def gated_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """127.0.0.1 as a known public host that may be asked once every 30 s, with fresh gates."""
    monkeypatch.setitem(KNOWN_HOSTS, "127.0.0.1", HostLimit(30.0, "test"))
    monkeypatch.setattr(transport, "_GATES", {})


def test_abort_ends_the_wait_for_a_host_s_spacing(raw_server: StartServer, gated_loopback: None) -> None:
    server = raw_server(answer(OK, keep_alive=True))
    f = Fetcher(settings(), "ingest-test/1")
    try:
        f(request(server))  # the host's 30 s start now
        thread, errors = fetch_in_thread(lambda: f(request(server)))
        time.sleep(0.3)
        assert thread.is_alive()  # waiting for the spacing
        assert abort_and_time(f, thread) < 0.5
    finally:
        f.close()
    assert isinstance(errors[0], FeedUnavailable) and errors[0].reason == "stopped"
    assert len(server.requests) == 1


def test_abort_ends_the_wait_behind_another_feed_s_request(raw_server: StartServer, gated_loopback: None) -> None:
    server = raw_server(drip_body(DRIP_S))
    busy, waiting = (Fetcher(settings(connect_timeout_s=5, read_timeout_s=10), "ingest-test/1") for _ in range(2))
    try:
        busy_thread, busy_errors = fetch_in_thread(lambda: busy(request(server)))
        time.sleep(0.3)
        thread, errors = fetch_in_thread(lambda: waiting(request(server)))
        time.sleep(0.3)
        assert abort_and_time(waiting, thread) < 0.5
        assert busy_thread.is_alive()  # the other feed's request goes on
        assert abort_and_time(busy, busy_thread) < 0.5
    finally:
        busy.close()
        waiting.close()
    assert [e.reason for e in errors + busy_errors if isinstance(e, FeedUnavailable)] == ["stopped", "stopped"]
    assert server.connections == 1
