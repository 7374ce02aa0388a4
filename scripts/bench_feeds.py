"""Feeds: requests per tick of every feed kind and query mode, and the merge throughput of three feeds.

1. For the default Korean box (config/ingest.toml's [area]) and the bundled watchlist, how many requests
   one tick of each feed kind and query mode makes (what the published limits are checked against).
2. Merge throughput: three readsb-v2 responses of 10,000 aircraft each (the same fleet seen by three
   feeds, each with its own `seen_pos`), parsed in full (no watchlist prefilter, so all 30,000 records
   become Observations) and merged per aircraft with `pipeline.merge_freshest`, beside a floor measured in
   the same run: bare `json.loads` of the same three bodies. Best and median of N runs.

Run from the repository root:  .venv/bin/python scripts/bench_feeds.py [--runs 15] [--aircraft 10000]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ingest.config import load  # noqa: E402
from ingest.feeds import FEEDS, FeedContext  # noqa: E402
from ingest.feeds.base import StreamFeed  # noqa: E402
from ingest.feeds.readsb import parse_readsb  # noqa: E402
from ingest.geo import Area  # noqa: E402
from ingest.pipeline import merge_freshest  # noqa: E402
from ingest.watchlist import load_watchlist  # noqa: E402

FEEDS_MERGED = 3
NOW_MS = 1_795_000_000_000
SEED = 4125

# (label, kind, queries, extra settings)
MODES: tuple[tuple[str, str, tuple[str, ...], dict[str, Any]], ...] = (
    ("adsb.lol readsb-v2 hex", "readsb-v2", ("hex",), {"base_url": "https://api.adsb.lol"}),
    ("adsb.lol readsb-v2 area", "readsb-v2", ("area",), {"base_url": "https://api.adsb.lol"}),
    ("adsb.lol readsb-v2 mil", "readsb-v2", ("mil",), {"base_url": "https://api.adsb.lol"}),
    ("adsb.lol readsb-v2 hex+area+mil", "readsb-v2", ("hex", "area", "mil"), {"base_url": "https://api.adsb.lol"}),
    ("adsb.fi readsb-v2 hex", "readsb-v2", ("hex",), {"base_url": "https://opendata.adsb.fi/api"}),
    ("adsbx (rapidapi) hex", "adsbx", ("hex",), {"auth": "rapidapi", "api_key": "k"}),
    ("airplanes.live hex", "airplanes-live", ("hex",), {"api_key": "k"}),
    ("opensky area", "opensky", ("area",), {}),
    ("opensky hex", "opensky", ("hex",), {}),
    ("sbs (stream)", "sbs", ("hex",), {"host": "127.0.0.1"}),
)


def requests_per_tick() -> list[tuple[str, str]]:
    """(mode, requests per tick) for each mode that this build knows."""
    settings = load(REPO / "config" / "ingest.toml", environ={}, overrides={"replay.on_start": ""})
    a = settings.area
    context = FeedContext(
        load_watchlist(REPO / settings.watchlist.path), Area(a.name, a.south, a.west, a.north, a.east)
    )
    template = settings.feeds[0]
    rows = []
    for label, kind, queries, extra in MODES:
        if kind not in FEEDS:
            rows.append((label, "(kind not in this build)"))
            continue
        fs = replace(
            template,
            name=label,
            kind=kind,
            queries=queries,
            base_url=extra.get("base_url", ""),
            **{k: v for k, v in extra.items() if k != "base_url"},
        )
        feed = FEEDS[kind](fs, context)
        rows.append((label, "0 (a stream)" if isinstance(feed, StreamFeed) else str(len(feed.requests()))))
    return rows


def fleet(total: int, rng: random.Random) -> list[dict[str, Any]]:
    """`total` aircraft with the readsb fields a feed sends, half of them over the Korean box."""
    aircraft = []
    for i in range(total):
        korea = i % 2 == 0
        lat = rng.uniform(33.0, 43.5) if korea else rng.uniform(-60, 70)
        lon = rng.uniform(124.0, 132.0) if korea else rng.uniform(-180, 180)
        aircraft.append({
            "hex": f"{0x700000 + i:06x}", "type": "adsb_icao", "flight": f"TST{i % 9999:04d} ", "r": f"HL{i:05d}",
            "t": "B738", "alt_baro": rng.randrange(0, 41000, 25), "alt_geom": 30000,
            "gs": round(rng.uniform(0, 520), 1),
            "track": round(rng.uniform(0, 359.99), 2), "baro_rate": 0, "squawk": "1200", "category": "A3",
            "nav_qnh": 1013.2, "lat": round(lat, 6), "lon": round(lon, 6), "nic": 8, "rc": 186, "version": 2,
            "nac_p": 9, "nac_v": 1, "sil": 3, "sil_type": "perhour", "mlat": [], "tisb": [], "messages": 5000,
            "seen": 0.4, "rssi": -18.2,
        })  # fmt: skip
    return aircraft


def bodies(total: int) -> list[bytes]:
    """The same fleet as three feeds report it: each with its own position age per aircraft."""
    rng = random.Random(SEED)
    aircraft = fleet(total, rng)
    out = []
    for _ in range(FEEDS_MERGED):
        ac = [{**a, "seen_pos": round(rng.uniform(0.1, 8.0), 3)} for a in aircraft]
        out.append(json.dumps({"ac": ac, "msg": "No error", "now": NOW_MS, "total": total}).encode())
    return out


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """(best, median) seconds of `runs` calls after one warm-up; GC collected between calls, untimed."""
    fn()
    times = []
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--aircraft", type=int, default=10_000, help="aircraft per feed")
    args = parser.parse_args(argv)
    received = datetime.now(UTC)
    payloads = bodies(args.aircraft)

    def parse_all() -> list[Any]:
        obs = []
        for n, body in enumerate(payloads):
            obs.extend(parse_readsb(body, feed=f"feed{n}", received_at=received, source="bench").observations)
        return obs

    observations = parse_all()
    merged = merge_freshest(observations)
    floor = timed(lambda: [json.loads(b) for b in payloads], args.runs)
    parse = timed(parse_all, args.runs)
    merge = timed(lambda: merge_freshest(observations), args.runs)
    total = args.aircraft * FEEDS_MERGED
    print(f"Python {platform.python_version()} | {platform.machine()} | command: {' '.join(sys.argv)}")
    print("\n1. Requests per tick (Korean box 33-43.5 N, 124-132 E; bundled watchlist)")
    for label, n in requests_per_tick():
        print(f"  {label:<36} {n}")
    print(f"\n2. Merge of {FEEDS_MERGED} feeds x {args.aircraft:,} aircraft ({sum(map(len, payloads)) / 1e6:.1f} MB), "
          f"{len(observations):,} observations -> {len(merged):,} aircraft; best / median of {args.runs}")  # fmt: skip
    rows = [("floor: json.loads of the 3 bodies", floor), ("parse_readsb, no prefilter", parse),
            ("merge_freshest", merge), ("parse + merge", (parse[0] + merge[0], parse[1] + merge[1]))]  # fmt: skip
    for label, (best, median) in rows:
        print(f"  {label:<36} {best * 1000:8.1f} ms {median * 1000:8.1f} ms  {total / best:>12,.0f} records/s")
    print(f"\n  merge alone / floor: {merge[0] / floor[0]:.2f}x best; parse + merge / floor: "
          f"{(parse[0] + merge[0]) / floor[0]:.2f}x best, {(parse[1] + merge[1]) / floor[1]:.2f}x median")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
