"""Fault scenarios against the real daemon: prove the reliability promises, or show where they break.

Each scenario runs in a session of its own: `python -m ingest run` as a child process polls a loopback
readsb-v2 feed server whose scripted world flies three watched aircraft (tests/fixtures/
watchlist_small.csv) on known orbits over Korea, stores into SQLite and publishes to a private mosquitto
on free ports, where a paho subscriber records every alert with its arrival time. The scenario's fault
is applied N times (episodes) in the middle of those flights; afterwards the session is judged on the
promises (tests/faultkit/checks.py says exactly how):

  - PRAGMA integrity_check is ok;
  - every watched position inside the area that a good answer carried is stored exactly once, compared
    by (hex, position second); positions served just before a kill -9 (its commit may not have
    happened), while the disk was full, or under a lying `now` are allowed but not required;
  - exactly the sorties the world flew (one start per flight, the world's end reason): a feed outage,
    a full disk, a stopped daemon or a broker outage never splits or ends a sortie;
  - every alert reaches the subscriber; no event_id twice unless the second copy follows a kill -9
    within the PUBACK window;
  - no Traceback in the daemon's log, at most one warning line per fault; VmRSS under the limit.

Scenarios (tests/faultkit/server.py, tests/faultkit/session.py): http-429-retry-after, http-429,
http-500, http-503, hang, cut-mid-body, drip-headers, drip-body, garbage, gzip-bomb, redirect-302,
html-200 (feed outages, each longer than gap_s); poison-seen-pos-1e300 and poison-nested-5000 (a poisoned
record among good ones, in two answers), poison-now-year-10000 and poison-now-future-1h (`now` lies in
one answer); broker-outage; disk-full (the database on a tmpfs filled by a filler file: needs root, and
fails, never skips, when the mount fails); kill-9 (a burst of kill -9 at random points, each followed
by a restart); daemon-stopped (SIGTERM, down for longer than gap_s, started again).

Profiles (both poll every 1 s with 0.5 s connect and read timeouts and check sorties every 0.25 s, so
that backoff and deadlines are the daemon's own):
  short  gap_s 4 s, outages 4.5 s, drips give up after 12 s, broker away 15 s, disk full 6 s, 6 kills,
         1 run of each scenario: what tests/integration/test_faults.py runs (there in two shared
         sessions, ~3.5 min); here one session per scenario, ~9 min.
  long   gap_s 5 s, outages 6 s, drips 30 s, broker away 120 s, disk full 10 s, 20 kills, 3 runs of each
         scenario (1 of broker-outage and of kill-9); the default, 20 min on a shared 2-core machine
         against today's failures.

    .venv/bin/python scripts/faults.py                      # long profile, every scenario
    .venv/bin/python scripts/faults.py --profile short --only http-500,kill-9 --runs 2
    .venv/bin/python scripts/faults.py --json faults.json   # what scripts/prove reads

Exit status: 0 when every scenario passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.faultkit import PROFILES, SCENARIOS, Broker, HarnessError, SessionResult, run_session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="long")
    parser.add_argument("--runs", type=int, help="episodes of every scenario (default: the profile's)")
    parser.add_argument("--only", help="comma-separated scenarios (default: all): " + ", ".join(SCENARIOS))
    parser.add_argument("--seed", type=int, default=20261201, help="for the kill -9 timings")
    parser.add_argument("--workdir", type=Path, help="keep every session's files here (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    scenarios = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ingest-faults-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    broker = Broker(workdir / "broker", persistence=True)  # persistence: the subscriber's session survives
    broker.start()
    rows: list[dict[str, Any]] = []
    try:
        for i, scenario in enumerate(scenarios):
            runs = args.runs or profile.runs_for(scenario)
            print(f"== {scenario}: {runs} run(s), {args.profile} profile", flush=True)
            rows.append(_scenario(scenario, runs, profile, workdir / scenario, broker, args.seed + i))
            print(rows[-1]["report"], flush=True)
    finally:
        broker.stop()
    took = time.monotonic() - t0
    print(_table(rows))
    passed = sum(r["passed"] == r["runs"] for r in rows)
    print(f"{passed}/{len(rows)} scenarios passed in {took:.0f} s; files in {workdir}")
    if args.json:
        doc = {
            "profile": args.profile,
            "seed": args.seed,
            "duration_s": round(took),
            "argv": sys.argv[1:],
            "scenarios": rows,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(r["passed"] == r["runs"] for r in rows) else 1


def _scenario(scenario: str, runs: int, profile: Any, workdir: Path, broker: Broker, seed: int) -> dict[str, Any]:
    t0 = time.monotonic()
    row: dict[str, Any] = {
        "scenario": scenario, "runs": runs, "passed": 0, "lost": 0, "duplicates": 0, "tolerated_duplicates": 0,
        "max_rss_mb": None, "failures": [], "examples": [], "error": None,
    }  # fmt: skip
    try:
        result: SessionResult = run_session(scenario, [scenario] * runs, profile, workdir, broker, seed)
    except (HarnessError, OSError) as exc:
        row.update(error=f"{type(exc).__name__}: {exc}", report=f"FAIL {scenario}: {exc}")
    else:
        clean = not result.findings
        row.update(
            passed=sum(e.passed and clean for e in result.episodes),
            lost=result.stats["lost"],
            duplicates=result.stats["duplicates"],
            tolerated_duplicates=sum(e.tolerated_duplicates for e in result.episodes),
            max_rss_mb=result.stats["max_rss_mb"],
            failures=sorted({f.kind for e in result.episodes for f in e.findings} | {f.kind for f in result.findings}),
            examples=_examples(result),
            report=result.report(),
        )
        (workdir / "report.txt").write_text(row["report"] + "\n")
    row["duration_s"] = round(time.monotonic() - t0)
    return row


def _examples(result: SessionResult) -> list[str]:
    """The first finding of each kind, for the report."""
    seen: dict[str, str] = {}
    for f in [*result.findings, *(f for e in result.episodes for f in e.findings)]:
        seen.setdefault(f.kind, f"{f.kind}: {f.message}")
    return list(seen.values())


def _table(rows: list[dict[str, Any]]) -> str:
    head = f"{'scenario':<24} {'runs':>4} {'passed':>6} {'lost':>5} {'dups':>5} {'max RSS':>8}  failed checks"
    lines = [head, "-" * len(head)]
    for r in rows:
        rss = f"{r['max_rss_mb']:.0f} MB" if r["max_rss_mb"] else "-"
        why = r["error"] or ", ".join(r["failures"])
        lines.append(
            f"{r['scenario']:<24} {r['runs']:>4} {r['passed']:>6} {r['lost']:>5} {r['duplicates']:>5} {rss:>8}  {why}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
