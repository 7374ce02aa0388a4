"""Build config/watchlist.csv from a plane-alert-db CSV.

Selects the ISR aircraft types that are regularly seen over and around the
Korean peninsula from a sdr-enthusiasts/plane-alert-db file
(plane-alert-mil.csv or the trimmed subset in the shared reference) and
writes them, sorted by ICAO hex, to config/watchlist.csv.

The header line and every selected row are copied from the source as raw
text, byte for byte. Rows are never re-serialised with csv.writer, so a row
that the csv module would quote differently still comes out unchanged.

The source data, and therefore the output, is under the Open Database
License 1.0 with contents under the Database Contents License 1.0; see
config/WATCHLIST-LICENSE.md.

Usage:
    python scripts/build_watchlist.py [--source CSV] [-o OUTPUT]
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT.parent / "shared/reference/samples/plane-alert-mil_us-isr-korea_subset.csv"
DEFAULT_OUTPUT = REPO_ROOT / "config/watchlist.csv"

EXPECTED_HEADER = "$ICAO,$Registration,$Operator,$Type,$ICAO Type,#CMPG,$Tag 1,$#Tag 2,$#Tag 3,Category,$#Link"
ICAO_COL = 0
OPERATOR_COL = 2
TYPE_COL = 3

USAF = "USAF"
USN = "United States Navy"
ROKN = "Republic of Korea Navy"
ROKAF = "Republic of Korea Air Force"
JASDF = "Japan Air Self-Defense Force"


@dataclass(frozen=True)
class Rule:
    """One watchlist category: an operator set and a pattern on the Type column."""

    category: str
    operators: frozenset[str]
    type_pattern: re.Pattern[str]

    def matches(self, operator: str, aircraft_type: str) -> bool:
        return operator in self.operators and bool(self.type_pattern.search(aircraft_type))


# (category, operator predicate, type predicate). First matching rule wins.
# RC-135: only the V/W/S/U reconnaissance variants, not TC-/OC-/WC-/NC-135.
# U-2: the whole U-2 family (U-2S, U-2R, U-2A and the TU-2S trainer), not U-28A.
RULES: tuple[Rule, ...] = (
    Rule("RC-135V/W/S/U", frozenset({USAF}), re.compile(r"\bRC-135[VWSU]\b")),
    Rule("RQ-4 Global Hawk", frozenset({USAF, JASDF}), re.compile(r"RQ-4 Global Hawk")),
    Rule("EP-3E", frozenset({USN}), re.compile(r"\bEP-3E\b")),
    Rule("P-8 Poseidon", frozenset({USN, ROKN}), re.compile(r"\bP-8A? Poseidon\b")),
    Rule("E-3 Sentry", frozenset({USAF}), re.compile(r"\bE-3[BCG] Sentry\b")),
    Rule("U-2 family", frozenset({USAF}), re.compile(r"\bT?U-2[SRA]\b")),
    Rule("E-737 Peace Eye", frozenset({ROKAF}), re.compile(r"\bE-737 Peace Eye\b")),
)


def classify(fields: list[str]) -> str | None:
    """Return the category of a parsed row, or None if it is not watched."""
    for rule in RULES:
        if rule.matches(fields[OPERATOR_COL], fields[TYPE_COL]):
            return rule.category
    return None


def parse_line(line: str, n_columns: int, line_no: int) -> list[str]:
    """Parse one raw CSV line; refuse rows that span lines or have odd widths."""
    fields = next(csv.reader([line]))
    if len(fields) != n_columns:
        raise ValueError(f"line {line_no}: expected {n_columns} columns, got {len(fields)}")
    return fields


def select_rows(lines: list[str]) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Return (hex, raw line) of watched rows plus a row count per category."""
    n_columns = len(next(csv.reader([lines[0]])))
    counts = {rule.category: 0 for rule in RULES}
    selected: list[tuple[str, str]] = []
    for line_no, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = parse_line(line, n_columns, line_no)
        category = classify(fields)
        if category is not None:
            counts[category] += 1
            selected.append((fields[ICAO_COL].strip().upper(), line))
    return selected, counts


def read_lines(path: Path) -> list[str]:
    """Read the source as raw lines without their line terminators."""
    with path.open(encoding="utf-8", newline="") as fh:
        lines = [line.rstrip("\r\n") for line in fh]
    if not lines or lines[0] != EXPECTED_HEADER:
        raise ValueError(f"{path}: unexpected header {lines[0] if lines else ''!r}")
    return lines


def write_watchlist(path: Path, header: str, rows: list[tuple[str, str]]) -> None:
    """Write the header and the raw rows, sorted by ICAO hex, with LF endings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(header + "\n")
        for _hex, line in sorted(rows):
            fh.write(line + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        type=Path,
        default=DEFAULT_SOURCE,
        help="plane-alert-db CSV to read (default: %(default)s)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="watchlist CSV to write (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    lines = read_lines(args.source)
    rows, counts = select_rows(lines)
    write_watchlist(args.output, lines[0], rows)
    for category, count in counts.items():
        print(f"{category}: {count} rows", file=sys.stderr)
    print(f"wrote {len(rows)} rows to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
