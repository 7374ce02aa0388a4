"""How records are shown: the JSON shapes that the CLI (`--format json`) and the HTTP API share, and the
CLI's plain-text tables. Pure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ingest.config import FeedSettings
from ingest.timeutil import iso_z

if TYPE_CHECKING:
    from ingest.detect.base import Happening
    from ingest.models import Place, Sortie

SORTIE_FIELDS = (
    "sortie_id", "hex", "registration", "type", "callsigns", "start", "end", "end_reason", "duration_s",
    "max_alt_baro_ft", "sightings", "previous_sortie_end", "last_seen", "took_off_from", "landed_at", "events",
    "operator", "type_name", "synthetic",
)  # fmt: skip


def sortie_dict(s: Sortie, happenings: Sequence[Happening] = ()) -> dict[str, Any]:
    """A sortie as `ingest sorties --format json` prints it, with what its aircraft did (`events`)."""
    return {
        "sortie_id": s.sortie_id, "hex": s.hex_icao, "registration": s.registration, "type": s.type_icao,
        "callsigns": list(s.callsigns), "start": iso_z(s.start_at), "end": iso_z(s.end_at) if s.end_at else None,
        "end_reason": s.end_reason, "duration_s": s.duration_s, "max_alt_baro_ft": s.max_alt_baro_ft,
        "sightings": s.sightings,
        "previous_sortie_end": iso_z(s.previous_sortie_end) if s.previous_sortie_end else None,
        "last_seen": iso_z(s.last_seen_at), "took_off_from": place(s.took_off_from), "landed_at": place(s.landed_at),
        "events": [happening_dict(h) for h in happenings if h.sortie_id == s.sortie_id],
        "operator": s.operator, "type_name": s.type_name, "synthetic": s.synthetic,
    }  # fmt: skip


def place(p: Place | None) -> dict[str, str] | None:
    """An airport as `{"code": "RKSO", "name": "Osan Air Base"}`."""
    return {"code": p.code, "name": p.name} if p is not None else None


def happening_dict(h: Happening) -> dict[str, Any]:
    """An orbit or emergency of a sortie: its id, kind, number, times, place and details."""
    return {
        "event_id": h.event_id, "kind": h.kind, "n": h.n, "started": iso_z(h.started_at),
        "detected": iso_z(h.detected_at), "lat": h.lat_deg, "lon": h.lon_deg, "details": dict(h.details),
    }  # fmt: skip


def feed_state(fs: FeedSettings, h: dict[str, Any]) -> str:
    """disabled (by config), or health_state()."""
    return health_state(h) if fs.enabled else "disabled"


def health_state(h: dict[str, Any]) -> str:
    """An enabled feed's state from its feed_health row: never polled, ok, never succeeded (failing since its
    first poll), degraded (failing, retried within a few ticks) or parked (a 403, a long Retry-After)."""
    state = str(h.get("state", "never polled"))
    if state == "degraded" and not h.get("last_success_at"):
        return "never succeeded"
    return state


def feed_row(fs: FeedSettings, h: dict[str, Any], now: datetime | None = None, running: bool = True) -> dict[str, Any]:
    """One feed's health as `ingest feeds --format json` prints it (feed_state() says which `state`).
    `next_try` is a time to come, while a daemon runs (`running`) and the feed fails; never one gone by."""
    failing = bool(h.get("failures"))
    next_try = h.get("next_try_at") if failing and running and fs.enabled else None
    if next_try is not None and now is not None and datetime.fromisoformat(next_try) <= now:
        next_try = None  # due: the next tick tries it
    return {
        "feed": fs.name, "kind": fs.kind, "state": feed_state(fs, h), "last_poll": h.get("at"),
        "last_success": h.get("last_success_at"), "last_error": h.get("last_error_at"),
        "error": h.get("reason") if failing else None, "failures": h.get("failures", 0),
        "next_try": next_try,
        "polls_1h": h.get("polls", 0), "failed_1h": h.get("failed", 0), "requests_1h": h.get("requests", 0),
        "aircraft_1h": h.get("aircraft", 0), "kept_1h": h.get("kept", 0), "rejected_1h": h.get("rejected", 0),
    }  # fmt: skip


# -- plain-text tables (`--format table`) --------------------------------------------------------------

Cell = Callable[[dict[str, Any], str], str]


_TABLE = (
    ("time", "time", 20), ("hex", "hex", 6), ("registration", "reg", 10), ("type", "type", 4),
    ("callsign", "callsign", 8), ("lat", "lat", 9), ("lon", "lon", 10), ("alt_baro_ft", "alt_ft", 6),
    ("gs_kt", "gs_kt", 5), ("track_deg", "track", 5), ("squawk", "sqk", 4), ("source_type", "source", 9),
    ("feed", "feed", 8), ("synthetic", "data", 4),
)  # fmt: skip


def _cell(row: dict[str, Any], key: str) -> str:
    value = row[key]
    if key == "synthetic":
        return "DEMO" if value else "-"  # the bundled demo's positions, marked as everywhere
    if key == "alt_baro_ft" and value is None and row["on_ground"]:
        return "ground"
    if value is None:
        return "-"
    if key in ("lat", "lon"):
        return f"{value:.5f}"
    if key in ("gs_kt", "track_deg"):
        return f"{value:.0f}"
    return str(value)


def grid(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str, int]], cell: Cell) -> str:
    """A plain-text table: one header line, one line per row, columns padded to their widest cell."""
    cells = [[cell(r, key) for key, _, _ in columns] for r in rows]
    widths = [max([w, len(title)] + [len(c[i]) for c in cells]) for i, (_, title, w) in enumerate(columns)]
    lines = ["  ".join(title.ljust(widths[i]) for i, (_, title, _) in enumerate(columns)).rstrip()]
    lines += ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in cells]
    return "\n".join(lines)


_SORTIE_TABLE = (
    ("sortie_id", "sortie", 22), ("registration", "reg", 8), ("type", "type", 4), ("callsigns", "callsigns", 9),
    ("start", "start", 20), ("end", "end", 20), ("end_reason", "reason", 11), ("duration_s", "duration", 8),
    ("max_alt_baro_ft", "max_ft", 6), ("sightings", "seen", 4), ("took_off_from", "from", 4),
    ("landed_at", "to", 4), ("events", "events", 6), ("synthetic", "data", 4),
)  # fmt: skip


def _sortie_cell(row: dict[str, Any], key: str) -> str:
    value = row[key]
    if key == "callsigns":
        return ",".join(value) or "-"
    if key in ("took_off_from", "landed_at"):
        return value["code"] if value else "-"
    if key == "synthetic":
        return "DEMO" if value else "-"
    if key == "events":
        kinds = [e["kind"] for e in value]
        return ",".join(f"{k}x{kinds.count(k)}" for k in dict.fromkeys(kinds)) or "-"
    if key == "duration_s":
        return f"{value // 3600}h{value % 3600 // 60:02d}m"
    if key == "end" and value is None:
        return "(open)"
    return "-" if value is None else str(value)


_FEED_TABLE = (
    ("feed", "feed", 8), ("kind", "kind", 9), ("state", "state", 8), ("last_success", "last success", 20),
    ("last_error", "last error", 20), ("failures", "fails", 5), ("next_try", "next try", 8),
    ("polls_1h", "polls/1h", 8), ("requests_1h", "req/1h", 6), ("aircraft_1h", "aircraft/1h", 11),
    ("kept_1h", "kept/1h", 7), ("rejected_1h", "malformed/1h", 12), ("error", "error", 5),
)  # fmt: skip


def next_try_text(row: dict[str, Any], now: datetime, running: bool) -> str:
    """`in 4m10s` for a retry to come; `due` for a failing feed whose wait is over (the daemon's next tick
    polls it); `-` when nothing is planned (the feed is fine, disabled, or no daemon runs)."""
    if row["next_try"] is not None:
        left = max(0, int((datetime.fromisoformat(row["next_try"]) - now).total_seconds()))
        return f"in {left // 60}m{left % 60:02d}s" if left >= 60 else f"in {left}s"
    failing = row["failures"] and row["state"] not in ("disabled", "never polled")
    return "due" if failing and running else "-"


def _plain(row: dict[str, Any], key: str) -> str:
    return "-" if row[key] is None else str(row[key])


_NOW_TABLE = (
    ("registration", "reg", 8), ("type", "type", 4), ("callsign", "callsign", 8), ("time", "time", 20),
    ("age_s", "age", 5), ("lat", "lat", 9), ("lon", "lon", 10), ("alt_baro_ft", "alt_ft", 6), ("gs_kt", "gs_kt", 5),
    ("track_deg", "track", 5), ("squawk", "sqk", 4), ("sortie_id", "open sortie", 22), ("feed", "feed", 8),
)  # fmt: skip


def _now_cell(row: dict[str, Any], key: str) -> str:
    if key == "age_s":
        age = int(row[key])
        return f"{age // 60}m{age % 60:02d}s" if age >= 60 else f"{age}s"
    if key == "registration" and not row[key]:
        return str(row["hex"])
    return _cell(row, key)


def now_table(rows: list[dict[str, Any]]) -> str:
    return grid(rows, _NOW_TABLE, _now_cell)


def sightings_table(rows: list[dict[str, Any]]) -> str:
    return grid(rows, _TABLE, _cell)


def sorties_table(rows: list[dict[str, Any]]) -> str:
    return grid(rows, _SORTIE_TABLE, _sortie_cell)


def feeds_table(rows: list[dict[str, Any]], now: datetime, running: bool) -> str:
    shown = [{**r, "next_try": next_try_text(r, now, running)} for r in rows]
    return grid(shown, _FEED_TABLE, _plain)
