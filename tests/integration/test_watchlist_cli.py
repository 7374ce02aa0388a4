"""`ingest watchlist` through the real CLI (`main([...])`, and processes where it matters): list, show on both
database backends, add and remove, and import/update of good, mangled and oversized lists from a file and
from a loopback HTTP server. A refused list changes no file."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.cli import main
from tests.conftest import REPO, SMALL_WATCHLIST, T0, ConfigWriter, aircraft, envelope, two_sorties_recording
from tests.integration.conftest import FeedServer, Reply
from tests.unit.conftest import PLANE_ALERT_MIL, write_big_watchlist

pytestmark = pytest.mark.integration

HEADER = "$ICAO,$Registration,$Operator,$Type,$ICAO Type,#CMPG,$Tag 1,$#Tag 2,$#Tag 3,Category,$#Link"
RJ = "AE01D2,62-4125,USAF,Boeing RC-135W,R135,Mil,Eye In The Sky,SIGINT,Rivet Joint,Oxcart,https://w.wiki/DiyD"
C17 = "AE07E1,02-1108,USAF,Boeing C-17A Globemaster III,C17,Mil,,,,USAF,"
GOOD = f"{HEADER}\n{RJ}\n{C17}\n".encode()
CAP = 16 << 20  # watchlist_files.MAX_LIST_BYTES

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def bundled(tmp_path: Path) -> Path:
    """A copy of the four-row test watchlist standing for config/watchlist.csv (so a test can 'upgrade' it)."""
    path = tmp_path / "release" / "watchlist.csv"
    path.parent.mkdir()
    shutil.copy(SMALL_WATCHLIST, path)
    return path


@pytest.fixture
def config(write_config: ConfigWriter, bundled: Path) -> Path:
    """SQLite in tmp_path, so tmp_path is the user folder; no feeds."""
    return write_config(watchlist={"path": str(bundled)})


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], config: Path) -> Run:
    def run(*argv: str, config_path: Path = config) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([*argv, "--config", str(config_path)])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    return run


def folder_state(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every watchlist file in the user folder (not the lock file): its bytes and modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.glob("watchlist*"))}


def listed(run: Run, *filters: str) -> list[dict[str, Any]]:
    code, out, _ = run("watchlist", "list", "--format", "json", *filters)
    assert code == 0
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


# -- list and show --------------------------------------------------------------------------------------


def test_list_as_a_table_json_and_csv_with_filters(run: Run, bundled: Path) -> None:
    code, out, err = run("watchlist", "list")
    assert code == 0
    assert err == f"watchlist: 4 aircraft: the bundled list {bundled}\n"
    lines = out.splitlines()
    assert lines[0].split() == ["reg", "hexes", "type", "type", "name", "operator", "category", "origin"]
    assert len(lines) == 5 and any(line.startswith("62-4125   ae01d2") for line in lines)
    rows = listed(run, "--type", "r135")
    assert [r["registration"] for r in rows] == ["62-4125", "62-4134"]
    assert rows[0] == {
        "registration": "62-4125", "hexes": ["ae01d2"], "icao_type": "R135", "type": "Boeing RC-135W",
        "operator": "USAF", "category": "Oxcart", "tags": ["Eye In The Sky", "SIGINT", "Rivet Joint"],
        "link": "https://w.wiki/DiyD", "origin": "bundled",
    }  # fmt: skip
    assert [r["registration"] for r in listed(run, "--operator", "korea")] == ["230921"]
    assert listed(run, "--category", "no such category") == []
    code, out, _ = run("watchlist", "list", "--format", "csv", "--operator", "USAF")
    assert out.splitlines()[0] == HEADER and len(out.splitlines()) == 3


def test_list_csv_reads_back_through_import_unchanged(run: Run, tmp_path: Path) -> None:
    _, out, _ = run("watchlist", "list", "--format", "csv")
    exported = tmp_path / "exported.csv"
    exported.write_text(out)
    code, out, _ = run("watchlist", "import", str(exported))
    assert code == 0
    assert "watchlist: 0 added, 0 removed, 0 changed, 4 unchanged; 4 aircraft" in out


def test_show_without_a_database_shows_the_row(run: Run) -> None:
    code, out, _ = run("watchlist", "show", "62 4125")
    assert code == 0
    shown = dict(line.split(None, 1) for line in out.splitlines())
    assert shown["registration"] == "62-4125" and shown["hexes"] == "ae01d2" and shown["origin"] == "bundled"
    assert shown["database"].startswith("none yet") and shown["last_sighting"] == "-"
    code, _, err = run("watchlist", "show", "62-4126")
    assert code == 1
    assert err == "ingest: error: watchlist: '62-4126' is not on the watchlist (no such registration or hex); " \
        "did you mean 62-4125, 62-4134?\n"  # fmt: skip


def test_show_gives_learnt_hexes_last_sighting_and_sortie_on_both_backends(
    run: Run, database: str, tmp_path: Path
) -> None:
    recording = two_sorties_recording(tmp_path)
    rehexed = tmp_path / "rehexed.json"  # 62-4134 reported under a hex the list does not have
    rehexed.write_bytes(envelope([aircraft("ae9999", alt=25000, r="62-4134")], now=T0 + timedelta(minutes=30)))
    assert run("replay", str(recording), str(rehexed), "--database", database)[0] == 0
    code, out, _ = run("watchlist", "show", "ae01ce", "--format", "json", "--database", database)
    assert code == 0
    shown = json.loads(out)
    assert shown["registration"] == "62-4134" and shown["hexes"] == ["ae01ce"]
    assert shown["learnt_hexes"] == [{"hex": "ae9999", "feed": "replay"}]
    assert shown["last_sighting"]["hex"] == "ae9999" and shown["last_sighting"]["alt_baro_ft"] == 25000
    assert shown["last_sortie"]["sortie_id"].startswith("ae9999-20261120T2329")  # a new sortie under the new hex
    assert shown["database"] and shown["origin"] == "bundled"
    code, out, _ = run("watchlist", "show", "62-4134", "--database", database)
    assert code == 0 and "ae9999 (from replay)" in out and "last_sortie" in out


def test_show_marks_synthetic_demo_data(run: Run) -> None:
    demo = REPO / "config" / "demo" / "synthetic-tora23-replay.ndjson.gz"
    assert run("replay", str(demo))[0] == 0
    code, out, _ = run("watchlist", "show", "62-4125")
    assert code == 0
    lines = {line.split(None, 1)[0]: line for line in out.splitlines()}
    assert lines["last_sighting"].endswith("(replay)  DEMO (synthetic)")
    assert lines["last_sortie"].endswith("left_area  DEMO (synthetic)")


def test_with_postgresql_your_list_needs_user_dir(run: Run, tmp_path: Path) -> None:
    """SQLite keeps your list beside its file (every other test here); PostgreSQL has no such folder."""
    from tests.pg import fresh_database

    with fresh_database() as database:
        postgres_needs_user_dir(run, database, tmp_path)


def postgres_needs_user_dir(run: Run, database: str, tmp_path: Path) -> None:
    code, _, err = run("watchlist", "add", "--hex", "abc123", "--database", database)
    assert code == 2
    assert "watchlist.user_dir: with a PostgreSQL database, set the folder" in err
    folder = tmp_path / "mine"
    code, _, _ = run(
        "watchlist", "add", "--hex", "abc123", "--database", database, "--set", f"watchlist.user_dir={folder}"
    )
    assert code == 0 and (folder / "watchlist-edits.csv").is_file()
    assert len(listed(run, "--database", database, "--set", f"watchlist.user_dir={folder}")) == 5
    assert len(listed(run, "--database", database)) == 4  # without it: the bundled list alone


# -- add and remove ---------------------------------------------------------------------------------------


def test_add_remove_and_edits_that_survive_an_upgrade_of_the_bundled_list(
    run: Run, bundled: Path, tmp_path: Path
) -> None:
    code, out, _ = run(
        "watchlist", "add", "--hex", "AE07E1", "--registration", "02-1108", "--icao-type", "c17",
        "--type", "Boeing C-17A", "--operator", "USAF", "--tag", "Cargo", "--link", "https://example.org/c17",
    )  # fmt: skip
    assert code == 0
    assert "added 1:\n  + 02-1108 (ae07e1; USAF, Boeing C-17A)\n" in out
    assert "watchlist: 1 added, 0 removed, 0 changed, 4 unchanged; 5 aircraft" in out
    assert "a running `ingest run` uses it within 20 s" in out
    code, out, _ = run("watchlist", "remove", "62-4134")
    assert code == 0 and "  - 62-4134 (ae01ce; USAF, Boeing RC-135W)" in out
    code, out, _ = run("watchlist", "add", "--hex", "ae0999", "--registration", "62-4125")
    assert "  ~ 62-4125: hexes ae01d2 -> ae01d2 ae0999" in out
    edits = (tmp_path / "watchlist-edits.csv").read_text()
    assert edits.splitlines()[0].startswith("Action,$ICAO,$Registration")
    # A new release: its bundled list gains an aircraft and changes another; your edits still apply.
    bundled.write_text(bundled.read_text().replace("ae749d", "AE749D") + "AE07E2,02-1109,USAF,C-17A,C17,,,,,USAF,\n")
    by_reg = {r["registration"]: r for r in listed(run)}
    assert set(by_reg) == {"02-1108", "62-4125", "230921", "170478", "02-1109"}
    assert by_reg["62-4125"]["hexes"] == ["ae01d2", "ae0999"] and by_reg["62-4125"]["origin"] == "added"
    assert by_reg["02-1109"]["origin"] == "bundled"


def test_add_says_so_when_nothing_changes_and_refuses_bad_options(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("watchlist", "add", "--hex", "ae01d2", "--registration", "62-4125")
    assert code == 0 and out.startswith("62-4125 (ae01d2; USAF, Boeing RC-135W) is already on the watchlist as given")
    assert not (tmp_path / "watchlist-edits.csv").exists()
    code, _, err = run("watchlist", "add", "--hex", "4.41E+11", "--icao-type", "RC-135")
    assert code == 2
    assert err.startswith("ingest: error: --hex: ICAO '4.41E+11' is a number in scientific notation")
    assert "; --icao-type: 'RC-135' is not an ICAO type designator" in err
    code, _, err = run("watchlist", "add", "--hex", "ae01ce", "--registration", "NEW-1")
    assert code == 1 and "ae01ce is already watched as 62-4134: remove that aircraft first" in err
    assert run("watchlist", "remove", "no-such-tail")[0] == 1
    assert not (tmp_path / "watchlist-edits.csv").exists()


def test_dry_run_writes_nothing(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("watchlist", "add", "--hex", "abc123", "--dry-run")
    assert code == 0 and out.rstrip().endswith("5 aircraft (dry run: nothing written)")
    list_file = tmp_path / "list.csv"
    list_file.write_bytes(GOOD)
    assert run("watchlist", "import", str(list_file), "--dry-run")[0] == 0
    assert run("watchlist", "remove", "62-4125", "--dry-run")[0] == 0
    assert folder_state(tmp_path) == {}


def test_concurrent_adds_are_all_kept(config: Path, tmp_path: Path) -> None:
    """Six processes add at once: the lock serialises their read-change-write, so none is lost."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ingest",
                "watchlist",
                "add",
                "--hex",
                f"abc12{i}",
                "--registration",
                f"NEW-{i}",
                "--config",
                str(config),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(6)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    text = (tmp_path / "watchlist-edits.csv").read_text()
    assert sorted(line.split(",")[2] for line in text.splitlines()[1:]) == [f"NEW-{i}" for i in range(6)]


