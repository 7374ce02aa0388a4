"""`ingest replay` of hostile recordings (ingest/feeds/recorded.py): a gzip bomb costs one capped response
of memory, not what it inflates to, and a bomb line among good lines costs only that line."""

from __future__ import annotations

import gzip
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from ingest.cli import main
from ingest.feeds.recorded import MAX_RESPONSE_BYTES
from tests.conftest import ConfigWriter, aircraft, envelope

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MIB = 1024 * 1024
PEAK_LIMIT_KB = 150 * 1024  # `ingest replay` of a tiny file peaks near 75 MB; one capped response adds ~40 MB


def write_zeros_gzip(out: Path, mib: int) -> None:
    """`mib` MiB of ASCII zeros, gzipped, written as it is made: one gzip member per MiB. Members back to
    back are one valid gzip file (RFC 1952 §2.2; gzip -d and Python's gzip read them all), and compressing
    one MiB once takes milliseconds where deflating a single 1 GiB stream takes seconds."""
    member = gzip.compress(b"0" * MIB, compresslevel=9, mtime=0)
    with out.open("ab") as f:
        for _ in range(mib):
            f.write(member)


# Runs a command and writes its peak RSS (KiB) to argv[1]. A child's ru_maxrss also counts the RSS of
# the process it was forked from, kept across exec (a test process that has run the suite holds ~300 MB):
# so the replay is started from this small process, not from the test process.
_MEASURE = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def replay_in_child(config: Path, *files: Path) -> tuple[int, str, str, int]:
    """`python -m ingest replay` in a child process: exit code, stdout, stderr and its peak RSS in KiB."""
    peak = config.parent / "peak_rss_kb"
    command = [sys.executable, "-m", "ingest", "replay", "--config", str(config), *map(str, files)]
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(peak), *command], capture_output=True, text=True, cwd=config.parent
    )
    return done.returncode, done.stdout, done.stderr, int(peak.read_text())


def test_a_1_gib_gzip_bomb_replays_in_bounded_memory(write_config: ConfigWriter, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.json.gz"
    write_zeros_gzip(bomb, 1024)
    assert bomb.stat().st_size < 1.1 * MIB
    code, out, err, peak_kb = replay_in_child(write_config([]), bomb)
    assert peak_kb < PEAK_LIMIT_KB, f"peak RSS {peak_kb} KiB"  # the old read_replay peaked at 2.1 GB
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        f"ingest: error: {bomb}: the response is over the {MAX_RESPONSE_BYTES} byte cap once inflated"
    ]


def test_a_bomb_line_among_good_lines_costs_only_that_line(
    write_config: ConfigWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recording = tmp_path / "mixed.ndjson.gz"
    recording.write_bytes(gzip.compress(envelope([aircraft("ae01d2")]) + b"\n"))
    write_zeros_gzip(recording, 64)  # one 64 MiB line, over the 20 MiB cap ...
    recording.write_bytes(recording.read_bytes() + gzip.compress(b"\n" + envelope([aircraft("71f00d")]) + b"\n"))
    config = write_config([])
    assert main(["replay", "--config", str(config), str(recording)]) == 1
    out, err = capsys.readouterr()
    assert f"{recording}: 3 responses, 2 aircraft, 2 watched in area, 2 new, 0 malformed records, 1 unreadable" in out
    assert f"{recording}: response 2 skipped" in err and "Traceback" not in err
    with closing(sqlite3.connect(config.parent / "ingest.db")) as conn:
        assert conn.execute("SELECT count(*) FROM sightings").fetchone()[0] == 2


def test_a_truncated_gzip_recording_is_one_error_naming_the_file(
    write_config: ConfigWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = gzip.compress(b"\n".join(envelope([aircraft("ae01d2")]) for _ in range(500)))
    cut = tmp_path / "cut.ndjson.gz"
    cut.write_bytes(whole[: len(whole) - 100])
    assert main(["replay", "--config", str(write_config([])), str(cut)]) == 1
    err = capsys.readouterr().err  # the lines before the damage replayed (their sortie is logged), then:
    assert err.splitlines()[-1] == (
        f"ingest: error: {cut}: truncated gzip stream: the file ends before its compressed data does"
    )
    assert "Traceback" not in err
