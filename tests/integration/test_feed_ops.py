"""Operating feeds: `ingest feeds` shows each feed's health, `ingest record` saves raw responses that
`ingest replay` reads back, over a real loopback HTTP server and a real SQLite file."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest.app import build_app
from ingest.cli import main
from ingest.config import load
from ingest.feeds.hosts import KNOWN_HOSTS, HostLimit
from ingest.feeds.transport import Fetcher
from ingest.store import SqliteStore
from tests.conftest import ConfigWriter, aircraft, envelope
from tests.integration.conftest import Daemon, FeedServer, Reply

pytestmark = pytest.mark.integration


def feed(server: FeedServer, name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "readsb-v2", "base_url": f"{server.url}/{name}", "interval_s": 1, **extra}


def feeds_json(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    capsys.readouterr()
    assert main(["feeds", "--config", str(config), "--format", "json"]) == 0
    return {row["feed"]: row for row in json.loads(capsys.readouterr().out)}


def test_feeds_shows_ok_degraded_parked_disabled_and_never_polled(
    feed_server: FeedServer, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.reply("/good/v2/hex/", Reply(body=envelope([aircraft("ae01d2")])))
    feed_server.reply("/down/v2/", Reply(status=500, body=b"oops"))
    feed_server.reply("/locked/v2/", Reply(status=403, body=b"Please contact us"))
    config = write_config(
        [feed(feed_server, "good"), feed(feed_server, "down"), feed(feed_server, "locked"),
         feed(feed_server, "off", enabled=False)]
    )  # fmt: skip
    capsys.readouterr()
    assert main(["feeds", "--config", str(config)]) == 1  # a read command: it never creates the database
    assert "no database at" in capsys.readouterr().err
    SqliteStore(config.parent / "ingest.db").close()
    before = feeds_json(config, capsys)
    assert before["good"]["state"] == "never polled" and before["off"]["state"] == "disabled"

    assert main(["poll", "--config", str(config)]) == 1
    rows = feeds_json(config, capsys)
    good, down, locked = rows["good"], rows["down"], rows["locked"]
    assert (good["state"], good["failures"], good["error"]) == ("ok", 0, None)
    assert good["last_success"] and good["polls_1h"] == 1 and good["requests_1h"] == 2
    assert good["aircraft_1h"] == 1 and good["kept_1h"] == 1
    # A feed that has never answered usably is not "degraded": it never worked.
    never = ("never succeeded", 1, "HTTP 500 Internal Server Error")
    assert (down["state"], down["failures"], down["error"]) == never
    assert down["last_success"] is None and down["last_error"] and down["failed_1h"] == 1
    assert locked["state"] == "parked" and locked["error"] == "HTTP 403 Forbidden"
    assert locked["next_try"] is None  # no daemon runs: no retry is planned, whatever the last one said
    assert rows["off"]["state"] == "disabled"

    capsys.readouterr()
    assert main(["feeds", "--config", str(config)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("no daemon")
    assert table[1].split()[:3] == ["feed", "kind", "state"] and "next try" in table[1]
    assert any(line.startswith("locked") and " parked " in line for line in table)
    assert any(line.startswith("down") and " never succeeded " in line for line in table)

    # Failures in a row count the episode, across runs; a feed that worked once and fails is degraded.
    assert main(["poll", "--config", str(config)]) == 1
    assert feeds_json(config, capsys)["down"]["failures"] == 2
    feed_server.reply("/down/v2/", Reply(body=envelope([])))
    assert main(["poll", "--config", str(config)]) == 1  # locked still fails
    assert (feeds_json(config, capsys)["down"]["state"], feeds_json(config, capsys)["down"]["failures"]) == ("ok", 0)
    feed_server.reply("/down/v2/", Reply(status=502, body=b"bad gateway"))
    assert main(["poll", "--config", str(config)]) == 1
    down = feeds_json(config, capsys)["down"]
    assert (down["state"], down["failures"], down["error"]) == ("degraded", 1, "HTTP 502 Bad Gateway")


def test_record_saves_raw_bodies_that_replay_reads_back(
    feed_server: FeedServer, write_config: ConfigWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = envelope([aircraft("ae01d2"), aircraft("71c011", 37.5, 127.0, flight="KAL123  ")])
    feed_server.reply("/rec/v2/hex/", Reply(body=body))
    config = write_config([feed(feed_server, "rec", interval_s=0.2)])
    out = tmp_path / "recorded"
    assert main(["record", "--config", str(config), "--feed", "rec", "--count", "2", "--out", str(out)]) == 0
    files = sorted(out.glob("rec-*.json"))
    assert len(files) == 4  # 2 ticks x (hex + reg requests)
    hex_answers = [f for f in files if f.read_bytes() == body]
    assert len(hex_answers) == 2  # byte for byte as received
    assert "ingest replay --feed rec" in capsys.readouterr().out

    assert main(["replay", "--config", str(config), "--feed", "rec", *map(str, files)]) == 0
    capsys.readouterr()
    assert main(["sightings", "62-4125", "--config", str(config), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["feed"] == "rec" and row["callsign"] == "TORA23"


def test_record_refuses_an_unknown_feed(
    write_config: ConfigWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config([])
    assert main(["record", "--config", str(config), "--feed", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "no enabled polled feed 'nope'" in capsys.readouterr().err


def test_one_request_in_flight_per_public_host_across_feeds(
    feed_server: FeedServer, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Make the loopback server a "known public host" with no spacing, so only the one-in-flight rule acts.
    monkeypatch.setitem(KNOWN_HOSTS, "127.0.0.1", HostLimit(0.0, "test"))
    feed_server.reply("/", Reply(body=envelope([]), delay_s=0.3))
    app = build_app(load(write_config([feed(feed_server, "a"), feed(feed_server, "b")]), environ={}))
    fetchers = [Fetcher(f.settings, "ingest-test") for f in app.feeds]
    jobs = [(fetcher, req) for fetcher, f in zip(fetchers, app.feeds, strict=True) for req in f.requests()[:1]]
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda job: job[0](job[1]), jobs))
    for fetcher in fetchers:
        fetcher.close()
    arrivals = sorted(s.at for s in feed_server.requests)
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 0.25  # the second waited for the first answer (0.3 s)


def test_hosts_we_do_not_know_have_no_gate(feed_server: FeedServer, write_config: ConfigWriter) -> None:
    feed_server.reply("/", Reply(body=envelope([]), delay_s=0.3))
    app = build_app(load(write_config([feed(feed_server, "a"), feed(feed_server, "b")]), environ={}))
    fetchers = [Fetcher(f.settings, "ingest-test") for f in app.feeds]
    jobs = [(fetcher, f.requests()[0]) for fetcher, f in zip(fetchers, app.feeds, strict=True)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda job: job[0](job[1]), jobs))
    for fetcher in fetchers:
        fetcher.close()
    arrivals = sorted(s.at for s in feed_server.requests)
    assert arrivals[1] - arrivals[0] < 0.2  # both in flight at once: a receiver or a test server sets no rule


def test_feeds_and_now_say_whether_a_daemon_runs_and_where_the_aircraft_is(
    feed_server: FeedServer, write_config: ConfigWriter, daemons: list[Daemon], capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.reply(
        "/live/v2/hex/", lambda: Reply(body=envelope([aircraft("ae01d2", seen_pos=0.3)], now=datetime.now(UTC)))
    )
    config = write_config([feed(feed_server, "live", interval_s=0.5)])
    daemon = Daemon(config)
    daemons.append(daemon)
    daemon.wait_for(lambda: (daemon.query("SELECT count(*) FROM sightings") or 0) >= 2)
    capsys.readouterr()
    assert main(["now", "--config", str(config), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["hex"], row["registration"], row["callsign"]) == ("ae01d2", "62-4125", "TORA23")
    assert row["sortie_id"].startswith("ae01d2-") and 0 <= row["age_s"] < 10
    assert main(["now", "--config", str(config)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["reg", "type", "callsign"] and table[1].startswith("62-4125")
    assert main(["feeds", "--config", str(config)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("daemon ") and " running since " in line, line
    assert daemon.stop()[0] == 0
    assert main(["feeds", "--config", str(config)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("no daemon is running: ") and " stopped at " in line, line


def test_a_restart_goes_on_counting_the_episode_and_a_clean_stop_is_no_failure(
    feed_server: FeedServer, write_config: ConfigWriter, daemons: list[Daemon], capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.reply("/down/v2/", Reply(status=503, body=b"busy"))
    answers = {"n": 0}

    def slow_after_two() -> Reply:
        # Two quick answers (the feed is fine), then answers so slow that a stop always cuts one short.
        answers["n"] += 1
        return Reply(body=envelope([]), delay_s=0 if answers["n"] <= 4 else 5)

    feed_server.reply("/slow/v2/", slow_after_two)
    config = write_config([feed(feed_server, "down", interval_s=0.5), feed(feed_server, "slow", interval_s=0.5)])
    daemon = Daemon(config)
    daemons.append(daemon)
    daemon.wait_for(lambda: (daemon.query("SELECT failures FROM feed_state WHERE feed = 'down'") or 0) >= 2)
    daemon.wait_for(lambda: answers["n"] >= 5)  # slow's request now hangs
    rows = feeds_json(config, capsys)
    assert rows["down"]["next_try"] is None or datetime.fromisoformat(rows["down"]["next_try"]) > datetime.now(UTC)
    assert daemon.stop()[0] == 0
    rows = feeds_json(config, capsys)
    failures = rows["down"]["failures"]
    assert rows["down"]["state"] == "never succeeded" and failures >= 2 and rows["down"]["next_try"] is None
    # The poll our own stop cut short is no failure of the feed's: it stays ok.
    assert (rows["slow"]["state"], rows["slow"]["failures"], rows["slow"]["error"]) == ("ok", 0, None)

    last_poll = rows["down"]["last_poll"]
    again = Daemon(config, log_name="daemon2.log")
    daemons.append(again)
    again.wait_for(lambda: again.query("SELECT at FROM feed_state WHERE feed = 'down'") != last_poll)
    # The first poll of the new run goes on counting (a fresh count would say 1).
    assert again.query("SELECT failures FROM feed_state WHERE feed = 'down'") in (failures + 1, failures + 2)
    assert again.stop()[0] == 0
    # The new run logs the episode it took up, once.
    assert again.output().count("feed down failed: HTTP 503") == 1, again.output()
