"""Soak: a simulated day of the daemon's real components at full speed, against a busy loopback feed.

Design. `ingest run` waits on the wall clock (10 s between polls, 30 min gaps), so 24 hours through the
real process would take 24 hours. Instead this drives the components the daemon's jobs call
(ingest/scheduler.py: `FeedJob.run` with its `Fetcher`, then `Tracker.save_poll`/`Tracker.check` on a
`Store`, then marking the outbox acknowledged as the relay does on PUBACK) from one thread, with a
simulated clock injected where the daemon injects `utc_now`, one poll after another with no waiting.
What is left out is only the scheduling (APScheduler threads, the writer queue) and MQTT's network
round trip: every poll goes over real HTTP to a real server, through the real parser, selector, SQLite
file (WAL) and sortie detector.

The feed server runs in its own process (so its CPU is not counted as the daemon's) and answers the
readsb-v2 area queries (`queries = ["area"]`: the two circles that cover the Korean box) for the
simulated time it reads from shared memory: about 800 aircraft in the box, of which 40 watched (rows of
config/watchlist.csv) fly several sorties an hour between them (landed, left_area and signal_lost ends),
the others cross the box on straight lines and are replaced as they leave. Positions carry `seen_pos`,
so each poll is a realistic 10 s step of a day.

Reported: VmRSS at start (after the first poll) and end, database growth per simulated day (the file
after a WAL checkpoint), poll latency p50/p95/p99 (fetch to commit, wall clock) and CPU seconds per poll
(the driving thread's, which does all of the daemon's work here), and the sorties found against those
flown. Exit status 1 when they differ.

    .venv/bin/python scripts/soak.py                 # 24 simulated hours, about 3-6 minutes
    .venv/bin/python scripts/soak.py --hours 2 --json soak.json
"""

from __future__ import annotations

import argparse
import csv
import functools
import importlib
import importlib.util
import inspect
import json
import math
import multiprocessing
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.app import build_app
from ingest.config import load
from ingest.feeds.transport import Fetcher
from ingest.pipeline import FeedJob
from ingest.store import SqliteStore, Store
from ingest.timeutil import from_epoch
from tests.conftest import REPO, render_config

SIM_START = 1_795_000_000.0  # 2026-11-18T07:46:40Z, any fixed time will do
INTERVAL_S = 10.0  # adsb.lol's default interval (config/ingest.toml)
CHECK_S = 30.0  # [sorties] check_interval_s default
GAP_S = 1800.0  # [sorties] gap_s default
WATCHED = 40
TRAFFIC = 760
BOX = (33.0, 124.0, 43.5, 132.0)  # [area] default: south, west, north, east
LANDED, LEFT_AREA, SIGNAL_LOST = "landed", "left_area", "signal_lost"


@dataclass(frozen=True, slots=True)
class Sortie:
    hex_icao: str
    start: float
    end: float
    reason: str
    centre: tuple[float, float]
    radius_deg: float
    period_s: float


def plan_sorties(watched: list[str], seed: int, start: float, hours: float) -> list[Sortie]:
    """Each watched aircraft: sorties of 0.5-3 h with 1.5-8 h between them (about 5 an hour in all),
    every one over before the end of the run with its end seen (landing, leaving, the gap)."""
    rng = random.Random(seed)
    end_of_run = start + hours * 3600
    plan = []
    for hex_icao in watched:
        t = start + rng.uniform(600, 4 * 3600)
        while True:
            reason = rng.choice([LANDED, LEFT_AREA, SIGNAL_LOST])
            tail = {LANDED: 600, LEFT_AREA: GAP_S + 600, SIGNAL_LOST: GAP_S}[reason] + 900
            duration = min(rng.uniform(1800, 3 * 3600), end_of_run - t - tail)
            if duration < 1200:
                break
            centre = (rng.uniform(34.5, 42.0), rng.uniform(125.0, 131.0))
            plan.append(
                Sortie(hex_icao, t, t + duration, reason, centre, rng.uniform(0.2, 0.8), rng.uniform(1800, 3600))
            )
            t += duration + tail + rng.uniform(1.5 * 3600, 8 * 3600)
    return plan


