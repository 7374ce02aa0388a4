"""What the CLI and the HTTP API both ask of a database: answers built from the store's records, ready to
print or serialise. Neither edge builds these itself, so both say the same thing.

- `resolve_tail`: the aircraft a TAIL names (registration, hex or callsign), or why none or several do.
- `daemon_status`: is an `ingest run` writing to this database right now (its heartbeat)?
- `health`: the one health rule, answered by `GET /healthz` and `ingest health` (a Docker HEALTHCHECK).
- `latest_positions`: the latest position of every watched aircraft seen lately, open sorties first.

Every function takes the store and `now`; none reads a clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ingest.errors import IngestError
from ingest.store import Store
from ingest.timeutil import iso_z
from ingest.watchlist import Watchlist, normalise_registration

# A daemon writes its heartbeat every 10 s (scheduler.HEARTBEAT_S); three missed beats and it is gone.
HEARTBEAT_STALE_S = 30.0
NOW_WINDOW = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class DaemonStatus:
    """Whether a daemon runs on this database, and what the latest one said."""

    running: bool
    daemon: str | None  # host:pid of the latest daemon to beat
    started_at: str | None
    last_beat_at: str | None
    stopped_at: str | None  # set when it stopped cleanly
    beat_age_s: float | None

    def describe(self) -> str:
        """One line for people."""
        if self.daemon is None:
            return "no daemon has run on this database"
        if self.running:
            return f"daemon {self.daemon} running since {self.started_at} (heartbeat {self.beat_age_s:.0f} s ago)"
        if self.stopped_at:
            return f"no daemon is running: {self.daemon} stopped at {self.stopped_at}"
        return f"no daemon is running: {self.daemon} last beat at {self.last_beat_at} and did not stop cleanly"

    def as_dict(self) -> dict[str, Any]:
        return {
            "running": self.running, "daemon": self.daemon, "started_at": self.started_at,
            "last_beat_at": self.last_beat_at, "stopped_at": self.stopped_at, "beat_age_s": self.beat_age_s,
            "text": self.describe(),
        }  # fmt: skip


def daemon_status(store: Store, now: datetime, host: str | None = None) -> DaemonStatus:
    """The daemons that ran on this database, as one status: running when any still beats. With `host`,
    only that machine's, when any has run there (a health check asks about the daemon beside it)."""
    daemons = store.daemons()
    if host is not None:
        daemons = [d for d in daemons if d["host"] == host] or daemons
    if not daemons:
        return DaemonStatus(False, None, None, None, None, None)
    alive = [d for d in daemons if d["stopped_at"] is None and _age_s(d["beat_at"], now) <= HEARTBEAT_STALE_S]
    d = alive[0] if alive else daemons[0]
    age_s = round(_age_s(d["beat_at"], now), 1)
    return DaemonStatus(bool(alive), d["daemon"], d["started_at"], d["beat_at"], d["stopped_at"], age_s)


@dataclass(frozen=True, slots=True)
class Health:
    """The answer of `health()`: healthy or not, the reason when not, and what it was decided from."""

    reason: str | None  # None: healthy
    stale_after_s: float
    feeds: dict[str, str]  # each enabled feed's state (ok, degraded, parked, never polled)
    last_success: datetime | None  # the latest success of an enabled feed
    age_s: float | None
    daemon: DaemonStatus

    @property
    def healthy(self) -> bool:
        return self.reason is None

    def describe(self) -> str:
        """One line for people."""
        if self.reason is not None:
            return self.reason
        assert self.last_success is not None and self.age_s is not None
        who = self.daemon.describe() if self.daemon.daemon is not None else "no daemon (polled by `ingest poll`)"
        return f"healthy: a feed succeeded {self.age_s:.0f} s ago ({iso_z(self.last_success)}); {who}"

    def as_dict(self) -> dict[str, Any]:
        """`GET /healthz`'s body: `status` ok or unavailable, `reason` when unavailable."""
        body: dict[str, Any] = {
            "status": "ok" if self.healthy else "unavailable", "stale_after_s": self.stale_after_s,
            "feeds": self.feeds, "last_success": iso_z(self.last_success) if self.last_success else None,
            "age_s": self.age_s, "daemon": self.daemon.as_dict(),
        }  # fmt: skip
        if self.reason is not None:
            body["reason"] = self.reason
        return body


