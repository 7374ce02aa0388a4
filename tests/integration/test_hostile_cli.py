"""Every command with hostile arguments: huge numbers, far dates, odd tails, missing and unwritable paths,
a directory where a file is expected. Each must end with one line and exit 1 or 2 (or 0 when the
arguments are merely unusual) and never a traceback, an escaped exception or a file left behind."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import pytest

from ingest.cli import main
from tests.conftest import REPO, SMALL_WATCHLIST, render_config

pytestmark = pytest.mark.integration

DEMO = REPO / "config" / "demo" / "synthetic-tora23-replay.ndjson.gz"
TORA = "ae01d2-20261120T225558Z"
HUGE = "100000000000000000000"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A config over a database holding the demo, a plain file, a folder, and an invalid-UTF-8 config."""
    root = tmp_path_factory.mktemp("hostile")
    config = root / "ingest.toml"
    config.write_text(render_config({
        "database": {"path": str(root / "ingest.db")}, "watchlist": {"path": str(SMALL_WATCHLIST)},
        "replay": {"on_start": []}, "daemon": {"log_level": "WARNING"},
    }, [{"name": "lol", "kind": "readsb-v2", "base_url": "http://127.0.0.1:9", "interval_s": 10}]))  # fmt: skip
    assert main(["replay", "--config", str(config), str(DEMO)]) == 0
    (root / "a-file").write_text("x")
    (root / "a-folder.kml").mkdir()
    (root / "bad-utf8.toml").write_bytes(b'[area]\nname = "\xff\xfe"\n')
    (root / "binary.json").write_bytes(bytes(range(256)) * 64)
    return {"root": root, "config": config}


