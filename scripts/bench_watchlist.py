#!/usr/bin/env python3
"""How fast a big watchlist is read and changed, beside floors measured in the same run.

    .venv/bin/python scripts/bench_watchlist.py [--rows 17000] [--runs 7]

Builds a plane-alert-db list of `--rows` rows (plane-alert-db's whole list is about 17,000) from the
bundled test copy of plane-alert-mil.csv (tests/fixtures/, ODbL 1.0), imports it into a temporary user
folder with an edit on top, then times, interleaved, `--runs` times each:

- in one process: the start-up read of the list (`load_effective`: the imported list read leniently, the
  edits strictly, the two combined into frozen records indexed by hex and registration) against a floor of
  the csv module reading the same file into a dict by hex (target: within 6x); one look of the running
  daemon's watcher (three stat calls), for the record;
- as whole processes: `ingest watchlist list --format csv` and `ingest watchlist show` against a floor
  process that reads the file with the csv module (target: within 6x); `ingest watchlist import` of the
  same list against a floor process that reads it and writes it back atomically (target: within 12x: the
  import reads the new list strictly and the current one, compares them, and imports the feed stack,
  pyproj and numpy included, about 0.4 s, to build the feeds' request plans and check their rates).

Prints the median and best of each and the ratios of the medians; exits 1 when a target is missed. The
machines are noisy: compare ratios from one run, not times across runs.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ingest.config import load  # noqa: E402
from ingest.watchlist_files import load_effective, sources  # noqa: E402
from tests.unit.conftest import write_big_watchlist  # noqa: E402

PYTHON = sys.executable
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("INGEST_")}

FLOOR_READ = """
import csv, sys
with open(sys.argv[1], encoding="utf-8", newline="") as fh:
    rows = csv.reader(fh)
    header = next(rows)
    by_hex = {row[0].lower(): row for row in rows}
print(len(by_hex))
"""
FLOOR_IMPORT = (
    FLOOR_READ
    + """
import os
data = open(sys.argv[1], "rb").read()
tmp = sys.argv[2] + ".tmp"
with open(tmp, "wb") as fh:
    fh.write(data)
    fh.flush()
    os.fsync(fh.fileno())
os.replace(tmp, sys.argv[2])
"""
)


def timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False, env=ENV)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return took


def timed_call(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def floor_read(path: Path) -> int:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh)
        next(rows)
        return len({row[0].lower(): row for row in rows})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=17_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        big = write_big_watchlist(root / "big.csv", args.rows)
        first_hex = big.read_text().splitlines()[1].split(",")[0]
        config = root / "ingest.toml"
        config.write_text(
            f'[database]\npath = "{root / "ingest.db"}"\n[watchlist]\npath = "{REPO / "config" / "watchlist.csv"}"\n'
            "[replay]\non_start = []\n"
            # A feed, as every real config has: an import checks its request plan (no request is made).
            '[[feeds]]\nname = "bench"\nkind = "readsb-v2"\nbase_url = "http://127.0.0.1:9"\ninterval_s = 60\n'
        )
        script = Path(PYTHON).parent / "ingest"
        ingest = [str(script)] if script.exists() else [PYTHON, "-m", "ingest"]
        common = ["--config", str(config)]
        subprocess.run([*ingest, "watchlist", "import", str(big), *common], check=True, capture_output=True, env=ENV)
        subprocess.run(
            [*ingest, "watchlist", "add", "--hex", "fffff0", "--registration", "BENCH-1", *common],
            check=True, capture_output=True, env=ENV,
        )  # fmt: skip
        settings = load(config, environ={})
        where = sources(settings)
        calls: dict[str, Callable[[], object]] = {
            "floor: csv read (in process)": lambda: floor_read(big),
            "start-up read (in process)": lambda: load_effective(settings),
            "watcher look (in process)": where.signature,
        }
        processes = {
            "floor: csv read": [PYTHON, "-c", FLOOR_READ, str(big)],
            "floor: read + atomic write": [PYTHON, "-c", FLOOR_IMPORT, str(big), str(root / "copy.csv")],
            "ingest watchlist list": [*ingest, "watchlist", "list", "--format", "csv", *common],
            "ingest watchlist show": [*ingest, "watchlist", "show", first_hex, *common],
            "ingest watchlist import": [*ingest, "watchlist", "import", str(big), *common],
        }
        for fn in calls.values():
            fn()
        for argv in processes.values():  # warm the page cache and the bytecode
            timed(argv)
        times: dict[str, list[float]] = {name: [] for name in [*calls, *processes]}
        for _ in range(args.runs):
            for name, fn in calls.items():
                times[name].append(timed_call(fn))
            for name, argv in processes.items():
                times[name].append(timed(argv))
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"{args.rows:,} rows, {args.runs} runs")
    for name, t in times.items():
        print(f"{name:30s} median {median[name] * 1000:8.2f} ms   best {min(t) * 1000:8.2f} ms")
    targets = [
        ("start-up read (in process)", "floor: csv read (in process)", 6.0),
        ("ingest watchlist list", "floor: csv read", 6.0),
        ("ingest watchlist show", "floor: csv read", 6.0),
        ("ingest watchlist import", "floor: read + atomic write", 12.0),
    ]
    missed = 0
    for what, floor, limit in targets:
        ratio = median[what] / median[floor]
        ok = ratio <= limit
        missed += not ok
        print(f"{what} / {floor} = {ratio:.2f}x (target <= {limit:g}x) {'ok' if ok else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
