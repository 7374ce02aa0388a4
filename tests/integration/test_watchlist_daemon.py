"""A running `ingest run` picks up a changed watchlist (ingest/watchlist_reload.py): `ingest watchlist add`
and `remove` reach its requests and its store within two looks, with every poll on time; a broken list is
logged once and the old one kept; with `check_interval_s = 0` the change waits for a restart or a SIGHUP."""

from __future__ import annotations

import signal
import sqlite3
from contextlib import closing
from datetime import datetime
from itertools import pairwise

import pytest

from ingest.cli import main
from tests.conftest import ConfigWriter, aircraft, envelope
from tests.integration.conftest import Daemon, FeedServer, Reply

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INTERVAL_S = 1.0
EDITS_HEADER = "Action,$ICAO,$Registration,$Operator,$Type,$ICAO Type,#CMPG,$Tag 1,$#Tag 2,$#Tag 3,Category,$#Link\n"


def serve_both(feed_server: FeedServer) -> None:
    """Every hex query answers with a watched RC-135 and an aircraft not (yet) on the list."""
    body = envelope([aircraft("ae01d2"), aircraft("abc123", lat=37.2, lon=125.1, flight="NEW01")])
    feed_server.reply("/v2/hex/", Reply(body=body))


def start(write_config: ConfigWriter, feed_server: FeedServer, daemons: list[Daemon], check_s: float) -> Daemon:
    feed = {"name": "loopback", "kind": "readsb-v2", "base_url": feed_server.url, "interval_s": INTERVAL_S}
    config = write_config([feed], watchlist={"check_interval_s": check_s})
    daemon = Daemon(config)
    daemons.append(daemon)
    daemon.wait_for(lambda: (daemon.query("SELECT count(*) FROM sightings WHERE hex = 'ae01d2'") or 0) == 1)
    return daemon


def cli(daemon: Daemon, *argv: str) -> None:
    assert main(["watchlist", *argv, "--config", str(daemon.config)]) == 0


def stored(daemon: Daemon, hex_icao: str) -> int:
    return int(daemon.query(f"SELECT count(*) FROM sightings WHERE hex = '{hex_icao}'") or 0)


def poll_gaps_s(daemon: Daemon) -> list[float]:
    """Seconds between consecutive polls of the feed; every poll must have succeeded (but the last, which
    the stop may cut short between its two requests)."""
    with closing(sqlite3.connect(daemon.config.parent / "ingest.db", timeout=5)) as conn:
        rows = conn.execute("SELECT started_at, error FROM feed_polls ORDER BY started_at").fetchall()
    if rows and rows[-1][1] == "stopped":
        rows.pop()
    assert all(error is None for _, error in rows), rows
    times = [datetime.fromisoformat(at) for at, _ in rows]
    return [(b - a).total_seconds() for a, b in pairwise(times)]


def test_add_and_remove_reach_the_running_daemon_without_a_poll_lost(
    feed_server: FeedServer, write_config: ConfigWriter, daemons: list[Daemon]
) -> None:
    serve_both(feed_server)
    daemon = start(write_config, feed_server, daemons, check_s=0.3)
    assert stored(daemon, "abc123") == 0  # answered, but not watched
    assert not any("abc123" in p for p in feed_server.paths())

    cli(daemon, "add", "--hex", "abc123", "--registration", "NEW-1", "--icao-type", "C17")
    daemon.wait_for(lambda: stored(daemon, "abc123") == 1)
    assert "watchlist reloaded: 5 aircraft (1 added, 0 removed, 0 changed, 4 unchanged)" in daemon.output()
    assert any("abc123" in p for p in feed_server.paths())  # the hex query asks for it now
    assert (
        daemon.query("SELECT key FROM aircraft JOIN aircraft_hex ON id = aircraft_id WHERE hex = 'abc123'") == "NEW-1"
    )
    assert daemon.query("SELECT count(*) FROM sorties WHERE key = 'NEW-1'") == 1  # its sortie, under its name

    cli(daemon, "remove", "NEW-1")
    daemon.wait_for(lambda: daemon.output().count("watchlist reloaded") == 2)
    polls = daemon.query("SELECT count(*) FROM feed_polls")
    daemon.wait_for(lambda: daemon.query("SELECT count(*) FROM feed_polls") >= polls + 3)
    assert "abc123" not in [p for p in feed_server.paths() if p.startswith("/v2/hex/")][-1]

    code, _ = daemon.stop()
    assert code == 0
    assert "Traceback" not in daemon.output()
    gaps = poll_gaps_s(daemon)
    assert len(gaps) >= 4
    # Every tick ran: 1 s apart give or take the scheduler's jitter (0.1 s) and a loaded machine's delay,
    # never a skipped one (2 s).
    assert max(gaps) < 1.9 * INTERVAL_S, gaps