# -- import and update: good lists ------------------------------------------------------------------------


def test_import_replaces_the_bundled_list_keeps_your_edits_and_survives_an_upgrade(
    run: Run, bundled: Path, tmp_path: Path
) -> None:
    assert run("watchlist", "add", "--hex", "abc123", "--registration", "NEW-1")[0] == 0
    source = tmp_path / "mine.csv"
    source.write_bytes(b"\xef\xbb\xbf" + GOOD.replace(b"\n", b"\r\n"))  # a BOM and CRLF, as spreadsheets save
    code, out, _ = run("watchlist", "import", str(source))
    assert code == 0
    assert "added 1:\n  + 02-1108 (ae07e1; USAF, Boeing C-17A Globemaster III)" in out
    assert "removed 3:" in out and "  - 62-4134 (ae01ce; USAF, Boeing RC-135W)" in out
    assert "watchlist: 1 added, 3 removed, 0 changed, 2 unchanged; 3 aircraft" in out
    assert "your edits still apply: 1 added, 0 removed" in out
    assert f"your list is now {tmp_path / 'watchlist.csv'} (instead of the bundled list)" in out
    written = (tmp_path / "watchlist.csv").read_bytes()
    first, rest = written.split(b"\n", 1)
    assert first.startswith(f"# ingest: imported from {source} at 20".encode())
    assert rest == GOOD.replace(b"\n", b"\r\n")  # the list itself, byte for byte
    bundled.write_text(bundled.read_text() + "AE07E2,02-1109,USAF,C-17A,C17,,,,,USAF,\n")  # an upgrade
    assert sorted(r["registration"] for r in listed(run)) == ["02-1108", "62-4125", "NEW-1"]
    code, _, err = run("watchlist", "list")
    assert f"the imported list {tmp_path / 'watchlist.csv'} (imported from {source} at 20" in err
    (tmp_path / "watchlist.csv").unlink()  # back to the bundled list, with your edits
    assert len(listed(run)) == 6


