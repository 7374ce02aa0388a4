"""Write the altitude colours of the web page (ingest/static/page.js) from the map's colormap.

The page and `ingest map` colour a track by barometric altitude on the same scale: matplotlib's colormap
(ingest/mapping.py CMAP) from 0 ft to the highest altitude rounded up. The page has no matplotlib, so it
carries the colormap sampled at a few stops and interpolates between them; this script rewrites that block
of page.js (between its begin and end markers) from `ingest.mapping.page_colour_table()`.
tests/unit/test_mapping.py fails when the block in page.js differs, so the two cannot drift.

Usage:
    .venv/bin/python scripts/build_page_colours.py            # rewrite the block
    .venv/bin/python scripts/build_page_colours.py --check    # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ingest.mapping import PAGE_TABLE_BEGIN, PAGE_TABLE_END, page_colour_table

PAGE_JS = Path(__file__).resolve().parent.parent / "ingest" / "static" / "page.js"


def rewrite(text: str) -> str:
    """page.js with its colour block replaced; ValueError when the markers are missing."""
    lines = text.splitlines(keepends=True)
    begin = [i for i, line in enumerate(lines) if line.strip() == PAGE_TABLE_BEGIN]
    end = [i for i, line in enumerate(lines) if line.strip() == PAGE_TABLE_END]
    if len(begin) != 1 or len(end) != 1 or end[0] < begin[0]:
        raise ValueError(f"expected one {PAGE_TABLE_BEGIN!r} line and one {PAGE_TABLE_END!r} line after it")
    return "".join(lines[: begin[0]]) + page_colour_table() + "\n" + "".join(lines[end[0] + 1 :])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if page.js is out of date; write nothing")
    args = parser.parse_args(argv)
    text = PAGE_JS.read_text(encoding="utf-8")
    try:
        new = rewrite(text)
    except ValueError as exc:
        print(f"{PAGE_JS}: {exc}", file=sys.stderr)
        return 1
    if args.check:
        if new != text:
            print(f"{PAGE_JS}: the altitude colours are out of date; run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    if new != text:
        PAGE_JS.write_text(new, encoding="utf-8")
        print(f"{PAGE_JS}: altitude colours written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
