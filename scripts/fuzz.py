#!/usr/bin/env python3
"""Run the parsers' fuzz tests (tests/unit/test_fuzz_*.py) with the long profile and print a summary.

    .venv/bin/python scripts/fuzz.py                      # 20,000 examples per test
    .venv/bin/python scripts/fuzz.py --examples 2000 -k sbs

The normal suite runs the same tests with a few dozen examples each; here INGEST_FUZZ_EXAMPLES sets every
test's max_examples (tests/unit/conftest.py: fuzz()) and adds 100,000-level nests to the hostile values.
Hypothesis keeps the failing examples it found in .hypothesis/ (git-ignored) and tries them first next
time. Exit status: pytest's (0 when every test passed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FUZZ_FILES = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests" / "unit").glob("test_fuzz_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=20_000, help="examples per test (default 20000)")
    parser.add_argument("-k", dest="select", default="", help="pytest -k expression, e.g. 'sbs or opensky'")
    parser.add_argument("-x", dest="exitfirst", action="store_true", help="stop at the first failing test")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "fuzz.xml"
        command = [
            sys.executable, "-m", "pytest", *FUZZ_FILES, "-q", "-p", "no:cacheprovider",
            "--hypothesis-show-statistics", f"--junitxml={report}",
        ]  # fmt: skip
        if args.select:
            command += ["-k", args.select]
        if args.exitfirst:
            command.append("-x")
        env = os.environ | {"INGEST_FUZZ_EXAMPLES": str(args.examples)}
        print(f"fuzz: {args.examples} examples per test over {len(FUZZ_FILES)} files", flush=True)
        started = time.monotonic()
        code = subprocess.call(command, cwd=REPO, env=env)
        elapsed_s = time.monotonic() - started
        summary(report, args.examples, elapsed_s)
    return code


def summary(report: Path, examples: int, elapsed_s: float) -> None:
    if not report.exists():
        print("fuzz: no report (pytest did not run)")
        return
    rows = []
    for case in ET.parse(report).getroot().iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "FAILED" if child.tag == "failure" else "ERROR"
            elif child.tag == "skipped":
                outcome = "skipped"
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        rows.append((name, outcome, float(case.get("time", 0.0))))
    width = max((len(n) for n, _, _ in rows), default=10)
    print(f"\n{'test':<{width}}  result   seconds")
    for name, outcome, seconds in rows:
        print(f"{name:<{width}}  {outcome:<7}  {seconds:8.1f}")
    failed = sum(1 for _, outcome, _ in rows if outcome not in ("passed", "skipped"))
    print(
        f"\nfuzz: {len(rows)} tests, {failed} failed, up to {examples} examples each, {elapsed_s:.0f} s"
        + ("" if not failed else "; the failing examples are printed above and kept in .hypothesis/")
    )


if __name__ == "__main__":
    raise SystemExit(main())