class SoakWorld:
    """What the feed reports at simulated time t: the watched aircraft's plan and the crossing traffic."""

    def __init__(self, watched: list[str], seed: int, start: float, hours: float) -> None:
        self.seed = seed
        self.by_hex: dict[str, list[Sortie]] = {h: [] for h in watched}
        for s in plan_sorties(watched, seed, start, hours):
            self.by_hex[s.hex_icao].append(s)

    def aircraft(self, t: float) -> list[dict[str, Any]]:
        rng = random.Random(int(t))
        records = [r for hex_icao, plan in self.by_hex.items() if (r := self._watched(hex_icao, plan, t, rng))]
        records += [self._traffic(k, t, rng) for k in range(TRAFFIC)]
        return records

    def _watched(self, hex_icao: str, plan: list[Sortie], t: float, rng: random.Random) -> dict[str, Any] | None:
        for s in plan:
            if s.start - 600 <= t < s.start:  # on the ground before the takeoff
                return _record(hex_icao, *s.centre, "ground", rng, callsign="TEST01")
            if s.start <= t < s.end:
                angle = 2 * math.pi * ((t - s.start) % s.period_s) / s.period_s
                lat, lon = s.centre[0] + s.radius_deg * math.sin(angle), s.centre[1] + s.radius_deg * math.cos(angle)
                return _record(hex_icao, lat, lon, 28000, rng, callsign="TEST01")
            if s.reason == LANDED and s.end <= t < s.end + 600:
                return _record(hex_icao, *s.centre, "ground", rng, callsign="TEST01")
            if s.reason == LEFT_AREA and s.end <= t < s.end + GAP_S + 600:
                return _record(hex_icao, 32.0, 128.0, 30000, rng, callsign="TEST01")  # in a circle, south of the box
        return None

    def _traffic(self, k: int, t: float, rng: random.Random) -> dict[str, Any]:
        period, phase = _traffic_period(self.seed, k)
        cycle, f = divmod(t + phase, period)
        hex_icao, (lat0, lon0, lat1, lon1) = _crossing(self.seed, k, int(cycle))
        return _record(hex_icao, lat0 + (lat1 - lat0) * f / period, lon0 + (lon1 - lon0) * f / period, 35000, rng)


@functools.cache
def _traffic_period(seed: int, k: int) -> tuple[float, float]:
    rng = random.Random(seed * 7919 + k)
    period = rng.uniform(2400, 7200)
    return period, rng.uniform(0, period)


@functools.lru_cache(maxsize=4 * TRAFFIC)
def _crossing(seed: int, k: int, cycle: int) -> tuple[str, tuple[float, float, float, float]]:
    rng = random.Random((seed * 1_000_003 + k) * 1_000_033 + cycle)
    s, w, n, e = BOX
    ends = (rng.uniform(s, n), rng.uniform(w, e), rng.uniform(s, n), rng.uniform(w, e))
    return f"{0x780000 + (k * 2_654_435 + cycle * 40_503) % 0x07FFFF:06x}", ends


def _record(
    hex_icao: str, lat: float, lon: float, alt: int | str, rng: random.Random, callsign: str = ""
) -> dict[str, Any]:
    return {
        "hex": hex_icao, "type": "adsb_icao", "flight": f"{callsign or 'KAL' + hex_icao[-3:]:<8}",
        "alt_baro": alt, "gs": 430.0, "track": 90.0, "squawk": "1200", "lat": round(lat, 5), "lon": round(lon, 5),
        "seen_pos": round(rng.uniform(0.1, 3.0), 1), "seen": 0.3, "messages": 5000, "rssi": -20.1,
    }  # fmt: skip


def _within(rec: dict[str, Any], lat: float, lon: float, nm: float) -> bool:
    p1, p2 = math.radians(lat), math.radians(rec["lat"])
    dp, dl = p2 - p1, math.radians(rec["lon"] - lon)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 3440.065 * math.asin(math.sqrt(a)) <= nm


