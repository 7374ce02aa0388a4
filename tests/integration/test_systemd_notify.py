"""`ingest run` under systemd's notify protocol, as a real process talking to a real unix datagram socket
(what systemd binds for $NOTIFY_SOCKET): READY=1 once it polls, WATCHDOG=1 at half of $WATCHDOG_USEC while
it runs, STOPPING=1 on SIGTERM and no ping after it."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ConfigWriter
from tests.integration.conftest import Daemon, FeedServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    folder = Path(tempfile.mkdtemp(prefix="sd-", dir="/tmp"))  # sun_path holds 108 bytes
    path = str(folder / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    try:
        yield sock, path
    finally:
        sock.close()
        os.unlink(path)
        folder.rmdir()


def receive(sock: socket.socket, until: str, timeout_s: float = 20) -> list[tuple[float, str]]:
    """Datagrams (monotonic arrival time, text) up to and including the first that contains `until`."""
    got: list[tuple[float, str]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            text = sock.recv(4096).decode()
        except TimeoutError:
            break
        got.append((time.monotonic(), text))
        if until in text:
            return got
    pytest.fail(f"no {until!r} within {timeout_s} s; got {got}")


def test_ready_watchdog_and_stopping(
    notify_socket: tuple[socket.socket, str], feed_server: FeedServer, write_config: ConfigWriter,
    daemons: list[Daemon],
) -> None:  # fmt: skip
    sock, path = notify_socket
    config = write_config([{"name": "loopback", "kind": "readsb-v2", "base_url": feed_server.url, "interval_s": 1}])
    daemon = Daemon(config, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "600000"})  # a ping every 0.3 s
    daemons.append(daemon)
    first = receive(sock, "READY=1")
    assert [text for _, text in first] == ["READY=1\nSTATUS=polling"]
    assert (daemon.query("SELECT count(*) FROM daemons") or 0) == 1  # ready means the database is open
    pings = receive(sock, "WATCHDOG=1") + receive(sock, "WATCHDOG=1") + receive(sock, "WATCHDOG=1")
    assert [text for _, text in pings] == ["WATCHDOG=1"] * 3
    # Paced, not a burst: the first ping goes at once, the next two 0.3 s apart each.
    assert pings[-1][0] - first[0][0] > 0.3, (first, pings)

    daemon.proc.terminate()
    rest = receive(sock, "STOPPING=1")
    assert rest[-1][1] == "STOPPING=1\nSTATUS=stopping"
    assert daemon.proc.wait(timeout=10) == 0
    sock.settimeout(0.5)
    with pytest.raises(TimeoutError):
        sock.recv(4096)  # nothing after STOPPING=1: the watchdog thread stopped first


def test_the_watchdog_check_sees_a_stuck_writer_and_dead_threads(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scheduler._liveness, what the watchdog asks before each ping, over a real Writer on a real SQLite file:
    a job that does not return makes it `stuck`, past _WRITER_STUCK_S; a dead thread is named."""
    from ingest import scheduler
    from ingest.app import build_app
    from ingest.config import load

    app = build_app(load(write_config([]), environ={}))
    writer = scheduler.Writer(app, scheduler.utc_now)
    writer.open()
    jobs = scheduler.BackgroundScheduler()
    jobs.start()
    clock = scheduler.SortieClock(writer, scheduler.utc_now, 60)
    clock.start()
    check = scheduler._liveness(writer, jobs, clock)
    release = threading.Event()
    try:
        assert check() is None and writer.stuck_s() < 0.2  # idle, or in one of its own short steps (retention)
        writer.submit(lambda store: release.wait(30))
        time.sleep(0.3)
        assert 0.2 < writer.stuck_s() < 5
        assert check() is None  # busy, not yet stuck
        with monkeypatch.context() as m:
            m.setattr(scheduler, "_WRITER_STUCK_S", 0.1)
            assert (check() or "").startswith("the database writer has been stuck in one job for ")
        release.set()
        deadline = time.monotonic() + 5
        while writer.stuck_s() > 0.2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert check() is None
        jobs.shutdown()
        assert check() == "the poll scheduler has stopped"
    finally:
        release.set()
        clock.stop()
        writer.close()
    assert check() == "the database writer thread has died"
