#!/usr/bin/env python3
"""`ingest replay` of ten 10,000-aircraft snapshots, as a whole process, beside a floor in the same run.

    .venv/bin/python scripts/bench_replay.py [--runs 5] [--snapshots 10] [--aircraft 10000] [--watched 200]

The snapshots are bench_pipeline.py's synthetic jv2 responses (the full readsb field set, ~670 bytes an
aircraft), one a minute, in one .ndjson file; `--watched` aircraft of each are watched and inside the area.
- ingest: `ingest replay FILE` into a fresh SQLite file (its folder made new for every run), with a config
  naming the generated watchlist: start-up, decode, match, project, store, sorties, exit.
- floor: a bare `python -c` that reads the same file line by line, decodes each line with msgspec into a
  struct of the fields the replay uses, keeps the watched aircraft, and projects their positions with one
  vectorised pyproj call per snapshot (EPSG:4326 -> EPSG:5179, always_xy) - no storing, no sorties.
Prints the median and best wall time of each and their ratio; the machines are noisy, so compare ratios
measured in one run. Bytecode is cached as on a user's machine (PYTHONDONTWRITEBYTECODE is dropped).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import jv2_body, make_fleet, watchlist_csv  # a sibling script

PYTHON = sys.executable
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("INGEST_")}

FLOOR = """
import sys, msgspec, numpy as np, pyproj

class Ac(msgspec.Struct):
    hex: str
    lat: float | None = None
    lon: float | None = None
    alt_baro: int | str | None = None
    seen_pos: float | None = None
    flight: str | None = None

class Env(msgspec.Struct):
    ac: list[Ac]
    now: float

watched = set(open(sys.argv[2]).read().split())
decode = msgspec.json.Decoder(Env).decode
to_xy = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:5179", always_xy=True)
kept = 0
with open(sys.argv[1], "rb") as f:
    for line in f:
        env = decode(line)
        mine = [a for a in env.ac if a.hex in watched and a.lat is not None]
        x, y = to_xy.transform(np.array([a.lon for a in mine]), np.array([a.lat for a in mine]))
        kept += int(np.isfinite(x).sum())
print(kept)
"""


def timed(argv: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=ENV, check=False)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return took, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--snapshots", type=int, default=10)
    parser.add_argument("--aircraft", type=int, default=10_000)
    parser.add_argument("--watched", type=int, default=200)
    args = parser.parse_args()
    import json

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fleet, listed = make_fleet(args.aircraft, args.watched, seed=7)
        ac_json = json.dumps(fleet, separators=(",", ":")).encode()
        start_ms = 1_795_210_200_000  # 2026-11-20T21:30:00Z: a past time, as every recording's
        recording = root / "snapshots.ndjson"
        with recording.open("wb") as f:
            for i in range(args.snapshots):
                f.write(jv2_body(ac_json, start_ms + i * 60_000, len(fleet)) + b"\n")
        (root / "watchlist.csv").write_text(watchlist_csv(listed))
        (root / "watched.txt").write_text("\n".join(w.hex_icao for w in listed))
        config = root / "ingest.toml"
        watchlist = root / "watchlist.csv"
        config.write_text(
            f'[watchlist]\npath = "{watchlist}"\n[replay]\non_start = []\n[daemon]\nlog_level = "WARNING"\n'
        )
        script = Path(PYTHON).parent / "ingest"
        ingest = [str(script)] if script.exists() else [PYTHON, "-m", "ingest"]
        floor_argv = [PYTHON, "-c", FLOOR, str(recording), str(root / "watched.txt")]
        size_mb = recording.stat().st_size / 1e6
        times: dict[str, list[float]] = {"floor": [], "ingest replay": []}
        for run in range(args.runs + 1):  # the first of each is a warm-up, not counted
            took, kept = timed(floor_argv)
            db = root / f"run{run}" / "ingest.db"
            took_replay, out = timed(
                [*ingest, "replay", "--config", str(config), "--database", str(db), str(recording)]
            )
            if run:
                times["floor"].append(took)
                times["ingest replay"].append(took_replay)
    print(f"{args.snapshots} snapshots x {args.aircraft} aircraft ({size_mb:.0f} MB), {args.watched} watched in area")
    print(f"floor kept {kept.strip()} positions; ingest: {out.strip()}")
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:14s} median {median[name] * 1000:8.1f} ms   best {min(t) * 1000:8.1f} ms")
    print(f"ingest replay / floor = {median['ingest replay'] / median['floor']:.2f}x (medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
