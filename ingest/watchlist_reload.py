"""The running daemon's side of a changed watchlist: a thread that notices its files changed and hands the
new list to the daemon, which polls with it from each feed's next tick (scheduler.py's `apply`).

- It looks every `[watchlist] check_interval_s` (10 s) at each file's inode, size and modification time
  (watchlist_files.Sources.signature): a stat() of three files, nothing read until something changed.
- It reads a changed list only once the files have stayed the same for one more look, so a file that an
  editor is still writing is not read half-way (`ingest watchlist` itself writes atomically).
- A list that cannot be read, or that the daemon refuses (a feed's interval too short for its requests),
  is logged once, at ERROR, and the daemon keeps polling with the list it has; the same files are not
  tried again until they change again.
- No poll is skipped: the feed jobs keep their pacing and their schedule; a poll running at the moment
  finishes with the list it started with.
- SIGHUP (`systemctl reload ingest`, `docker kill -s HUP`) asks for a look at once, read whatever the
  files hold (no second look: the user says they are ready), even with `check_interval_s = 0` (no looks
  of its own then) and even a list refused before; it answers with one line either way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ingest.errors import IngestError, StoreError
from ingest.watchlist import Watchlist
from ingest.watchlist_edits import diff
from ingest.watchlist_files import Sources, load

log = logging.getLogger(__name__)

Signature = tuple[tuple[int, int, int] | None, ...]


class WatchlistWatcher(threading.Thread):
    """Calls `apply(new list)` when the watchlist's files change (module docstring); `current` is the list
    the daemon started with. The first look reads the files once and compares them with `current`, so a
    change made while the daemon started (an on-start replay can take minutes) is not missed."""

    def __init__(self, where: Sources, period_s: float, current: Watchlist, apply: Callable[[Watchlist], None]) -> None:
        super().__init__(name="ingest-watchlist", daemon=True)
        self.where = where
        self.period_s = period_s
        self.current = current
        self.apply = apply
        self.reloads = 0  # lists applied since start
        self._done: Signature | None = None  # the files as last read (applied, or refused)
        self._seen = where.signature()  # the files at the last look
        self._store_failing = False
        self._stopping = False
        self._asked = threading.Event()  # set by ask() (SIGHUP) and by stop()

    def stop(self) -> None:
        self._stopping = True
        self._asked.set()
        if self.is_alive():
            self.join()

    def ask(self) -> None:
        """Look now and read the files as they are (SIGHUP; safe from a signal handler)."""
        self._asked.set()

    def run(self) -> None:
        while True:
            self._asked.wait(self.period_s or None)  # 0: no looks of its own, only when asked
            if self._stopping:
                return
            asked = self._asked.is_set()
            self._asked.clear()
            try:
                self.check(asked=asked)
            except Exception:  # never the end of the watcher: the next look tries again
                log.exception("watchlist: the check for a changed list failed")

    def check(self, asked: bool = False) -> bool:
        """One look; True when a new list was applied. `asked` (SIGHUP): read the files now, as they are."""
        signature = self.where.signature()
        settled = signature == self._seen or asked
        self._seen = signature
        if (signature == self._done and not asked) or not settled:
            return False
        try:
            new = load(self.where).watchlist
            changes = diff(self.current, new)
            if changes:
                if not len(new):
                    raise IngestError("the new list has no aircraft")
                self.apply(new)
        except StoreError as exc:  # the database, not the list: try again at the next look
            if not self._store_failing:
                log.warning("watchlist not reloaded yet: %s; trying again every %g s", exc, self.period_s)
            self._store_failing = True
            return False
        except IngestError as exc:
            self._done = signature
            self._store_failing = False
            log.error("watchlist not reloaded: %s; still watching the %d aircraft it had", exc, len(self.current))
            return False
        self._done = signature
        self._store_failing = False
        if not changes:
            if asked:
                log.info("watchlist reload asked: no change, %d aircraft", len(self.current))
            else:
                log.debug("watchlist: its files changed, its aircraft did not")
            return False
        self.current = new
        self.reloads += 1
        log.info("watchlist reloaded: %d aircraft (%s); each feed polls with it from its next tick",
                 len(new), changes.summary())  # fmt: skip
        return True