def test_import_from_standard_input(config: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ingest", "watchlist", "import", "-", "--config", str(config)],
        input=GOOD, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "watchlist.csv").read_bytes().startswith(b"# ingest: imported from standard input at ")


def test_update_fetches_politely_follows_a_redirect_and_hides_the_query(
    run: Run, feed_server: FeedServer, tmp_path: Path
) -> None:
    feed_server.reply("/raw/main/plane-alert-mil.csv", Reply(status=302, headers={"Location": "/lists/mil.csv"}))
    feed_server.reply("/lists/mil.csv", Reply(body=gzip.compress(GOOD), headers={"Content-Encoding": "gzip"}))
    code, out, err = run("watchlist", "update", f"{feed_server.url}/raw/main/plane-alert-mil.csv?token=SECRET")
    assert code == 0, err
    assert "watchlist: 1 added, 3 removed, 0 changed, 1 unchanged; 2 aircraft" in out
    seen = feed_server.requests
    assert [s.path for s in seen] == ["/raw/main/plane-alert-mil.csv?token=SECRET", "/lists/mil.csv"]
    assert all(s.headers["User-Agent"].startswith("ingest/") for s in seen)
    note = (tmp_path / "watchlist.csv").read_text().splitlines()[0]
    assert note.startswith(f"# ingest: updated from {feed_server.url}/raw/main/plane-alert-mil.csv?… at 20")
    assert "SECRET" not in out + err + note


