"""The SBS-1 stream feed: a daemon thread that reads a receiver's BaseStation port (TCP 30003) and feeds the
pure parser and assembler of sbs.py; each tick takes what arrived.

It owns the socket: it reconnects with capped exponential backoff (as pyModeS' NetworkSource), logs one
WARNING per outage and an INFO on reconnection, and skips malformed lines, counting them and logging each
kind (the field at fault) once. A silent stream counts as dead after max(read_timeout_s, 75 s): readsb and
dump1090-fa send a heartbeat every 60 s when no aircraft is heard.

Every message is timed by sbs.ReceiverClock: when the receiver's time stamp is more than
sbs.CLOCK_TOLERANCE_S (30 s) away from our receive time, the message is assembled and timed by the receive
time instead, and the stream logs one WARNING when such an episode starts ("receiver clock is N s off
ours; using receive time", with a hint about the `timezone` setting when the offset is half an hour or
more) and one INFO when the clocks agree again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import selectors
import socket
import threading
import time
from datetime import UTC, datetime

from ingest.config import FeedSettings
from ingest.errors import ConfigError, FeedUnavailable
from ingest.feeds.base import FeedContext
from ingest.feeds.sbs import (
    Assembler,
    Clock,
    ClockChange,
    ReceiverClock,
    SbsLineError,
    SbsMessage,
    parse_line,
    parse_sbs,
    rejected_line,
    resolve_timezone,
    split_lines,
)
from ingest.models import ParseResult, Rejected
from ingest.watchlist import Watchlist

log = logging.getLogger("ingest.feeds.sbs")  # one logger for the SBS feed, parser and stream

MAX_LINE_BYTES = 4_096  # a real line is under 200 bytes: more without a newline is not SBS
HEARTBEAT_SILENCE_S = 75.0  # readsb / dump1090-fa heartbeat every 60 s, plus slack
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 60.0
CLOCK_SKEW_WARN_S = 1_800.0  # message times this far from our clock: perhaps the timezone setting is wrong
_POLL_S = 0.25  # how often a blocked connect or recv looks at the stop flag
_RECV_BYTES = 65_536


class _Stopped(Exception):
    """stop() was called while connecting."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return str(exc) or "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class SbsFeed:
    """A receiver's BaseStation port, read by a daemon thread; `take(now)` at each tick.

    `start()` once, `take(now)` every `interval_s`, `stop()` at shutdown. A StreamFeed (base.py), not a
    polled FeedSource: it has no requests. ConfigError at construction for an empty host or unknown zone.
    """

    def __init__(
        self,
        settings: FeedSettings,
        context: FeedContext,
        *,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        clock: Clock = _utcnow,
    ) -> None:
        self.name = settings.name
        self.settings = settings
        key = f"feeds[{settings.index}]"
        if not settings.host.strip():
            raise ConfigError(f"{key}.host", "config", "an sbs feed needs the receiver's host")
        try:
            self._tz = resolve_timezone(settings.timezone)
        except ValueError as exc:
            raise ConfigError(f"{key}.timezone", "config", str(exc)) from None
        self._address = (settings.host.strip(), settings.port)
        self.url = f"tcp://{settings.host.strip()}:{settings.port}"
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._silence_s = max(settings.read_timeout_s, HEARTBEAT_SILENCE_S)
        self._clock = clock
        self._lock = threading.Lock()
        self._assembler = Assembler(self.name, wanted=context.watchlist.wants)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        # Under the lock: connection state as take() sees it.
        self._connected = False
        self._up_this_window = False  # connected at some moment since the last take
        self._down_reason = "not connected yet"
        # Reader thread only.
        self._logged_kinds: set[str] = set()
        self._receiver_clock = ReceiverClock()
        self._warned_drops = False
        self.lines = 0  # lines read since start (heartbeats included), for stats
        self.rejected = 0  # of which rejected

    def parse(self, body: bytes, received_at: datetime) -> ParseResult:
        """A recorded capture of this receiver's SBS output (e.g. `nc host 30003 > file`), read with this
        feed's timezone."""
        return parse_sbs(body, feed=self.name, tz=self._tz, received_at=received_at)

    # StreamFeed ---------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._connected

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"sbs-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        with self._lock:
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv at once
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("feed %s: reader thread still running %.0f s after stop", self.name, timeout_s)
            self._thread = None

    def use_watchlist(self, watchlist: Watchlist) -> None:
        """Keep another list's aircraft from the next message on (the daemon reloaded its watchlist)."""
        with self._lock:
            self._assembler.use_wanted(watchlist.wants)

    def take(self, now: datetime) -> ParseResult:
        with self._lock:
            was_up = self._up_this_window or self._connected
            self._up_this_window = self._connected
            reason = self._down_reason
            result = self._assembler.take(now)
        if not was_up:
            raise FeedUnavailable(self.name, self.url, reason)
        return result

    # reader thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        backoff_s = self._backoff_initial_s
        outage_since: float | None = None
        attempts = 0
        ever_connected = False
        while not self._stop.is_set():
            try:
                sock = self._connect()
            except _Stopped:
                break
            except OSError as exc:
                attempts += 1
                reason = f"cannot connect: {_reason(exc)}"
                if outage_since is None:
                    outage_since = time.monotonic()
                    self._set_down(reason, warn=f"feed {self.name}: {self.url} unreachable: {reason}", wait=backoff_s)
                else:
                    self._set_down(reason, debug_attempts=attempts)
                if self._stop.wait(backoff_s):
                    break
                backoff_s = min(backoff_s * 2, self._backoff_max_s)
                continue
            if outage_since is not None:
                log.info(
                    "feed %s: reconnected to %s after %.0f s (%d failed attempts)",
                    self.name, self.url, time.monotonic() - outage_since, attempts,
                    extra={"event": "feed_recovered", "feed": self.name, "failures": attempts},
                )  # fmt: skip
            elif not ever_connected:
                log.info(
                    "feed %s: connected to %s",
                    self.name,
                    self.url,
                    extra={"event": "feed_connected", "feed": self.name},
                )
            ever_connected = True
            outage_since, attempts = None, 0
            with self._lock:
                self._sock = sock
                self._connected = self._up_this_window = True
            try:
                reason, got_data = self._read(sock)
            except OSError as exc:
                reason, got_data = f"connection lost: {_reason(exc)}", True
            finally:
                with self._lock:
                    self._sock = None
                    self._connected = False
                sock.close()
            if self._stop.is_set():
                break
            if got_data:
                backoff_s = self._backoff_initial_s  # a working connection resets the backoff
            outage_since = time.monotonic()
            self._set_down(reason, warn=f"feed {self.name}: {self.url} {reason}", wait=backoff_s)
            if self._stop.wait(backoff_s):
                break
            backoff_s = min(backoff_s * 2, self._backoff_max_s)
        with self._lock:
            self._connected = False
            self._down_reason = "stopped"

    def _set_down(self, reason: str, warn: str | None = None, wait: float = 0.0, debug_attempts: int = 0) -> None:
        with self._lock:
            self._connected = False
            self._down_reason = reason
        if warn is not None:
            log.warning(
                "%s; retrying in %.3g s, backing off to %.0f s", warn, wait, self._backoff_max_s,
                extra={"event": "feed_failed", "feed": self.name, "reason": reason, "next_try_s": round(wait)},
            )  # fmt: skip
        else:
            log.debug("feed %s: still down after %d attempts: %s", self.name, debug_attempts, reason)

    def _connect(self) -> socket.socket:
        """A connected socket, within connect_timeout_s; gives up at once when stop() is called."""
        deadline = time.monotonic() + self.settings.connect_timeout_s
        error: OSError = OSError("no address")
        for family, kind, proto, _, address in socket.getaddrinfo(*self._address, type=socket.SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                code = sock.connect_ex(address)
                if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                    raise OSError(code, os.strerror(code))
                with selectors.DefaultSelector() as selector:
                    selector.register(sock, selectors.EVENT_WRITE)
                    while not selector.select(min(_POLL_S, max(0.0, deadline - time.monotonic()))):
                        if self._stop.is_set():
                            raise _Stopped
                        if time.monotonic() >= deadline:
                            raise TimeoutError(f"connect timed out after {self.settings.connect_timeout_s:g} s")
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(code, os.strerror(code))
                sock.setblocking(True)
                sock.settimeout(_POLL_S)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                return sock
            except _Stopped:
                sock.close()
                raise
            except OSError as exc:
                sock.close()
                error = exc
        raise error

    def _read(self, sock: socket.socket) -> tuple[str, bool]:
        """Read until the peer closes, the stream falls silent or stop(); (why it ended, any line read)."""
        buffer = b""
        last_data = time.monotonic()
        got_data = False
        while not self._stop.is_set():
            try:
                chunk = sock.recv(_RECV_BYTES)
            except TimeoutError:
                if time.monotonic() - last_data > self._silence_s:
                    return f"silent for {self._silence_s:.0f} s", got_data
                continue
            if not chunk:
                return "closed the connection", got_data
            last_data = time.monotonic()
            lines, buffer = split_lines(buffer + chunk)
            if len(buffer) > MAX_LINE_BYTES:
                lines.append(buffer.decode("ascii", "replace"))  # rejected below: not an SBS line
                buffer = b""
            if lines:
                got_data = True
                self._ingest(lines)
        return "stopped", got_data

    def _ingest(self, lines: list[str]) -> None:
        """Parse outside the lock, merge under it; log each new kind of bad line once."""
        received_at = self._clock()
        messages: list[SbsMessage] = []
        rejected: list[Rejected] = []
        for line in lines:
            try:
                msg = parse_line(line, self._tz)
            except SbsLineError as exc:
                rejected.append(rejected_line(exc, line))
                continue
            if msg is not None:
                msg, change = self._receiver_clock.stamp(msg, received_at)
                if change is not None:
                    self._log_clock(change)
                messages.append(msg)
        with self._lock:
            for msg in messages:
                self._assembler.add(msg)
            for item in rejected:
                self._assembler.reject(item)
            dropped = self._assembler.dropped_observations
        self.lines += len(lines)
        self.rejected += len(rejected)
        for item in rejected:
            if item.field not in self._logged_kinds:
                self._logged_kinds.add(item.field)
                log.warning(
                    "feed %s: skipped a malformed SBS line (%s): %s", self.name, item.reason, item.raw,
                    extra={"event": "record_rejected", "feed": self.name, "reason": item.reason},
                )  # fmt: skip
        if dropped and not self._warned_drops:
            self._warned_drops = True
            log.warning("feed %s: positions dropped: take() is not called often enough", self.name)

    def _log_clock(self, change: ClockChange) -> None:
        if not change.off:
            log.info(
                "feed %s: receiver clock agrees with ours again (%+.1f s); using its times", self.name, change.offset_s,
                extra={"event": "receiver_clock_ok", "feed": self.name},
            )  # fmt: skip
            return
        hint = ""
        if math.fabs(change.offset_s) > CLOCK_SKEW_WARN_S:
            hint = (
                f" ({change.offset_s / 3600:+.1f} h: is timezone = {self.settings.timezone!r} right? readsb writes"
                " UTC, dump1090-fa the receiver's local time)"
            )
        log.warning(
            "feed %s: receiver clock is %+.0f s off ours; using receive time%s", self.name, change.offset_s, hint,
            extra={"event": "receiver_clock_off", "feed": self.name},
        )  # fmt: skip