def serve(sim_now: Any, port: Any, ready: Any, watched: list[str], seed: int, hours: float) -> None:
    """The feed server process: readsb-v2 circle queries answered for the simulated time in `sim_now`."""
    world = SoakWorld(watched, seed, SIM_START, hours)
    lock = threading.Lock()
    cache: dict[float, list[dict[str, Any]]] = {}

    def sky(t: float) -> list[dict[str, Any]]:
        """The poll's two circle requests ask about the same instant: build it once."""
        with lock:
            if t not in cache:
                cache.clear()
                cache[t] = world.aircraft(t)
            return cache[t]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            t = sim_now.value
            parts = self.path.strip("/").split("/")  # v2/lat/{lat}/lon/{lon}/dist/{nm}
            records = sky(t)
            if len(parts) == 7 and parts[1] == "lat":
                lat, lon, nm = float(parts[2]), float(parts[4]), float(parts[6])
                records = [r for r in records if _within(r, lat, lon, nm)]
            now_ms = int(t * 1000)
            body = json.dumps({"ac": records, "msg": "No error", "now": now_ms, "total": len(records),
                               "ctime": now_ms, "ptime": 3}).encode()  # fmt: skip
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port.value = httpd.server_address[1]
    ready.set()
    httpd.serve_forever()