def test_a_broken_list_is_logged_once_and_the_daemon_keeps_the_old_one(
    feed_server: FeedServer, write_config: ConfigWriter, daemons: list[Daemon]
) -> None:
    serve_both(feed_server)
    daemon = start(write_config, feed_server, daemons, check_s=0.2)
    edits = daemon.config.parent / "watchlist-edits.csv"
    edits.write_text(EDITS_HEADER + "add,4.41E+11,NEW-1,,,,,,,,,\n")  # a hand edit gone wrong
    daemon.wait_for(lambda: "watchlist not reloaded" in daemon.output())
    polls = daemon.query("SELECT count(*) FROM feed_polls")
    daemon.wait_for(lambda: daemon.query("SELECT count(*) FROM feed_polls") >= polls + 3)  # still polling
    out = daemon.output()
    assert out.count("watchlist not reloaded") == 1
    assert "line 2: ICAO '4.41E+11' is a number in scientific notation" in out
    assert "still watching the 4 aircraft it had" in out
    assert stored(daemon, "abc123") == 0

    edits.write_text(EDITS_HEADER + "add,ABC123,NEW-1,,,,,,,,,\n")
    daemon.wait_for(lambda: stored(daemon, "abc123") == 1)
    assert daemon.stop()[0] == 0


def test_without_checks_a_change_waits_for_the_restart(
    feed_server: FeedServer, write_config: ConfigWriter, daemons: list[Daemon]
) -> None:
    serve_both(feed_server)
    daemon = start(write_config, feed_server, daemons, check_s=0)
    cli(daemon, "add", "--hex", "abc123")
    polls = daemon.query("SELECT count(*) FROM feed_polls")
    daemon.wait_for(lambda: daemon.query("SELECT count(*) FROM feed_polls") >= polls + 3)
    assert stored(daemon, "abc123") == 0 and "watchlist reloaded" not in daemon.output()
    assert daemon.stop()[0] == 0

    again = Daemon(daemon.config, log_name="daemon-2.log")
    daemons.append(again)
    again.wait_for(lambda: stored(again, "abc123") == 1)
    assert again.stop()[0] == 0


def test_sighup_reads_the_list_at_once_even_without_checks(
    feed_server: FeedServer, write_config: ConfigWriter, daemons: list[Daemon]
) -> None:
    serve_both(feed_server)
    daemon = start(write_config, feed_server, daemons, check_s=0)
    cli(daemon, "add", "--hex", "abc123")
    daemon.proc.send_signal(signal.SIGHUP)  # `systemctl reload ingest`
    daemon.wait_for(lambda: stored(daemon, "abc123") == 1)
    assert "watchlist reloaded: 5 aircraft (1 added, 0 removed, 0 changed, 4 unchanged)" in daemon.output()
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for(lambda: "watchlist reload asked: no change, 5 aircraft" in daemon.output())
    assert daemon.proc.poll() is None  # still running: SIGHUP is not a stop
    assert daemon.stop()[0] == 0
    assert "Traceback" not in daemon.output()
