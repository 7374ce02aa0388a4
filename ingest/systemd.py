"""systemd's service notifications (sd_notify), for `Type=notify` and `WatchdogSec=` in deploy/ingest.service.

The protocol is one datagram of `KEY=VALUE` lines to the unix socket named by $NOTIFY_SOCKET (a path, or an
abstract name written with a leading `@`); no library is needed. Outside systemd the variable is unset
and every call here does nothing.

- `READY=1` once the daemon has opened its database and started its jobs;
- `WATCHDOG=1` every half of $WATCHDOG_USEC from a `Watchdog` thread, but only while `alive()` says the
  writer and the scheduler still work: a daemon that hangs stops pinging, and systemd kills and restarts it;
- `STOPPING=1` when a stop begins; `STATUS=...` says what the daemon is doing, for `systemctl status`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

_MAX_WATCHDOG_S = 3600.0  # a WATCHDOG_USEC beyond this is a mistake; ping at least this often anyway


def _address(environ: Mapping[str, str]) -> str | None:
    path = environ.get("NOTIFY_SOCKET", "")
    if not path or not path.startswith(("/", "@")):
        return None  # unset, or a kind we do not speak (vsock: systemd 254+, for VMs)
    return "\0" + path[1:] if path.startswith("@") else path


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `message` (e.g. "READY=1") to systemd; False when not run by systemd or the socket is gone."""
    address = _address(os.environ if environ is None else environ)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
    except OSError as exc:
        log.debug("sd_notify %r failed: %s", message, exc)
        return False
    return True


def watchdog_interval_s(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """How often to ping: half of $WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; None when systemd asks
    for no watchdog, or asks another process ($WATCHDOG_PID)."""
    env = os.environ if environ is None else environ
    usec, owner = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or _address(env) is None:
        return None
    if owner and (not owner.isdigit() or int(owner) != (os.getpid() if pid is None else pid)):
        return None
    return min(int(usec) / 2e6, _MAX_WATCHDOG_S)


class Watchdog(threading.Thread):
    """Pings systemd's watchdog every `interval_s` while `alive()` finds nothing wrong (it returns None, or
    what is wrong). While something is wrong it does not ping, and says so once: if it lasts WatchdogSec=,
    systemd kills the daemon and Restart= starts a new one; if it passes, pinging resumes."""

    def __init__(
        self, interval_s: float, alive: Callable[[], str | None], environ: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(name="ingest-watchdog", daemon=True)
        self.interval_s = interval_s
        self.alive = alive
        self.environ = environ
        self._halt = threading.Event()

    def run(self) -> None:
        wrong: str | None = None
        while not self._halt.is_set():
            try:
                problem = self.alive()
            except Exception as exc:  # a check that fails is a daemon in trouble
                problem = f"the liveness check failed: {exc!r}"
            if problem is None:
                if wrong is not None:
                    log.warning("watchdog: pinging systemd again (%s no more)", wrong, extra={"event": "watchdog_ok"})
                notify("WATCHDOG=1", self.environ)
            elif wrong is None:
                log.error(
                    "watchdog: %s; not pinging systemd, which restarts the daemon when this lasts WatchdogSec",
                    problem, extra={"event": "watchdog_failing", "reason": problem},
                )  # fmt: skip
            wrong = problem
            self._halt.wait(self.interval_s)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join()


def start(alive: Callable[[], str | None], environ: Mapping[str, str] | None = None) -> Watchdog | None:
    """Tell systemd we are ready, and start the watchdog thread when it asks for one."""
    notify("READY=1\nSTATUS=polling", environ)
    interval_s = watchdog_interval_s(environ)
    if interval_s is None:
        return None
    watchdog = Watchdog(interval_s, alive, environ)
    watchdog.start()
    return watchdog


def stopping(watchdog: Watchdog | None, environ: Mapping[str, str] | None = None) -> None:
    """A stop has begun: stop pinging and tell systemd (it then allows TimeoutStopSec= for the rest)."""
    if watchdog is not None:
        watchdog.stop()
    notify("STOPPING=1\nSTATUS=stopping", environ)