def pick_watched(n: int) -> list[tuple[str, ...]]:
    """n rows of config/watchlist.csv (header first), spread over the file."""
    with (REPO / "config" / "watchlist.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    step = max(1, len(body) // n)
    return [tuple(header), *(tuple(r) for r in body[::step][:n])]


def make_tracker(settings: Any, store: Store, watchlist: Any) -> Any:
    """The Tracker as the daemon's writer builds it (ingest/scheduler.py). It moves from ingest/pipeline.py
    to ingest/tracker.py with the coverage-aware sorties, and then takes the watchlist too."""
    name = "ingest.tracker" if importlib.util.find_spec("ingest.tracker") else "ingest.pipeline"
    tracker_class = importlib.import_module(name).Tracker
    if "watchlist" in inspect.signature(tracker_class).parameters:
        return tracker_class(settings, store, watchlist=watchlist)
    return tracker_class(settings, store)


def vm_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def checkpointed_size(path: Path) -> int:
    """The database file's size once the WAL is folded into it (and emptied)."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def run(hours: float, seed: int, workdir: Path) -> dict[str, Any]:
    rows = pick_watched(WATCHED)
    watchlist = workdir / "watchlist.csv"
    with watchlist.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    watched = [r[0].lower() for r in rows[1:]]
    db = workdir / "soak.db"
    ctx = multiprocessing.get_context("spawn")
    sim_now, port, ready = ctx.Value("d", SIM_START), ctx.Value("i", 0), ctx.Event()
    server = ctx.Process(target=serve, args=(sim_now, port, ready, watched, seed, hours), daemon=True)
    server.start()
    try:
        if not ready.wait(60):
            raise SystemExit("the soak feed server did not start")
        config = workdir / "soak.toml"
        feed = {"name": "soak", "kind": "readsb-v2", "base_url": f"http://127.0.0.1:{port.value}",
                "interval_s": INTERVAL_S, "queries": ["area"]}  # fmt: skip
        config.write_text(render_config({
            "database": {"path": str(db)}, "watchlist": {"path": str(watchlist)}, "replay": {"on_start": []},
            "sorties": {"gap_s": GAP_S, "check_interval_s": CHECK_S},
            "mqtt": {"enabled": True, "topic_prefix": "soak"},  # alerts go to the outbox; we play the relay
        }, [feed]))  # fmt: skip
        return _drive(config, db, hours, sim_now, seed, watched)
    finally:
        server.terminate()
        server.join(10)


def _drive(config: Path, db: Path, hours: float, sim_now: Any, seed: int, watched: list[str]) -> dict[str, Any]:
    settings = load(config, environ={})
    app = build_app(settings)
    store = SqliteStore(db)
    store.sync_watchlist(app.watchlist)
    size_start = checkpointed_size(db)
    tracker = make_tracker(settings, store, app.watchlist)
    (feed,) = app.feeds
    fetcher = Fetcher(feed.settings, settings.daemon.user_agent)
    job = FeedJob(feed, fetcher, app.selector, lambda: from_epoch(sim_now.value), lambda s: False)
    polls = int(hours * 3600 / INTERVAL_S)
    latency, cpu = array("d", bytes(8 * polls)), array("d", bytes(8 * polls))  # allocated up front: RSS is the daemon's
    requests = aircraft = stored = 0
    rss: list[float] = []
    t0 = time.monotonic()
    rss_start = 0.0
    for i in range(polls):
        sim_now.value = SIM_START + i * INTERVAL_S
        now = from_epoch(sim_now.value)
        w0, c0 = time.perf_counter(), time.thread_time()
        outcome = job.run(force=True)
        assert outcome is not None
        if outcome.failure is not None:
            raise SystemExit(f"poll {i} failed: {outcome.failure}")
        stored += tracker.save_poll(store, outcome, now)
        if i % int(CHECK_S / INTERVAL_S) == 0:
            tracker.check(store, now)
        pending = store.pending_events("mqtt", 100)
        if pending:
            store.settle("mqtt", [e.outbox_id for e in pending], now)  # as the mqtt channel does on PUBACKs
        latency[i] = time.perf_counter() - w0
        cpu[i] = time.thread_time() - c0
        requests += outcome.record.requests
        aircraft += outcome.record.aircraft
        if i == 0:
            rss_start = vm_rss_mb()
        if i % int(3600 / INTERVAL_S) == 0:
            rss.append(round(vm_rss_mb(), 1))
            print(
                f"  simulated hour {i * INTERVAL_S / 3600:4.0f}: RSS {rss[-1]:.1f} MB, {stored} sightings", flush=True
            )
    tracker.check(store, from_epoch(SIM_START + hours * 3600 + GAP_S))
    wall = time.monotonic() - t0
    rss_end = vm_rss_mb()
    fetcher.close()
    store.close()
    size_end = checkpointed_size(db)
    with closing(sqlite3.connect(db)) as conn:
        found = conn.execute("SELECT hex, end_reason FROM sorties ORDER BY hex, first_at").fetchall()
        sightings = conn.execute("SELECT count(*) FROM sightings").fetchone()[0]
    flown = [
        (s.hex_icao, s.reason)
        for s in sorted(plan_sorties(watched, seed, SIM_START, hours), key=lambda s: (s.hex_icao, s.start))
    ]
    return {
        "hours": hours, "polls": polls, "requests_per_poll": requests / polls,
        "aircraft_per_poll": round(aircraft / polls),
        "watched": len(watched), "sightings": sightings, "sorties_flown": len(flown), "sorties_found": len(found),
        "sorties_match": [tuple(r) for r in found] == flown, "rss_start_mb": round(rss_start, 1),
        "rss_end_mb": round(rss_end, 1), "rss_hourly_mb": rss, "db_start_bytes": size_start, "db_end_bytes": size_end,
        "db_growth_per_day_mb": round((size_end - size_start) / hours * 24 / 1e6, 2),
        "latency_ms": {q: round(percentile(latency, q) * 1000, 1) for q in (50, 95, 99)},
        "latency_max_ms": round(max(latency) * 1000, 1), "cpu_s_per_poll": round(statistics.fmean(cpu), 4),
        "cpu_s_per_poll_p95": round(percentile(cpu, 95), 4), "wall_s": round(wall),
        "simulated_speedup": round(hours * 3600 / wall),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, help="keep the database here (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ingest-soak-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"soak: {args.hours:g} simulated hours, {WATCHED} watched of ~{WATCHED + TRAFFIC} aircraft", flush=True)
        figures = run(args.hours, args.seed, workdir)
    lat = figures["latency_ms"]
    print(
        f"RSS {figures['rss_start_mb']} MB at start, {figures['rss_end_mb']} MB at end; database "
        f"+{figures['db_growth_per_day_mb']} MB per simulated day; poll latency p50 {lat[50]} ms, p95 {lat[95]} ms, "
        f"p99 {lat[99]} ms; {figures['cpu_s_per_poll']} CPU s per poll; {figures['polls']} polls "
        f"({figures['aircraft_per_poll']} aircraft each) in {figures['wall_s']} s; sorties {figures['sorties_found']} "
        f"found / {figures['sorties_flown']} flown{'' if figures['sorties_match'] else ' - MISMATCH'}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if figures["sorties_match"] else 1


if __name__ == "__main__":
    threading.current_thread().name = "soak"
    sys.exit(main())
