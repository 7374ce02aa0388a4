#!/usr/bin/env python3
"""How fast commands start, as whole processes, beside floors measured in the same run.

    .venv/bin/python scripts/bench_cli.py [--runs 15]

Replays the bundled demo into a temporary database, then times, interleaved, `--runs` times each:
- floor `python -c pass`, and `ingest --help` (target: within 2x of it);
- floor: a bare `python -c` that opens the database with sqlite3 and runs the SELECT `ingest sightings`
  runs; `ingest sightings 62-4125 --limit 5` and `ingest sorties` (target: within 3x of it);
- `ingest health` (Docker's HEALTHCHECK, every 30 s; the demo database has no feed success, so it
  answers "unhealthy", exit 1, after the same reads; target: within 3x of the bare query);
- `ingest now`, for the record.
Prints the median and best wall time of each and the ratios of the medians; exits 1 when a target is
missed. The machines are noisy: compare ratios from one run, not times across runs. Bytecode is cached as
on a user's machine (PYTHONDONTWRITEBYTECODE, which some sandboxes set, is dropped for the timed runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
DEMO = REPO / "config" / "demo" / "synthetic-tora23-replay.ndjson.gz"

BARE_QUERY = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
hexes = [h for (h,) in conn.execute(
    "SELECT hex FROM aircraft_hex JOIN aircraft ON aircraft.id = aircraft_id WHERE key = ?", ("62-4125",))]
rows = conn.execute(
    "SELECT hex, registration, type, callsign, ts, lat, lon, x_m, y_m, alt_baro_ft, on_ground, alt_geom_ft, gs_kt, "
    "track_deg, squawk, source_type, feed, emergency FROM sightings WHERE hex IN (%s) ORDER BY ts DESC LIMIT 5"
    % ",".join("?" * len(hexes)), hexes).fetchall()
for row in reversed(rows):
    print(row)
"""


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False, env=ENV)
    took = time.perf_counter() - t0
    unhealthy = argv[-3:-2] == ["health"] and done.returncode == 1 and "unhealthy" in done.stderr
    if done.returncode != 0 and not unhealthy:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "demo.db"
        # The console script, as users run it (`python -m ingest` adds runpy's few milliseconds).
        script = Path(PYTHON).parent / "ingest"
        ingest = [str(script)] if script.exists() else [PYTHON, "-m", "ingest"]
        subprocess.run([*ingest, "replay", "--database", str(db), str(DEMO)], check=True, capture_output=True)
        cases = {
            "python -c pass": [PYTHON, "-c", "pass"],
            "ingest --help": [*ingest, "--help"],
            "bare sqlite3 query": [PYTHON, "-c", BARE_QUERY, str(db)],
            "ingest sightings": [*ingest, "sightings", "62-4125", "--limit", "5", "--database", str(db)],
            "ingest sorties": [*ingest, "sorties", "--database", str(db)],
            "ingest now": [*ingest, "now", "--database", str(db)],
            "ingest health": [*ingest, "health", "--database", str(db)],
        }
        for argv in cases.values():  # warm the page cache and the bytecode
            timed(argv)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, argv in cases.items():
                times[name].append(timed(argv))
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:20s} median {median[name] * 1000:7.1f} ms   best {min(t) * 1000:7.1f} ms")
    targets = [
        ("ingest --help", "python -c pass", 2.0),
        ("ingest sightings", "bare sqlite3 query", 3.0),
        ("ingest sorties", "bare sqlite3 query", 3.0),
        ("ingest health", "bare sqlite3 query", 3.0),
    ]
    missed = 0
    for what, floor, limit in targets:
        ratio = median[what] / median[floor]
        ok = ratio <= limit
        missed += not ok
        print(f"{what} / {floor} = {ratio:.2f}x (target <= {limit:g}x) {'ok' if ok else 'MISSED'}")
    print(f"ingest now / bare sqlite3 query = {median['ingest now'] / median['bare sqlite3 query']:.2f}x")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