def test_a_list_as_big_as_plane_alert_dbs_whole_list_imports(run: Run, tmp_path: Path) -> None:
    """17,000 rows (scripts/bench_watchlist.py times it): the changes are summed up, 20 of each kind shown."""
    big = write_big_watchlist(tmp_path / "big.csv", 17_000)
    code, out, _ = run("watchlist", "import", str(big))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "added 16,762:" and lines[21] == "  ... and 16,742 more (--all lists every one)"
    assert "watchlist: 16,762 added, 0 removed, 0 changed, 4 unchanged; 16,766 aircraft" in out
    assert len(listed(run)) == 16_766
    (tmp_path / "watchlist.csv").unlink()
    code, out, _ = run("watchlist", "import", str(big), "--all", "--dry-run")
    assert code == 0 and sum(line.startswith("  + ") for line in out.splitlines()) == 16_762


def test_a_list_too_big_for_a_feeds_published_rate_is_refused(write_config: ConfigWriter, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """adsb.fi allows 1 request/s: 2 s holds the small list's 2 requests, not the 9,697 aircraft's 19
    (registrations that several aircraft share are never asked for)."""
    feed = {"name": "adsb.fi", "kind": "readsb-v2", "base_url": "https://opendata.adsb.fi/api", "interval_s": 2}
    config = write_config([feed])
    text = PLANE_ALERT_MIL.read_text().replace("\n10166,", "\n010166,").replace("\n10177,", "\n010177,")
    (tmp_path / "mil.csv").write_text(text)
    code = main(["watchlist", "import", str(tmp_path / "mil.csv"), "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{config}: feeds[0].interval_s: 2 s is too short: 19 requests per tick" in err
    assert "to poll 9,697 aircraft; nothing was changed" in err
    assert folder_state(tmp_path) == {}


# -- import and update: bad lists change nothing ----------------------------------------------------------

ROWS_OVER_CAP = b"ICAO,Registration\n" + b"".join(b"%06x,R-%d\n" % (i, i) for i in range(50_001))
BAD_LISTS: list[tuple[str, bytes, str]] = [
    ("excel", GOOD + b"4.41E+11,ZZ664,Royal Air Force,RC-135W,R135,Mil,,,,Oxcart,\n",
     "1 bad row: line 4: ICAO '4.41E+11' is a number in scientific notation"),
    ("lost-zero", GOOD + b"10166,SU-BRR,Egyptian Air Force,C-295,C295,Mil,,,,Other,\n",
     "1 bad row: line 4: ICAO '10166' has 5 digits, not 6"),
    ("bad-hex", GOOD + b"AE01ZZ,X-1,Op,T,T1,Mil,,,,Cat,\n", "line 4: ICAO 'AE01ZZ' is not 6 hex digits"),
    ("wrong-columns", b"icao;r;t;desc\nae01d2;62-4125;R135;RC-135W\n", "no ICAO column in the header"),
    ("no-registration", b"ICAO,Operator\nae01d2,USAF\n", "no Registration column in the header"),
    ("cut-row", GOOD + b"AE07E2,02-1109,USAF\n", "line 4: 3 fields where the header has 11"),
    ("invalid-utf8", GOOD + b"AE07E2,02-1109,Fuerza A\xe9rea,C-17A,C17,Mil,,,,Other,\n", "line 4: not UTF-8 text"),
    ("field-over-128k", GOOD + b'AE07E2,"' + b"x" * 140_000 + b'",USAF,C-17A,C17,Mil,,,,Other,\n',
     "line 4: not CSV (field larger than field limit (131072))"),
    ("header-only", f"{HEADER}\n".encode(), "no aircraft rows"),
    ("empty", b"", "the file is empty"),
    ("rows-over-cap", ROWS_OVER_CAP, "more than 50,000 aircraft rows: the cap is 50,000"),
    ("binary", bytes(range(256)) * 64, "no ICAO column in the header ['\\x00\\x01"),
]  # fmt: skip


@pytest.fixture
def user_list(run: Run, tmp_path: Path) -> dict[str, tuple[bytes, int]]:
    """The user folder with an imported list and an edit in it, as it was before the bad list came."""
    good = tmp_path / "good.csv"
    good.write_bytes(GOOD)
    assert run("watchlist", "import", str(good))[0] == 0
    assert run("watchlist", "add", "--hex", "abc123")[0] == 0
    return folder_state(tmp_path)


@pytest.mark.parametrize(("name", "body", "reason"), BAD_LISTS, ids=[b[0] for b in BAD_LISTS])
@pytest.mark.parametrize("how", ["import", "update"])
def test_a_bad_list_is_refused_in_one_line_and_changes_nothing(
    how: str, name: str, body: bytes, reason: str, run: Run, feed_server: FeedServer, tmp_path: Path,
    user_list: dict[str, tuple[bytes, int]],
) -> None:  # fmt: skip
    if how == "import":
        source = tmp_path / f"{name}.csv"
        source.write_bytes(body)
        where = str(source)
    else:
        feed_server.reply(f"/{name}.csv", Reply(body=body))
        where = f"{feed_server.url}/{name}.csv"
    code, out, err = run("watchlist", how, where)
    if name == "empty" and how == "update":
        reason = "HTTP 200 with an empty body"
    assert code == 1, (out, err)
    assert err.startswith(f"ingest: error: {where}: ") and err.count("\n") == 1, err
    assert reason in err
    assert out == ""
    assert folder_state(tmp_path) == user_list
    assert not list(tmp_path.glob(".*.tmp"))


OVERSIZED: list[tuple[str, Reply, str]] = [
    ("content-length", Reply(body=b"x" * (CAP + 1)), f"Content-Length {CAP + 1} is over the cap"),
    ("streamed", Reply(body=GOOD, stream_bytes=CAP + (1 << 16)), f"body over the {CAP} byte cap"),
    ("gzip-bomb", Reply(body=gzip.compress(b" " * (CAP * 2)), headers={"Content-Encoding": "gzip"}),
     f"body over the {CAP} byte cap"),
    ("not-found", Reply(status=404, body=b"no"), "HTTP 404 Not Found"),
    ("redirect-loop", Reply(status=302, headers={"Location": "/redirect-loop.csv"}), "more than 5 redirects"),
    ("redirect-elsewhere", Reply(status=301, headers={"Location": "ftp://example.org/x.csv"}),
     "a redirect without a usable http(s) Location"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "reply", "reason"), OVERSIZED, ids=[o[0] for o in OVERSIZED])
def test_an_oversized_or_failed_download_changes_nothing(
    name: str, reply: Reply, reason: str, run: Run, feed_server: FeedServer, tmp_path: Path,
    user_list: dict[str, tuple[bytes, int]],
) -> None:  # fmt: skip
    feed_server.reply(f"/{name}.csv", reply)
    code, _, err = run("watchlist", "update", f"{feed_server.url}/{name}.csv?key=SECRET")
    assert code == 1
    assert err.startswith(f"ingest: error: {feed_server.url}/{name}.csv") and err.endswith(f": {reason}\n"), err
    assert err.count("\n") == 1 and "SECRET" not in err
    assert folder_state(tmp_path) == user_list


def test_an_oversized_file_is_refused_without_reading_it_whole(run: Run, tmp_path: Path) -> None:
    huge = tmp_path / "huge.csv"
    with huge.open("wb") as fh:
        fh.truncate(10 << 30)  # 10 GiB, sparse
    code, _, err = run("watchlist", "import", str(huge))
    assert code == 1 and err == f"ingest: error: {huge}: larger than 16 MiB: not a watchlist\n"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.org/list.csv", "must be an http(s) URL"),
        ("file:///etc/passwd", "must be an http(s) URL"),
        ("https://user:password@example.org/list.csv", "a user name or password is never taken from the command line"),
        ("https://example.org:99999/list.csv", "not a URL"),
        ("https://exa mple.org/", "spaces or control characters"),
        ("https://example.org/" + "x" * 3000, "longer than 2,000 characters"),
    ],
)
def test_an_unusable_url_is_a_usage_error_that_never_echoes_a_password(run: Run, url: str, words: str) -> None:
    code, _, err = run("watchlist", "update", url)
    assert code == 2 and words in err and "password@" not in err
