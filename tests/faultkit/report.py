"""docs/reliability.md from the JSON that scripts/faults.py and scripts/soak.py write (run by scripts/prove).

python -m tests.faultkit.report --faults faults.json --soak soak.json --fuzz "passed" --out docs/reliability.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

PROMISES = """\
- A malformed aircraft record is counted and skipped; the rest of the poll is kept.
- A feed error parks that feed with backoff and is logged once per episode.
- Nothing is lost: every watched position inside the area that a good answer carried while the daemon was
  up and the disk had room is stored exactly once (compared by hex and position second).
- Our own failure (a feed down, a full disk, the daemon stopped, the broker away) is never read as the
  aircraft's silence: exactly the sorties the world flew, each with the world's end reason.
- Every alert reaches the subscriber; an `event_id` comes twice only in the documented window (published,
  not yet acknowledged, when the daemon was killed).
- No traceback in the log, at most one warning line per fault; memory stays bounded; the database passes
  `PRAGMA integrity_check`."""

RULES = """\
How the harness decides (tests/faultkit/checks.py): positions served in the 1.5 s before a kill -9, from 1 s
before the disk filled until it was freed, or under a lying `now` are allowed but not required; a
duplicate alert is tolerated only when its first copy arrived at most 3 s before a kill -9 and the second
after it. "Data lost" counts (hex, second) positions a good answer carried that are not stored;
"duplicates" counts extra alert copies (tolerated ones in brackets)."""


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "?"
    return done.stdout.strip() or "?"


def faults_section(faults: dict[str, Any]) -> list[str]:
    rows = faults["scenarios"]
    ok = sum(r["passed"] == r["runs"] for r in rows)
    lines = [
        f"## Fault scenarios ({faults['profile']} profile, {faults['duration_s'] / 60:.0f} min, "
        f"{ok} of {len(rows)} scenarios passed)",
        "",
        "| scenario | runs | passed | data lost | duplicates | max RSS |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        dups = f"{r['duplicates']}" + (f" ({r['tolerated_duplicates']})" if r.get("tolerated_duplicates") else "")
        rss = f"{r['max_rss_mb']:.0f} MB" if r.get("max_rss_mb") else "-"
        lines.append(f"| {r['scenario']} | {r['runs']} | {r['passed']} | {r['lost']} | {dups} | {rss} |")
    failing = [r for r in rows if r["passed"] != r["runs"]]
    if failing:
        lines += ["", "What failed (the first finding of each kind; scripts/faults.py prints them all):", ""]
        for r in failing:
            lines.append(f"- **{r['scenario']}**: " + (r["error"] or ", ".join(r["failures"])))
            lines += [f"  - {_cut(e)}" for e in r.get("examples", [])]
    return lines


def soak_section(soak: dict[str, Any] | None, status: str) -> list[str]:
    if soak is None:
        return ["## Soak", "", f"Not run: {status}."]
    lat = soak["latency_ms"]
    match = "" if soak["sorties_match"] else " **(mismatch)**"
    return [
        f"## Soak ({soak['hours']:g} simulated hours in {soak['wall_s'] / 60:.1f} min)",
        "",
        f"- {soak['polls']} polls of {soak['requests_per_poll']:g} requests every 10 simulated seconds, "
        f"{soak['aircraft_per_poll']} aircraft records per poll (~800 in the box, the two circles overlap), "
        f"{soak['watched']} watched",
        f"- RSS {soak['rss_start_mb']} MB at start (after the first poll), {soak['rss_end_mb']} MB at the end",
        f"- database growth {soak['db_growth_per_day_mb']} MB per simulated day ({soak['sightings']} sightings)",
        f"- poll latency p50 {lat['50']} ms, p95 {lat['95']} ms, p99 {lat['99']} ms (max {soak['latency_max_ms']} ms; "
        "fetch to commit, the loopback server's own time included)",
        f"- CPU {soak['cpu_s_per_poll']} s per poll (p95 {soak['cpu_s_per_poll_p95']} s)",
        f"- sorties {soak['sorties_found']} found of {soak['sorties_flown']} flown{match}",
    ]


def _cut(text: str, n: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def render(faults: dict[str, Any] | None, soak: dict[str, Any] | None, fuzz: str, soak_status: str,
           commands: list[str], timings: list[str]) -> str:  # fmt: skip
    head = _git("rev-parse", "--short", "HEAD")
    branch = _git("rev-parse", "--abbrev-ref", "HEAD")
    lines = [
        "# Reliability",
        "",
        f"Written by `scripts/prove` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} at `{head}` "
        f"({branch}); {' · '.join(timings)}.",
        "",
        "## The promises",
        "",
        PROMISES,
        "",
        RULES,
        "",
    ]
    lines += faults_section(faults) if faults else ["## Fault scenarios", "", "Not run."]
    lines += ["", *soak_section(soak, soak_status), "", "## Fuzz", "", fuzz, "", "## Reproduce", "", "```"]
    lines += [*commands, "```", ""]
    return "\n".join(lines)


def _load(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.exists() or not path.stat().st_size:
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/reliability.md")
    parser.add_argument("--faults", type=Path)
    parser.add_argument("--soak", type=Path)
    parser.add_argument("--soak-status", default="scripts/soak.py failed; see its log")
    parser.add_argument("--fuzz", default="not run", help="one line on the fuzz run")
    parser.add_argument("--command", action="append", default=[], help="a command to reproduce (repeatable)")
    parser.add_argument("--timing", action="append", default=[], help="e.g. 'faults 14 min' (repeatable)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    text = render(_load(args.faults), _load(args.soak), args.fuzz, args.soak_status, args.command, args.timing)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
