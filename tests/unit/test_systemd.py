"""ingest/systemd.py against a real unix datagram socket, as systemd listens on $NOTIFY_SOCKET."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest import systemd


class Listener:
    """A bound AF_UNIX datagram socket, systemd's end; `messages()` reads what arrived."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.05)

    def messages(self, wait_s: float = 0.0) -> list[str]:
        got: list[str] = []
        deadline = time.monotonic() + wait_s
        while True:
            try:
                got.append(self.sock.recv(4096).decode())
            except TimeoutError:
                if time.monotonic() >= deadline:
                    return got


@pytest.fixture
def listener() -> Iterator[tuple[Listener, dict[str, str]]]:
    # A short path: sun_path holds 108 bytes, and pytest's tmp_path can be longer.
    folder = Path(tempfile.mkdtemp(prefix="sd-", dir="/tmp"))
    path = str(folder / "notify")
    lst = Listener(path)
    try:
        yield lst, {"NOTIFY_SOCKET": path}
    finally:
        lst.sock.close()
        os.unlink(path)
        folder.rmdir()


def test_nothing_is_sent_outside_systemd() -> None:
    assert systemd.notify("READY=1", {}) is False
    assert systemd.notify("READY=1", {"NOTIFY_SOCKET": "vsock:2:1234"}) is False  # a kind we do not speak
    assert systemd.start(lambda: None, {}) is None


def test_notify_sends_one_datagram(listener: tuple[Listener, dict[str, str]]) -> None:
    lst, env = listener
    assert systemd.notify("READY=1\nSTATUS=polling", env) is True
    assert lst.messages() == ["READY=1\nSTATUS=polling"]


def test_abstract_socket_names_start_with_at() -> None:
    name = f"ingest-test-{uuid.uuid4().hex}"
    lst = Listener("\0" + name)
    try:
        assert systemd.notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert lst.messages() == ["WATCHDOG=1"]
    finally:
        lst.sock.close()


def test_a_socket_that_is_gone_is_no_error(tmp_path: Path) -> None:
    assert systemd.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody")}) is False


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # another process is watched
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(env: dict[str, str], expected: float | None) -> None:
    assert systemd.watchdog_interval_s({"NOTIFY_SOCKET": "/run/systemd/notify", **env}) == expected
    assert systemd.watchdog_interval_s(env) is None  # no socket, no watchdog


def test_watchdog_pings_only_while_alive_and_says_so_once(
    listener: tuple[Listener, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    lst, env = listener
    problem: list[str | None] = [None]
    caplog.set_level(logging.INFO, logger="ingest.systemd")
    dog = systemd.start(lambda: problem[0], {**env, "WATCHDOG_USEC": "100000"})  # a ping every 50 ms
    assert dog is not None and dog.interval_s == 0.05
    try:
        first = lst.messages(wait_s=0.3)
        assert first[0] == "READY=1\nSTATUS=polling"
        assert first[1:] and set(first[1:]) == {"WATCHDOG=1"}

        problem[0] = "the database writer has been stuck in one job for 130 s"
        lst.messages(wait_s=0.1)  # a ping may have been on its way
        assert lst.messages(wait_s=0.3) == []
        stuck = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(stuck) == 1 and "stuck in one job for 130 s" in stuck[0].getMessage()

        problem[0] = None
        assert "WATCHDOG=1" in lst.messages(wait_s=0.3)
        assert any("pinging systemd again" in r.getMessage() for r in caplog.records)
    finally:
        systemd.stopping(dog, env)
    assert not dog.is_alive()
    assert lst.messages(wait_s=0.2)[-1] == "STOPPING=1\nSTATUS=stopping"
    assert lst.messages(wait_s=0.2) == []  # the thread has ended: no ping after STOPPING


def test_a_failing_check_stops_the_pings(listener: tuple[Listener, dict[str, str]]) -> None:
    lst, env = listener

    def broken() -> str | None:
        raise RuntimeError("no")

    dog = systemd.Watchdog(0.02, broken, env)
    dog.start()
    try:
        assert lst.messages(wait_s=0.2) == []
    finally:
        dog.stop()
    assert not dog.is_alive()
