"""Every command and every --format through `main()`, on a real SQLite file (and, where they read the bundled
demo replay, on PostgreSQL too)."""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import gzip
import io
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.cli import build_parser, main
from ingest.store import SqliteStore
from tests.conftest import REPO, SMALL_WATCHLIST, ConfigWriter, aircraft, envelope

pytestmark = pytest.mark.integration

DEMO = REPO / "config" / "demo" / "synthetic-tora23-replay.ndjson.gz"
FIELDS = [
    "hex", "registration", "type", "callsign", "time", "lat", "lon", "x_m", "y_m", "alt_baro_ft", "on_ground",
    "alt_geom_ft", "gs_kt", "track_deg", "squawk", "source_type", "feed", "emergency", "synthetic",
]  # fmt: skip


@pytest.fixture
def replayed(write_config: ConfigWriter, database: str, capsys: pytest.CaptureFixture[str]) -> Path:
    """A database holding the synthetic TORA23 sortie: a SQLite file, or PostgreSQL (the `database` fixture)."""
    config = write_config([], database={"url": database} if database.startswith("postgresql://") else {})
    assert main(["replay", "--config", str(config), str(DEMO)]) == 0
    assert (
        capsys.readouterr().out.strip()
        == f"{DEMO}: 421 responses, 1066 aircraft, 344 watched in area, 344 new, 0 malformed records, 0 unreadable"
    )
    return config


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_replay_twice_stores_nothing_new(replayed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "replay", "--config", str(replayed), "--feed", "again", str(DEMO))
    assert code == 0 and "344 watched in area, 0 new" in out