CASES: list[tuple[str | list[str], int]] = [
    # huge numbers and far dates
    ("sightings 62-4125 --limit " + HUGE, 2),
    ("sorties --limit " + HUGE, 2),
    ("record --feed lol --count " + HUGE + " --out {root}/rec", 2),
    ("sightings 62-4125 --since 1000000000d", 2),
    ("sightings 62-4125 --since 800000d", 2),
    ("sightings 62-4125 --since 1e300s", 2),
    ("sightings 62-4125 --since 9999-12-31T23:59:59Z", 0),
    ("sightings 62-4125 --until 0001-01-01T00:00:00Z", 0),
    ("sorties --since 99999-01-01", 2),
    ("sorties 62-4125 --until -5d", 2),
    ("export 62-4125 --since 1000000000d", 2),
    # odd tails and ids
    ("sightings " + "X" * 10_000, 1),
    (["sightings", "'; DROP TABLE sightings; --"], 1),
    ("sightings *", 1),
    ("sightings ''", 1),
    ("sorties %", 1),
    ("export ae01d2-20261120T225558", 2),
    ("export ffffff-99991231T235959Z", 1),
    ("map nothing-like-a-tail --since 7d -o {root}/x.png", 1),
    # paths: missing, unwritable, a folder where a file is expected
    ("record --feed lol --out {root}/a-file", 1),
    ("record --feed lol --out /proc/x", 1),
    ("export " + TORA + " -o {root}/a-folder.kml", 1),
    ("export " + TORA + " -o /proc/x.kml", 1),
    ("export " + TORA + " -o {root}/no/such/folder/x.kml", 1),
    ("map " + TORA + " -o /proc/x.png", 1),
    ("replay {root}/a-folder.kml", 1),
    ("replay {root}/no-such-file.json", 1),
    ("replay {root}/binary.json", 1),
    ("sightings 62-4125 --database {root}/a-folder.kml", 1),
    ("sightings 62-4125 --database {root}/no-such.db", 1),
    ("now --database /proc/x/y.db", 1),
    ("feeds --database {root}/a-file", 1),
    ("poll --database /proc/x/y.db", 1),
    ("run --database /proc/x/y.db", 1),
    ("replay {root}/binary.json --database {root}/a-folder.kml", 1),
    ("sightings 62-4125 --config {root}/a-folder.kml", 2),
    # database URLs and the db commands
    ("sightings 62-4125 --database postgresql://u:hunter2@127.0.0.1:9/x", 2),
    ("sightings 62-4125 --database postgresql://postgres@127.0.0.1:9/x", 1),
    ("sightings 62-4125 --database mysql://u@h/x", 2),
    ("sorties --database sqlite://", 2),
    ("db", 2),
    ("db frobnicate", 2),
    ("db copy", 2),
    ("db copy --to {root}/a-file", 2),
    ("db copy --to postgresql://postgres@127.0.0.1:9/x", 1),
    ("db copy --to postgresql://postgres@127.0.0.1:9/x --database {root}/no-such.db", 1),
    ("db migrate --database /proc/x/y.db", 1),
    ("db migrate --database {root}/a-file", 1),
    ("db stats --database {root}/no-such.db", 1),
    ("sightings 62-4125 --config {root}/no-such.toml", 2),
    ("check-config --config {root}/bad-utf8.toml", 2),
    ("check-config --config /dev/null", 0),
    # options
    ("sightings 62-4125 --set nonsense", 2),
    ("sightings 62-4125 --set area.south=1e400", 2),
    ("check-config --set feeds.lol.interval_s=-1", 2),
    ("check-config --set sorties.gap_s=1e300", 2),
    ("sightings 62-4125 --log-level loud", 2),
    ("serve --port 99999", 2),
    ("serve --port 0", 2),
    ("sightings 62-4125 --format xml", 2),
    # watchlist
    ("watchlist", 2),
    ("watchlist frobnicate", 2),
    ("watchlist show", 2),
    ("watchlist show " + "X" * 10_000, 1),
    ("watchlist show ''", 1),
    (["watchlist", "show", "'; DROP TABLE aircraft; --"], 1),
    ("watchlist show 62-4125 --database {root}/a-folder.kml", 0),  # the list's row; no database there
    ("watchlist list --format xml", 2),
    ("watchlist list --database /proc/x/y.db", 0),
    ("watchlist list --set watchlist.user_dir={root}/a-file", 2),
    ("watchlist add", 2),
    ("watchlist add --hex 4.41E+11", 2),
    ("watchlist add --hex zzzzzz --registration " + "X" * 10_000, 2),
    (["watchlist", "add", "--hex", "abc123", "--operator", "a\x00b\nc"], 2),
    (["watchlist", "add", "--hex", "abc123", "--tag", "a", "--tag", "b", "--tag", "c", "--tag", "d"], 2),
    ("watchlist add --hex abc123 --database /proc/x/y.db", 1),
    ("watchlist add --hex ae01ce --registration NEW-1", 1),
    ("watchlist remove nothing-like-a-tail", 1),
    ("watchlist remove " + "X" * 10_000, 1),
    ("watchlist import {root}/no-such-file.csv", 1),
    ("watchlist import {root}/a-folder.kml", 1),
    ("watchlist import {root}/binary.json", 1),
    ("watchlist import {root}/bad-utf8.toml", 1),
    ("watchlist import /dev/zero", 1),
    ("watchlist update ftp://example.org/list.csv", 2),
    ("watchlist update http://[::1", 2),
    ("watchlist update 'http://user:secret@127.0.0.1:9/list.csv'", 2),
    ("watchlist update http://127.0.0.1:9/list.csv?token=secret", 1),
]


def _id(line: str | list[str]) -> str:
    return (line if isinstance(line, str) else " ".join(line))[:60]


@pytest.mark.parametrize(("line", "expected"), CASES, ids=[_id(c[0]) for c in CASES])
def test_hostile_arguments_end_in_one_line_never_a_traceback(
    line: str | list[str],
    expected: int,
    world: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    words = shlex.split(line) if isinstance(line, str) else line
    argv = [a.format(root=world["root"]) for a in words]
    if "--config" not in argv:
        argv += ["--config", str(world["config"])]
    capsys.readouterr()
    with caplog.at_level(logging.DEBUG, logger="ingest"):
        code = main(argv)  # an exception escaping main fails the test by itself
    out, err = capsys.readouterr()
    logged = "\n".join(r.getMessage() + (str(r.exc_info) if r.exc_info else "") for r in caplog.records)
    assert "Traceback" not in out + err + logged, (out, err, logged)
    assert not any(r.exc_info for r in caplog.records), logged
    assert code == expected, (code, out, err)
    if code:
        assert err.strip(), "a failure must say why"
    assert not list(world["root"].glob(".*.tmp")), "a temporary file was left behind"