def health(
    store: Store, enabled_feeds: Sequence[str], now: datetime, stale_after_s: float, host: str | None = None
) -> Health:
    """Healthy when an enabled feed succeeded within `stale_after_s` and, once a daemon has run on this
    database, one still runs (its heartbeat is at most HEARTBEAT_STALE_S old): the one on this machine
    (`host`, by default this machine's name) when one has run here, so that with several daemons sharing a
    database each one's health check (a container's HEALTHCHECK) is about itself; else any. A database
    that only `ingest poll` (cron) has written has no daemon to ask for, so the feeds alone decide there.

    The daemon is asked for first: when it is gone, that is the reason, not the staleness it causes."""
    from ingest.views import health_state

    daemon = daemon_status(store, now, this_host() if host is None else host)
    feed_health = store.feed_health(now - timedelta(seconds=stale_after_s))
    states = {name: health_state(feed_health.get(name, {})) for name in enabled_feeds}
    successes = [
        datetime.fromisoformat(h["last_success_at"])
        for name in enabled_feeds
        if (h := feed_health.get(name)) and h.get("last_success_at")
    ]
    last = max(successes, default=None)
    age_s = round((now - last).total_seconds(), 1) if last else None
    reason = None
    if not enabled_feeds:
        reason = "no feed is enabled"
    elif daemon.daemon is not None and not daemon.running:
        reason = daemon.describe()
    elif last is None or age_s is None:
        reason = "no feed has succeeded yet"
    elif age_s > stale_after_s:
        reason = f"no feed has succeeded for {age_s:.0f} s (more than {stale_after_s:g} s)"
    return Health(reason, stale_after_s, states, last, age_s, daemon)


def this_host() -> str:
    """This machine's name as a daemon records it (socket.gethostname(), from the C module: importing
    `socket` would cost `ingest health` about 2 ms)."""
    import _socket

    return str(_socket.gethostname())


def _age_s(at: str, now: datetime) -> float:
    return (now - datetime.fromisoformat(at)).total_seconds()


def latest_positions(store: Store, now: datetime, window: timedelta = NOW_WINDOW) -> list[dict[str, Any]]:
    """The latest sighting of every aircraft seen within `window`, each with `age_s` and its open sortie
    (`sortie_id`, or None): aircraft on an open sortie first, then the most recently seen."""
    rows = store.latest_positions(now - window)
    open_by_key = {s.key: s.sortie_id for s in store.sorties(open_only=True)}
    for row in rows:
        row["sortie_id"] = open_by_key.get(row.pop("key"))
        row["age_s"] = round(_age_s(row["time"], now), 1)
    rows.sort(key=lambda r: (r["sortie_id"] is None, r["age_s"]))
    return rows


# -- naming an aircraft ------------------------------------------------------------------------------

_CALLSIGN = re.compile(r"[A-Z0-9]{2,8}\*?")
_SUGGESTIONS = 3


class UnknownTail(IngestError):
    """No aircraft goes by that registration, hex or callsign; `suggestions` are the closest known names."""

    def __init__(self, text: str, suggestions: Sequence[str]) -> None:
        self.text = text
        self.suggestions = tuple(suggestions)
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown tail {text!r}: no registration, hex or callsign of a watched aircraft{hint}")


