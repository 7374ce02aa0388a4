"""What the CLI and the HTTP API both ask of a database: answers built from the store's records, ready to
print or serialise. Neither edge builds these itself, so both say the same thing.

- `daemon_status`: is an `ingest run` writing to this database right now (its heartbeat)?
- `latest_positions`: the latest position of every watched aircraft seen lately, open sorties first.

Every function takes the store and `now`; none reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ingest.store import Store

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


def daemon_status(store: Store, now: datetime) -> DaemonStatus:
    daemons = store.daemons()
    if not daemons:
        return DaemonStatus(False, None, None, None, None, None)
    alive = [d for d in daemons if d["stopped_at"] is None and _age_s(d["beat_at"], now) <= HEARTBEAT_STALE_S]
    d = alive[0] if alive else daemons[0]
    age_s = round(_age_s(d["beat_at"], now), 1)
    return DaemonStatus(bool(alive), d["daemon"], d["started_at"], d["beat_at"], d["stopped_at"], age_s)


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
