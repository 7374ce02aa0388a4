"""Benchmark one readsb-v2 poll through parse -> match -> project -> store, beside its floor.

What it measures (reliability-and-performance.md §6.1-6.2, GitHub issue "pipeline throughput"):

- A synthetic jv2 response (`{"ac": [...], "msg": ..., "now": <ms>, ...}`) of `--aircraft` aircraft
  with the full readsb field set (~670 bytes an aircraft, like the reference gen_feed.py).
  `--watched` of them are on the watchlist and inside the Korean box (lat 33-43.5, lon 124-132),
  all with a position; the rest are unwatched and spread worldwide: 8 % without a position,
  5 % `alt_baro: "ground"`, 2 % non-ICAO `~` hexes. The watchlist is plane-alert-db CSV text
  generated in memory and read with `parse_watchlist`.
- The pipeline, timed stage by stage as the daemon runs it: `parse_readsb` (parse),
  `Selector.select` (match + area filter + EPSG:5179 projection) and `Store.save_poll` (store) into a
  fresh SQLite file in WAL mode with the watchlist synced, as `ingest run` does.
- The floor, in the same runs: (a) bare `json.loads` of the same bytes; (b) bare `executemany` of the
  same stored rows (`sighting_row` of the selected sightings, with store.py's INSERT) into an
  identical `sightings` table (another file created by `Store`) inside one BEGIN/COMMIT.
- Every run uses a body whose `now` is 60 s later than the previous one, so each run stores NEW rows
  (the primary key is (hex, position second)); INSERT OR IGNORE never short-cuts a repetition.
- time.perf_counter; 1 warm-up run, then `--runs` runs; best and median of each. Cyclic GC stays
  enabled inside the timed code (as in the daemon); gc.collect() runs between runs, untimed.

How to run (from the repository root):

    .venv/bin/python scripts/bench_pipeline.py [--runs 15] [--aircraft 10000] [--watched 200] [--json]

How to read the ratios (computed on best times; the medians are shown beside them):

- pipeline / (json.loads + executemany floor): the headline. The target is "pipeline within 3x of
  the floor", i.e. this ratio <= 3.0 -> PASS. Below 1.0 means the whole pipeline costs less than
  merely decoding the body with the stdlib and inserting the rows.
- pipeline / json.loads: how the pipeline compares with decoding alone. msgspec's typed decode skips
  the ~40 unused keys an aircraft without building them, so this can be below 1.
- The stage rows and their share of the pipeline show where the time goes.

Standard library plus what ingest already depends on (numpy, msgspec, pyproj via ingest.geo).
Scratch SQLite files live in a tempfile.mkdtemp() directory that is deleted at exit.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from time import perf_counter
from typing import Any

import msgspec
import numpy as np
import pyproj

from ingest.feeds.readsb import parse_readsb
from ingest.geo import Area, Projector
from ingest.models import ParseResult, PollRecord
from ingest.pipeline import Selection, Selector
from ingest.store import SqliteStore, Store, sighting_row
from ingest.store.sql import INSERT_SIGHTING as _INSERT_SIGHTING
from ingest.timeutil import from_epoch
from ingest.watchlist import Watchlist, parse_watchlist

DEFAULT_RUNS = 15
DEFAULT_AIRCRAFT = 10_000
DEFAULT_WATCHED = 200
WARMUP_RUNS = 1
SEED = 7
TARGET_RATIO = 3.0

FEED_NAME = "bench"
SOURCE = "bench://readsb-v2"
AREA_NAME = "Korean Peninsula"
AREA_CRS = "EPSG:5179"
AREA_SOUTH_DEG, AREA_WEST_DEG, AREA_NORTH_DEG, AREA_EAST_DEG = 33.0, 124.0, 43.5, 132.0
AREA_MARGIN_DEG = 0.01  # watched aircraft stay this far inside the box edges
WORLD_MAX_ABS_LAT_DEG = 85.0

NO_POSITION_FRACTION = 0.08
GROUND_FRACTION = 0.05
NON_ICAO_FRACTION = 0.02
SEEN_POS_MAX_S = 30.0
POLL_SPACING_S = 60  # > SEEN_POS_MAX_S: every run's position seconds are new for every hex
FIRST_NOW_MS = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z
MS_PER_S = 1_000

WATCH_CSV_HEADER = "$ICAO,$Registration,$Operator,$Type,$ICAO Type,#CMPG,$Tag 1,$#Tag 2,$#Tag 3,Category,$#Link"
WATCHED_TYPES = (("Boeing RC-135W", "R135"), ("Boeing P-8A Poseidon", "P8"), ("Boeing C-17A", "C17"))
AIRLINE_PREFIXES = ("KAL", "AAR", "JJA", "UAL", "DLH", "BAW", "AFR", "CPA", "SIA", "QFA")
AIRLINER_TYPES = ("B738", "A321", "B77W", "A333", "B789", "A21N")

Aircraft = dict[str, Any]


# -- synthetic feed and watchlist -------------------------------------------------------------------


def _readsb_fields(rng: random.Random, ac: Aircraft) -> None:
    """The readsb fields the daemon ignores, as in the reference gen_feed.py (README-json.md)."""
    ac["alt_geom"] = rng.randrange(0, 43_500, 25)
    ac["gs"] = round(rng.uniform(0, 560), 1)
    ac["ias"], ac["tas"] = rng.randrange(0, 340), rng.randrange(0, 500)
    ac["mach"] = round(rng.uniform(0.2, 0.86), 3)
    ac["track"], ac["track_rate"] = round(rng.uniform(0, 359.99), 2), round(rng.uniform(-3, 3), 2)
    ac["roll"], ac["mag_heading"] = round(rng.uniform(-25, 25), 2), round(rng.uniform(0, 359.99), 2)
    ac["true_heading"] = round(rng.uniform(0, 359.99), 2)
    ac["baro_rate"], ac["geom_rate"] = rng.randrange(-3000, 3000, 64), rng.randrange(-3000, 3000, 32)
    ac["squawk"] = f"{rng.randrange(0, 0o7777):04o}"
    ac["emergency"], ac["category"] = "none", rng.choice(("A3", "A5", "A2"))
    ac["nav_qnh"], ac["nav_altitude_mcp"] = round(rng.uniform(990, 1030), 1), rng.randrange(0, 41_000, 100)
    ac["nav_heading"], ac["nav_modes"] = round(rng.uniform(0, 359.99), 2), ["autopilot", "vnav", "tcas"]


def _position(rng: random.Random, ac: Aircraft, lat_deg: float, lon_deg: float) -> None:
    ac["lat"], ac["lon"] = round(lat_deg, 6), round(lon_deg, 6)
    ac["nic"], ac["rc"], ac["seen_pos"] = 8, 186, round(rng.uniform(0, SEEN_POS_MAX_S), 3)


def _tail_fields(rng: random.Random, ac: Aircraft) -> None:
    ac.update({"version": 2, "nic_baro": 1, "nac_p": 10, "nac_v": 2, "sil": 3, "sil_type": "perhour",
               "gva": 2, "sda": 2, "alert": 0, "spi": 0, "mlat": [], "tisb": [],
               "messages": rng.randrange(10, 100_000), "seen": round(rng.uniform(0, 60), 1),
               "rssi": round(rng.uniform(-30, -1), 1)})  # fmt: skip


def watched_aircraft(rng: random.Random, hex_icao: str, registration: str, icao_type: str) -> Aircraft:
    """A watched military aircraft with a position inside the area."""
    ac: Aircraft = {"hex": hex_icao, "type": "adsb_icao", "flight": f"TORA{rng.randrange(10, 99)}".ljust(8),
                    "r": registration, "t": icao_type, "dbFlags": 1,
                    "alt_baro": rng.randrange(0, 43_000, 25)}  # fmt: skip
    _readsb_fields(rng, ac)
    lat = rng.uniform(AREA_SOUTH_DEG + AREA_MARGIN_DEG, AREA_NORTH_DEG - AREA_MARGIN_DEG)
    lon = rng.uniform(AREA_WEST_DEG + AREA_MARGIN_DEG, AREA_EAST_DEG - AREA_MARGIN_DEG)
    _position(rng, ac, lat, lon)
    _tail_fields(rng, ac)
    return ac


def unwatched_aircraft(rng: random.Random, hex_icao: str) -> Aircraft:
    """An unwatched airliner anywhere in the world (sometimes without position, on ground or `~`)."""
    non_icao = rng.random() < NON_ICAO_FRACTION
    ac: Aircraft = {
        "hex": f"~{hex_icao}" if non_icao else hex_icao,
        "type": "tisb_other" if non_icao else rng.choice(("adsb_icao", "adsb_icao", "mlat", "mode_s")),
    }
    if rng.random() > 0.1:
        ac["flight"] = f"{rng.choice(AIRLINE_PREFIXES)}{rng.randrange(1, 9999)}".ljust(8)
    ac["r"], ac["t"], ac["dbFlags"] = f"HL{rng.randrange(7000, 8999)}", rng.choice(AIRLINER_TYPES), 0
    ac["alt_baro"] = "ground" if rng.random() < GROUND_FRACTION else rng.randrange(0, 43_000, 25)
    _readsb_fields(rng, ac)
    if rng.random() >= NO_POSITION_FRACTION:
        lat = rng.uniform(-WORLD_MAX_ABS_LAT_DEG, WORLD_MAX_ABS_LAT_DEG)
        _position(rng, ac, lat, rng.uniform(-180.0, 180.0))
    _tail_fields(rng, ac)
    return ac


@dataclass(frozen=True, slots=True)
class Watched:
    hex_icao: str
    registration: str
    type_name: str
    icao_type: str


def make_fleet(total: int, watched: int, seed: int) -> tuple[list[Aircraft], list[Watched]]:
    """`total` aircraft with unique hexes, the first `watched` of them on the watchlist, shuffled."""
    rng = random.Random(seed)
    hexes = [f"{h:06x}" for h in rng.sample(range(1, 0xFFFFFF), total)]
    listed = []
    for i, hex_icao in enumerate(hexes[:watched]):
        type_name, icao_type = WATCHED_TYPES[i % len(WATCHED_TYPES)]
        listed.append(Watched(hex_icao, f"WB-{i:05d}", type_name, icao_type))  # no airliner has a WB- reg
    fleet = [watched_aircraft(rng, w.hex_icao, w.registration, w.icao_type) for w in listed]
    fleet += [unwatched_aircraft(rng, h) for h in hexes[watched:]]
    rng.shuffle(fleet)
    return fleet, listed


def watchlist_csv(listed: Sequence[Watched]) -> str:
    """plane-alert-db CSV text for the watched aircraft."""
    rows = [WATCH_CSV_HEADER]
    for w in listed:
        rows.append(f"{w.hex_icao.upper()},{w.registration},United States Air Force,{w.type_name},{w.icao_type},"
                    "Mil,Bench,Synthetic,,Bench,https://example.invalid/")  # fmt: skip
    return "\n".join(rows) + "\n"


def jv2_body(ac_json: bytes, now_ms: int, total: int) -> bytes:
    """The jv2 envelope around an already serialised `ac` list; only `now` differs between runs."""
    tail = f',"msg":"No error","now":{now_ms},"total":{total},"ctime":{now_ms},"ptime":3}}'
    return b'{"ac":' + ac_json + tail.encode()


# -- one run ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Bench:
    """What every run reuses: the selector, the daemon's store and the floor's bare connection."""

    selector: Selector
    store: Store
    floor_conn: sqlite3.Connection
    ac_json: bytes
    aircraft: int


@dataclass(frozen=True, slots=True)
class RunTimes:
    """Seconds each step of one run took, and what it produced."""

    json_s: float
    parse_s: float
    select_s: float
    store_s: float
    executemany_s: float
    observations: int
    matched: int
    kept: int
    stored: int
    floor_inserted: int
    rejected: int

    @property
    def pipeline_s(self) -> float:
        return self.parse_s + self.select_s + self.store_s

    @property
    def floor_s(self) -> float:
        return self.json_s + self.executemany_s


def poll_record(parsed: ParseResult, selection: Selection) -> PollRecord:
    """The feed_polls row the daemon writes with the sightings (as pipeline.replay_file builds it)."""
    return PollRecord(
        feed=FEED_NAME, started_at=parsed.feed_now, duration_ms=0, requests=1, http_status=200,
        aircraft=parsed.aircraft, matched=selection.matched, kept=len(selection.sightings), stored=0,
        rejected=len(parsed.rejected), error=None,
    )  # fmt: skip


def floor_insert(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> int:
    """Bare executemany of the rows in one transaction; returns how many were inserted."""
    before = conn.total_changes
    conn.execute("BEGIN")
    conn.executemany(_INSERT_SIGHTING, rows)
    conn.execute("COMMIT")
    return conn.total_changes - before


def timed_run(bench: Bench, run_index: int) -> RunTimes:
    """One poll through every step; results stay referenced until the end so no free is timed."""
    now_ms = FIRST_NOW_MS + run_index * POLL_SPACING_S * MS_PER_S
    body = jv2_body(bench.ac_json, now_ms, bench.aircraft)
    received_at: datetime = from_epoch(now_ms / MS_PER_S)
    gc.collect()
    t0 = perf_counter()
    doc = json.loads(body)
    t1 = perf_counter()
    parsed = parse_readsb(
        body, feed=FEED_NAME, received_at=received_at, source=SOURCE, wanted=bench.selector.watchlist.wants
    )  # as the feed adapters call it
    t2 = perf_counter()
    selection = bench.selector.select(parsed.observations)
    t3 = perf_counter()
    stored = bench.store.save_poll(poll_record(parsed, selection), selection.sightings)
    t4 = perf_counter()
    rows = [sighting_row(s) for s in selection.sightings]
    t5 = perf_counter()
    inserted = floor_insert(bench.floor_conn, rows)
    t6 = perf_counter()
    del doc
    return RunTimes(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t6 - t5, len(parsed.observations), selection.matched,
                    len(selection.sightings), stored, inserted, len(parsed.rejected))  # fmt: skip


def run_all(bench: Bench, runs: int) -> list[RunTimes]:
    """Warm-up runs (discarded) then the measured runs, each with a later `now`."""
    for i in range(WARMUP_RUNS):
        timed_run(bench, i)
    return [timed_run(bench, WARMUP_RUNS + i) for i in range(runs)]


# -- setup ------------------------------------------------------------------------------------------


def open_bench(scratch: Path, aircraft: int, watched: int) -> tuple[Bench, int]:
    """Generate the feed and watchlist, open both SQLite files; returns the bench and the body size."""
    fleet, listed = make_fleet(aircraft, watched, SEED)
    ac_json = json.dumps(fleet, separators=(",", ":")).encode()
    watchlist: Watchlist = parse_watchlist(watchlist_csv(listed), "<bench watchlist>")
    area = Area(AREA_NAME, AREA_SOUTH_DEG, AREA_WEST_DEG, AREA_NORTH_DEG, AREA_EAST_DEG)
    selector = Selector(watchlist, Projector(AREA_CRS), area)
    store = SqliteStore(scratch / "pipeline.db")
    store.sync_watchlist(watchlist)
    floor_store = SqliteStore(scratch / "floor.db")
    body_bytes = len(jv2_body(ac_json, FIRST_NOW_MS, aircraft))
    return Bench(selector, store, floor_store.conn, ac_json, aircraft), body_bytes


def close_bench(bench: Bench) -> None:
    bench.store.close()
    bench.floor_conn.close()


def journal_mode(conn: sqlite3.Connection) -> str:
    return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


# -- report -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stat:
    best_s: float
    median_s: float


def stat(runs: Sequence[RunTimes], pick: Callable[[RunTimes], float]) -> Stat:
    values = [pick(r) for r in runs]
    return Stat(min(values), statistics.median(values))


@dataclass(slots=True)
class Summary:
    config: dict[str, Any]
    versions: dict[str, Any]
    feed: dict[str, Any]
    stages: dict[str, Stat] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    verdict: str = ""


STAGES: tuple[tuple[str, str, Callable[[RunTimes], float]], ...] = (
    ("parse", "parse      parse_readsb", lambda r: r.parse_s),
    ("select", "match+proj Selector.select", lambda r: r.select_s),
    ("store", "store      Store.save_poll", lambda r: r.store_s),
    ("pipeline", "PIPELINE   parse+select+store", lambda r: r.pipeline_s),
    ("json_loads", "floor (a)  json.loads", lambda r: r.json_s),
    ("executemany", "floor (b)  executemany", lambda r: r.executemany_s),
    ("floor", "FLOOR      (a)+(b)", lambda r: r.floor_s),
)


def versions() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "msgspec": msgspec.__version__,
        "pyproj": pyproj.__version__,
        "proj": pyproj.proj_version_str,
        "numpy": np.__version__,
        "sqlite3": sqlite3.sqlite_version,
        "cpu_count": os.cpu_count(),
        "machine": f"{platform.system()} {platform.machine()}",
    }


def feed_facts(runs: Sequence[RunTimes], body_bytes: int, aircraft: int, mode: str) -> dict[str, Any]:
    """What one poll held and produced (taken from the last run; they are the same in every run)."""
    last = runs[-1]
    return {
        "body_bytes": body_bytes,
        "bytes_per_aircraft": round(body_bytes / aircraft, 1),
        "observations_with_position": last.observations,
        "rejected": last.rejected,
        "matched": last.matched,
        "kept": last.kept,
        "stored_per_run": sorted({r.stored for r in runs}),
        "floor_inserted_per_run": sorted({r.floor_inserted for r in runs}),
        "journal_mode": mode,
    }


def summarise(runs: Sequence[RunTimes], config: dict[str, Any], feed: dict[str, Any]) -> Summary:
    summary = Summary(config, versions(), feed)
    summary.stages = {key: stat(runs, pick) for key, _, pick in STAGES}
    s = summary.stages
    summary.ratios = {
        "pipeline_over_floor_best": s["pipeline"].best_s / s["floor"].best_s,
        "pipeline_over_floor_median": s["pipeline"].median_s / s["floor"].median_s,
        "pipeline_over_json_best": s["pipeline"].best_s / s["json_loads"].best_s,
        "pipeline_over_json_median": s["pipeline"].median_s / s["json_loads"].median_s,
    }
    summary.verdict = "PASS" if summary.ratios["pipeline_over_floor_best"] <= TARGET_RATIO else "FAIL"
    return summary


def stage_lines(summary: Summary, aircraft: int) -> list[str]:
    pipeline_median_s = summary.stages["pipeline"].median_s
    lines = [f"{'stage':32} {'best ms':>9} {'median ms':>10} {'aircraft/s':>12} {'% pipeline':>11}"]
    for key, label, _ in STAGES:
        st = summary.stages[key]
        share = f"{100 * st.median_s / pipeline_median_s:10.1f}%" if key in ("parse", "select", "store") else ""
        if key in ("pipeline", "json_loads"):
            lines.append("-" * 77)
        lines.append(f"{label:32} {st.best_s * 1e3:9.2f} {st.median_s * 1e3:10.2f} "
                     f"{aircraft / st.best_s:12,.0f} {share:>11}")  # fmt: skip
    return lines


def print_text(summary: Summary) -> None:
    c, v, f, r = summary.config, summary.versions, summary.feed, summary.ratios
    print(f"Python {v['python']} | msgspec {v['msgspec']} | pyproj {v['pyproj']} (PROJ {v['proj']}) | "
          f"numpy {v['numpy']} | SQLite {v['sqlite3']} | {v['cpu_count']} CPUs | {v['machine']}")  # fmt: skip
    print(f"feed: {c['aircraft']:,} aircraft, {c['watched']} watched inside the area, "
          f"{f['body_bytes']:,} bytes ({f['bytes_per_aircraft']} B/aircraft), "
          f"{f['observations_with_position']:,} with a position, {f['rejected']} rejected")  # fmt: skip
    print(f"per run: matched {f['matched']}, kept {f['kept']}, stored {f['stored_per_run']}, "
          f"floor inserted {f['floor_inserted_per_run']}; journal_mode={f['journal_mode']}")  # fmt: skip
    print(f"runs: {WARMUP_RUNS} warm-up + {c['runs']} measured; aircraft/s = {c['aircraft']:,} / best")
    print()
    print("\n".join(stage_lines(summary, c["aircraft"])))
    print()
    print(
        f"pipeline / (json.loads + executemany floor): {r['pipeline_over_floor_best']:.2f}x best, "
        f"{r['pipeline_over_floor_median']:.2f}x median  (target <= {TARGET_RATIO:.0f}x): {summary.verdict}"
    )
    print(f"pipeline / json.loads floor:                 {r['pipeline_over_json_best']:.2f}x best, "
          f"{r['pipeline_over_json_median']:.2f}x median")  # fmt: skip


def as_json(summary: Summary) -> str:
    aircraft = summary.config["aircraft"]
    stages = {
        key: {"best_ms": round(st.best_s * 1e3, 3), "median_ms": round(st.median_s * 1e3, 3),
              "aircraft_per_s_best": round(aircraft / st.best_s)}
        for key, st in summary.stages.items()
    }  # fmt: skip
    return json.dumps({
        "config": summary.config, "versions": summary.versions, "feed": summary.feed, "stages": stages,
        "ratios": {k: round(x, 3) for k, x in summary.ratios.items()},
        "target_ratio": TARGET_RATIO, "verdict": summary.verdict,
    })  # fmt: skip


# -- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="measured runs (default %(default)s)")
    parser.add_argument("--aircraft", type=int, default=DEFAULT_AIRCRAFT, help="aircraft a response")
    parser.add_argument("--watched", type=int, default=DEFAULT_WATCHED, help="watched aircraft in the area")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.watched < 1 or args.aircraft < args.watched:
        parser.error("need --runs >= 1 and 1 <= --watched <= --aircraft")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    try:
        bench, body_bytes = open_bench(scratch, args.aircraft, args.watched)
        try:
            mode = journal_mode(bench.store.conn)
            runs = run_all(bench, args.runs)
        finally:
            close_bench(bench)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    config = {"aircraft": args.aircraft, "watched": args.watched, "runs": args.runs, "warmup": WARMUP_RUNS}
    summary = summarise(runs, config, feed_facts(runs, body_bytes, args.aircraft, mode))
    if args.json:
        print(as_json(summary))
    else:
        print_text(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