def test_sightings_json_has_every_field_oldest_first(replayed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sightings", "62-4125", "--config", str(replayed), "--format", "json", "--limit", "0")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 170
    assert list(rows[0]) == FIELDS
    # position times: the snapshot's `now` minus `seen_pos` (the synthetic feed varies it 0.1-8 s)
    assert rows[0]["time"] == "2026-11-20T22:55:58Z" and rows[-1]["time"] == "2026-11-21T01:54:56Z"
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    assert {r["hex"] for r in rows} == {"ae01d2"} and {r["callsign"] for r in rows} == {"TORA23"}
    assert all(r["time"].endswith("Z") for r in rows)
    assert max(r["alt_baro_ft"] for r in rows) == 31000
    assert all(isinstance(r["on_ground"], bool) for r in rows)


def test_tail_is_case_insensitive_and_hex_works(replayed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outs = [
        run(capsys, "sightings", tail, "--config", str(replayed), "--format", "json")[1]
        for tail in ("62-4125", "AE01D2", "ae01d2")
    ]
    assert outs[0] == outs[1] == outs[2]
    assert len(json.loads(outs[0])) == 170


def test_sightings_csv_and_table(replayed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sightings", "62-4125", "--config", str(replayed), "--format", "csv", "--limit", "5")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 5 and list(rows[0]) == FIELDS
    assert rows[-1]["time"] == "2026-11-21T01:54:56Z"

    code, out, _ = run(capsys, "sightings", "62-4125", "--config", str(replayed), "--limit", "3")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4
    assert lines[0].split() == [
        "time",
        "hex",
        "reg",
        "type",
        "callsign",
        "lat",
        "lon",
        "alt_ft",
        "gs_kt",
        "track",
        "sqk",
        "source",
        "feed",
        "data",
    ]
    assert lines[-1].startswith("2026-11-21T01:54:56Z  ae01d2  62-4125")
    assert lines[-1].endswith("DEMO")  # the demo's positions are marked, as its sorties are


def test_since_until_accept_iso_and_durations(replayed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "sightings", "62-4125", "--config", str(replayed), "--format", "json",
        "--since", "2026-11-21T00:00:00Z", "--until", "2026-11-21T09:10:00+09:00",
    )  # fmt: skip
    times = [r["time"] for r in json.loads(out)]
    assert code == 0 and len(times) == 10
    assert times[0] >= "2026-11-21T00:00:00Z" and times[-1] <= "2026-11-21T00:10:00Z"
    # The demo lies in the past: the last 24 h hold nothing, and that is not an error.
    code, out, err = run(capsys, "sightings", "62-4125", "--config", str(replayed), "--since", "24h")
    assert code == 0 and out == "" and "no sightings of 62-4125" in err
    code, _, err = run(capsys, "sightings", "62-4125", "--config", str(replayed), "--since", "yesterday")
    assert code == 2 and "neither ISO 8601 nor a duration" in err


def test_unknown_tail_exits_non_zero(replayed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "sightings", "N12345", "--config", str(replayed))
    assert code == 1 and out == ""
    assert "unknown tail 'N12345'" in err


def test_watched_tail_never_seen_is_an_empty_answer(
    write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config([])
    code, _, err = run(capsys, "sightings", "62-4134", "--config", str(config), "--format", "json")
    assert code == 1 and err.startswith("ingest: error: no database at ")  # never created by a read command
    assert not (config.parent / "ingest.db").exists()
    SqliteStore(config.parent / "ingest.db").close()
    code, out, _ = run(capsys, "sightings", "62-4134", "--config", str(config), "--format", "json")
    assert code == 0 and json.loads(out) == []


def test_replay_reports_bad_files_and_keeps_going(
    write_config: ConfigWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.json.gz"
    good.write_bytes(gzip.compress(envelope([aircraft("ae01d2")])))
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"ac": [')
    lines = tmp_path / "mixed.ndjson"
    lines.write_bytes(envelope([aircraft("71f00d", 37.2, 129.5)]) + b"\nnot json\n")
    missing = tmp_path / "missing.json"
    config = write_config([])
    code, out, err = run(capsys, "replay", "--config", str(config), str(good), str(bad), str(lines), str(missing))
    assert code == 1
    assert f"{good}: 1 response, 1 aircraft, 1 watched in area, 1 new, 0 malformed records, 0 unreadable" in out
    assert f"{bad}: 1 response, 0 aircraft, 0 watched in area, 0 new, 0 malformed records, 1 unreadable" in out
    assert f"{lines}: 2 responses, 1 aircraft, 1 watched in area, 1 new, 0 malformed records, 1 unreadable" in out
    assert f"{missing}: No such file or directory" in err


def test_check_config_prints_sources(
    write_config: ConfigWriter, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config([{"name": "adsb.lol", "kind": "readsb-v2", "base_url": "https://api.adsb.lol"}])
    monkeypatch.setenv("INGEST_MQTT_PORT", "8883")
    code, out, _ = run(capsys, "check-config", "--config", str(config), "--set", "feeds.adsb.lol.interval_s=12")
    assert code == 0
    assert "port = 8883  # INGEST_MQTT_PORT" in out
    assert "interval_s = 12.0  # --set feeds.adsb.lol.interval_s" in out
    assert f'path = "{Path(config).parent / "ingest.db"}"  # {config}' in out
    assert 'crs = "EPSG:5179"  # default' in out
    assert "# feed adsb.lol: 2 requests every 12 s, 1 s apart" in out
    assert out.rstrip().endswith("# configuration ok")


def test_config_errors_exit_2_naming_the_key(write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(
        [{"name": "adsb.fi", "kind": "readsb-v2", "base_url": "https://opendata.adsb.fi/api", "interval_s": 1}]
    )
    code, _, err = run(capsys, "poll", "--config", str(config))
    assert code == 2
    assert err.startswith(f"ingest: error: {config}: feeds[0].interval_s: 1 s is too short: 2 requests per tick")


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(commands) == {
        "run",
        "serve",
        "poll",
        "replay",
        "sightings",
        "sorties",
        "export",
        "map",
        "feeds",
        "now",
        "demo",
        "record",
        "check-config",
        "alerts",
        "db",
        "health",
        "watchlist",
    }
    for name in commands:
        code, out, _ = run(capsys, name, "--help")
        assert code == 0 and "--config" in out and "exit codes" in out
    for action in ("list", "show", "add", "remove", "import", "update"):
        code, out, _ = run(capsys, "watchlist", action, "--help")
        assert code == 0 and "--config" in out and "exit codes" in out, action
    for action in ("status", "test"):
        code, out, _ = run(capsys, "alerts", action, "--help")
        assert code == 0 and "--config" in out
    readme = (REPO / "README.md").read_text()
    for name in commands:
        assert f"ingest {name}" in readme, f"README does not show `ingest {name}`"


def test_python_dash_m_runs_the_cli() -> None:
    proc = subprocess.run([sys.executable, "-m", "ingest", "--version"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout.startswith("ingest ")


SORTIE_FIELDS = [
    "sortie_id", "hex", "registration", "type", "callsigns", "start", "end", "end_reason", "duration_s",
    "max_alt_baro_ft", "sightings", "previous_sortie_end", "last_seen", "took_off_from", "landed_at", "events",
    "operator", "type_name", "synthetic",
]  # fmt: skip


def test_replay_finds_the_demo_sorties_at_the_recorded_times(
    replayed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "sorties", "--config", str(replayed), "--format", "json")
    rows = json.loads(out)
    assert code == 0 and [list(r) for r in rows] == [SORTIE_FIELDS, SORTIE_FIELDS]
    tora, p8 = rows
    assert (tora["sortie_id"], tora["registration"], tora["type"]) == ("ae01d2-20261120T225558Z", "62-4125", "R135")
    assert (tora["start"], tora["end"], tora["end_reason"]) == (
        "2026-11-20T22:55:58.702Z",
        "2026-11-21T01:54:56.345Z",
        "left_area",
    )
    assert tora["callsigns"] == ["TORA23"] and tora["max_alt_baro_ft"] == 31000 and tora["sightings"] == 170
    assert tora["duration_s"] == 10737 and tora["previous_sortie_end"] is None
    assert (p8["registration"], p8["end_reason"], p8["callsigns"]) == ("230921", "landed", ["ROKN621"])


def test_sorties_filters_and_formats(replayed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sorties", "AE01D2", "--config", str(replayed), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert (
        code == 0 and [r["sortie_id"] for r in rows] == ["ae01d2-20261120T225558Z"] and list(rows[0]) == SORTIE_FIELDS
    )
    code, out, _ = run(capsys, "sorties", "62-4125", "--config", str(replayed))
    lines = out.splitlines()
    assert lines[0].split() == [
        "sortie",
        "reg",
        "type",
        "callsigns",
        "start",
        "end",
        "reason",
        "duration",
        "max_ft",
        "seen",
        "from",
        "to",
        "events",
        "data",
    ]
    assert lines[1].split()[-8:-4] == ["left_area", "2h58m", "31000", "170"]
    code, out, err = run(capsys, "sorties", "--open", "--config", str(replayed))
    assert code == 0 and out == "" and "no sorties" in err
    code, out, _ = run(
        capsys, "sorties", "--since", "2026-11-20T23:00:00Z", "--config", str(replayed), "--format", "json"
    )
    assert [r["registration"] for r in json.loads(out)] == ["230921"]
    code, _, err = run(capsys, "sorties", "N12345", "--config", str(replayed))
    assert code == 1 and "unknown tail 'N12345'" in err


def test_long_replays_show_progress_on_a_terminal_only(
    write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config([])
    assert main(["replay", "--config", str(config), "--feed", "quiet", str(DEMO)]) == 0
    assert "response" not in capsys.readouterr().err  # not a terminal: no bar

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a terminal has a size
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", "replay", "--config", str(config), "--feed", "tty", str(DEMO)],
        stdout=subprocess.DEVNULL, stderr=follower, env=env,
    )  # fmt: skip
    os.close(follower)
    seen = b""
    with contextlib.suppress(OSError):  # EIO once the child has closed the terminal
        while chunk := os.read(leader, 65536):
            seen += chunk
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    assert b"synthetic-tora23-replay.ndjson.gz: " in seen and b"response/s" in seen, seen[-500:]


def test_the_command_names_main_knows_are_the_parser_s() -> None:
    from ingest.cli import COMMAND_NAMES

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == COMMAND_NAMES


def test_a_tail_is_a_registration_in_any_spelling_a_hex_or_a_callsign(
    replayed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = run(capsys, "sightings", "62-4125", "--config", str(replayed), "--format", "json")[1]
    for tail in ("62 4125", "624125", "62-4125", "AE01D2", "tora23", "TORA*", "Tora2*"):
        code, out, err = run(capsys, "sightings", tail, "--config", str(replayed), "--format", "json")
        assert (code, out) == (0, expected), (tail, err)
    code, out, err = run(capsys, "sightings", "TORA23", "--config", str(replayed), "--limit", "1")
    assert code == 0 and "TORA23: 62-4125 (by its callsign TORA23)" in err
    code, out, _ = run(capsys, "sorties", "ROKN621", "--config", str(replayed), "--format", "json")
    assert [r["registration"] for r in json.loads(out)] == ["230921"]


def test_a_callsign_several_aircraft_flew_names_them_and_an_unknown_tail_suggests(
    replayed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.ndjson"  # 62-4134 flies as TORA23 too, two days later
    lines = [envelope([aircraft("ae01ce", 37.0 + 0.01 * i, 124.8, flight="TORA23  ")],
                      now=datetime(2026, 11, 22, 23, i, tzinfo=UTC)) for i in range(5)]  # fmt: skip
    other.write_bytes(b"\n".join(lines) + b"\n")
    assert run(capsys, "replay", "--config", str(replayed), str(other))[0] == 0
    code, _, err = run(capsys, "sightings", "TORA23", "--config", str(replayed))
    assert code == 1 and "was flown by 2 aircraft" in err and "62-4125" in err and "62-4134" in err
    assert "Name one by its registration" in err
    code, _, err = run(capsys, "sightings", "TORA23", "--since", "2026-11-22T00:00:00Z", "--config", str(replayed))
    assert code == 0, err  # only 62-4134 flew it since then
    code, _, err = run(capsys, "sightings", "62-4126", "--config", str(replayed))
    assert code == 1 and "did you mean 62-4125" in err
    code, _, err = run(capsys, "sightings", "TORA24", "--config", str(replayed))
    assert code == 1 and "did you mean TORA23" in err
    code, _, err = run(capsys, "sorties", "TORA23", "--until", "2026-11-20T22:00:00Z", "--config", str(replayed))
    assert code == 1 and "unknown tail 'TORA23'" in err  # nobody flew it before then


def test_a_registration_several_watched_aircraft_have_names_them_and_their_hexes_work(
    write_config: ConfigWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    watchlist = tmp_path / "shared.csv"  # plane-alert-db gives `17` to aircraft of three types
    watchlist.write_text(
        SMALL_WATCHLIST.read_text(encoding="utf-8").rstrip("\n")
        + "\n3B75EE,17,French Air Force,Pilatus PC-21,PC21,Mil,,,,Cat,\n3B9BD7,17,French Navy,Dassault Atlantique 2,"
        "ATLA,Mil,,,,Cat,\n",
        encoding="utf-8",
    )
    config = write_config([], watchlist={"path": str(watchlist)})
    recording = tmp_path / "two.ndjson"  # both fly, each broadcasting `17` as its registration
    now = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
    recording.write_bytes(envelope([aircraft("3b75ee", 37.0, 124.8, r="17"), aircraft("3b9bd7", 36.5, 125.2, r="17")],
                                   now=now) + b"\n")  # fmt: skip
    assert run(capsys, "replay", "--config", str(config), str(recording))[0] == 0
    code, _, err = run(capsys, "sightings", "17", "--config", str(config))
    assert code == 1 and err.count("\n") == 1, err
    assert "'17' is the registration of 2 aircraft: 3B75EE (French Air Force PC21); 3B9BD7 (French Navy ATLA)" in err
    for tail, lat in (("3B75EE", 37.0), ("3b9bd7", 36.5)):
        code, out, err = run(capsys, "sightings", tail, "--config", str(config), "--format", "json")
        assert code == 0 and [r["lat"] for r in json.loads(out)] == [lat], err
    code, _, err = run(capsys, "watchlist", "show", "17", "--config", str(config))
    assert code == 1 and "'17' is the registration of 2 watched aircraft: 3b75ee (French Air Force PC21)" in err, err


def test_shared_options_go_before_or_after_the_command_and_levels_in_any_case(
    replayed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = run(capsys, "--config", str(replayed), "--log-level", "debug", "sorties", "--format", "json")
    after = run(capsys, "sorties", "--format", "json", "--config", str(replayed), "--log-level", "warning")
    assert before[0] == after[0] == 0 and before[1] == after[1] and len(json.loads(before[1])) == 2
    code, out, _ = run(
        capsys, "sorties", "--until", "2026-11-20T23:00:00Z", "--config", str(replayed), "--format", "json"
    )
    assert code == 0 and [r["callsigns"] for r in json.loads(out)] == [["TORA23"]]


def test_demo_data_is_marked_and_removed_for_good(replayed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sightings", "62-4125", "--config", str(replayed), "--format", "json", "--limit", "1")
    assert code == 0 and json.loads(out)[0]["synthetic"] is True
    code, out, _ = run(capsys, "demo", "status", "--config", str(replayed))
    assert code == 0 and out.startswith("synthetic demo data: 2 sorties, 344 sightings; loaded by ingest run")
    code, out, _ = run(capsys, "demo", "remove", "--config", str(replayed))
    assert code == 0 and out.startswith("removed the synthetic demo data: 2 sorties, 344 sightings")
    code, out, _ = run(capsys, "sorties", "--config", str(replayed), "--format", "json")
    assert json.loads(out) == []
    code, out, _ = run(capsys, "demo", "status", "--config", str(replayed))
    assert out.startswith("synthetic demo data: 0 sorties, 0 sightings; removed")