class AmbiguousTail(IngestError):
    """A callsign several aircraft flew in the period asked for, or a registration several aircraft have
    (short serials: watchlist.py); `candidates` are their keys."""

    def __init__(self, text: str, lines: Sequence[str], candidates: Sequence[str], registration: bool = False) -> None:
        self.text = text
        self.candidates = tuple(candidates)
        if registration:
            message = f"{text!r} is the registration of {len(lines)} aircraft: {'; '.join(lines)}. Name one by its hex"
        else:
            message = (
                f"{text!r} was flown by {len(lines)} aircraft in that period: {'; '.join(lines)}. "
                "Name one by its registration (or narrow --since/--until)"
            )
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The aircraft a TAIL named: its key in the store (sorties are stored under it), its hexes, how it was
    found and what to call it."""

    key: str
    hexes: tuple[str, ...]
    label: str
    via: str  # "registration", "hex", "callsign TORA23"


def compact(text: str) -> str:
    """A registration as compared loosely: `62 4125`, `624125` and `62-4125` are the same aircraft."""
    return "".join(c for c in text.upper() if c.isalnum())


def resolve_tail(
    store: Store,
    text: str,
    since: datetime | None = None,
    until: datetime | None = None,
    watchlist: Callable[[], Watchlist] | None = None,
) -> Resolved:
    """The aircraft `text` names: a registration (any case and spacing), an ICAO hex, or a callsign (exact,
    case-insensitive; a prefix with `*`) resolved to the aircraft that flew it in [since, until]. Falls back to
    the watchlist (loaded only then) for an aircraft never seen. UnknownTail or AmbiguousTail otherwise."""
    wanted = text.strip()
    aircraft = store.find_aircraft(wanted) if wanted else None
    if aircraft is not None and aircraft.hexes:
        via = "hex" if wanted.lower().lstrip("~") in aircraft.hexes else "registration"
        return Resolved(aircraft.key, aircraft.hexes, aircraft.registration or aircraft.key, via)
    loose = compact(wanted)
    names = store.aircraft_names()
    ids = [aircraft_id for aircraft_id, key, reg in names if loose and loose in (compact(key), compact(reg or ""))]
    matches = [store.aircraft(i) for i in ids]
    if len(matches) > 1:  # a key left without hexes (they went to the aircraft that share its registration)
        matches = [a for a in matches if a.hexes] or matches
    if aircraft is not None and len(matches) <= 1:
        return Resolved(aircraft.key, aircraft.hexes, aircraft.registration or aircraft.key, "registration")
    if len(matches) == 1:
        found = matches[0]
        return Resolved(found.key, found.hexes, found.registration or found.key, "registration")
    if len(matches) > 1:  # a registration several aircraft have (watchlist.py): each is known by its hex
        several = sorted(matches, key=lambda a: a.key)
        lines = [f"{a.key} ({' '.join(x for x in (a.operator, a.icao_type) if x) or 'no details'})" for a in several]
        raise AmbiguousTail(wanted, lines, [a.key for a in several], registration=True)
    callsign = wanted.upper()
    if _CALLSIGN.fullmatch(callsign):
        resolved = _by_callsign(store, callsign, since, until)
        if resolved is not None:
            return resolved
    if watchlist is not None:
        entries = watchlist()
        entry = (
            entries.by_registration(wanted)
            or entries.by_hex(wanted)
            or next(
                (e for e in entries.entries if loose and not e.shared and compact(e.registration or "") == loose), None
            )
        )
        if entry is not None:
            return Resolved(normalise_registration(entry.key), entry.hexes, entry.key, "watchlist")
    import difflib  # only to suggest names for an unknown tail

    known = [key for _, key, _ in names] + store.callsigns()
    raise UnknownTail(text, difflib.get_close_matches(wanted.upper(), known, n=_SUGGESTIONS, cutoff=0.6))


def _by_callsign(store: Store, callsign: str, since: datetime | None, until: datetime | None) -> Resolved | None:
    prefix = callsign.endswith("*")
    users = store.callsign_users(callsign.rstrip("*"), prefix, since, until)
    if not users:
        return None
    if len(users) > 1:
        lines = [
            f"{key} ({n} sortie{'s' if n != 1 else ''} as {', '.join(names)}, latest {iso_z(latest)})"
            for key, n, latest, names in users
        ]
        raise AmbiguousTail(callsign, lines, [key for key, *_ in users])
    key, _, _, names = users[0]
    aircraft = store.find_aircraft(key)
    hexes = aircraft.hexes if aircraft is not None else ()
    label = (aircraft.registration or aircraft.key) if aircraft is not None else key
    return Resolved(key, hexes, label, f"callsign {', '.join(names)}")
