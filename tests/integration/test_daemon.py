"""`ingest run` as a real process: it polls, keeps polling past a failing feed, loads the on-start replay,
and stops cleanly (exit 0, database closed) on SIGTERM and SIGINT."""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.store import SqliteStore
from tests.conftest import REPO, T0, ConfigWriter, aircraft, envelope
from tests.integration.conftest import Daemon, FeedServer, Reply, free_port
from tests.integration.drip import StartServer, drip_headers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEMO = REPO / "config" / "demo" / "synthetic-tora23-replay.ndjson.gz"


def feed(server: FeedServer, name: str, interval_s: float = 1, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "readsb-v2", "base_url": server.url, "interval_s": interval_s, **extra}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_polls_and_stops_cleanly(
    sig: int, feed_server: FeedServer, write_config: ConfigWriter, daemons: list[Daemon]
) -> None:
    feed_server.reply("/v2/hex/", Reply(body=envelope([aircraft("ae01d2")])))
    daemon = Daemon(write_config([feed(feed_server, "loopback")]))
    daemons.append(daemon)
    daemon.wait_for(lambda: (daemon.query("SELECT count(*) FROM feed_polls") or 0) >= 2)
    assert daemon.query("SELECT count(*) FROM sightings") == 1

    code, took_s = daemon.stop(sig)
    assert code == 0
    assert took_s < 5
    out = daemon.output()
    assert "stopped" in out and "Traceback" not in out
    db = daemon.config.parent / "ingest.db"
    # The last connection to close checkpoints and removes the WAL: it is gone only if the daemon closed
    # its database (every connection of this test is closed right after use).
    assert not Path(f"{db}-wal").exists()
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_failing_or_slow_feed_delays_nobody_and_is_logged_once(
    feed_server: FeedServer, write_config: ConfigWriter, daemons: list[Daemon]
) -> None:
    feed_server.reply("/good/v2/hex/", Reply(body=envelope([aircraft("ae01d2")])))
    feed_server.reply("/slow/v2/", Reply(body=envelope([]), delay_s=3))
    feed_server.reply("/down/v2/", Reply(status=500, body=b"internal error"))
    config = write_config(
        [
            feed(feed_server, "good", base_url=f"{feed_server.url}/good"),
            feed(feed_server, "slow", base_url=f"{feed_server.url}/slow", read_timeout_s=10),
            feed(feed_server, "down", base_url=f"{feed_server.url}/down"),
        ]
    )
    daemon = Daemon(config)
    daemons.append(daemon)
    daemon.wait_for(lambda: (daemon.query("SELECT count(*) FROM feed_polls WHERE feed = 'good'") or 0) >= 4)
    # While "slow" sat in its first 3 s answer, "good" kept its 1 s rhythm.
    assert (daemon.query("SELECT count(*) FROM feed_polls WHERE feed = 'slow'") or 0) <= 1
    daemon.wait_for(lambda: (daemon.query("SELECT count(*) FROM feed_polls WHERE feed = 'down'") or 0) >= 2)
    code, _ = daemon.stop()
    assert code == 0
    out = daemon.output()
    assert out.count("feed down failed: HTTP 500") == 1, out  # once per degraded episode
    assert "Traceback" not in out


def test_run_loads_the_on_start_replay_once(
    feed_server: FeedServer, write_config: ConfigWriter, daemons: list[Daemon]
) -> None:
    config = write_config([feed(feed_server, "loopback", interval_s=30)], replay={"on_start": [str(DEMO)]})
    for attempt in range(2):
        daemon = Daemon(config)
        daemons.append(daemon)
        daemon.wait_for(lambda d=daemon: "replayed" in d.output())  # type: ignore[misc]
        assert daemon.stop()[0] == 0
        stored = daemon.query("SELECT count(*) FROM sightings WHERE hex = 'ae01d2'")
        assert stored == 170  # every in-area TORA23 position of the synthetic sortie, once
        expected = "344 new sightings" if attempt == 0 else "0 new sightings"
        assert expected in daemon.output()


def test_bad_config_stops_startup_with_exit_2(write_config: ConfigWriter, tmp_path: Path) -> None:
    config = write_config([], area={"south": 44.0})
    proc = subprocess.run(
        [sys.executable, "-m", "ingest", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if not k.startswith("INGEST_")},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"ingest: error: {config}: area.south: must be less than area.north"
    assert not (tmp_path / "ingest.db").exists()


def test_bad_answers_never_stop_the_daemon_nor_lose_stored_data(
    feed_server: FeedServer, write_config: ConfigWriter, daemons: list[Daemon]
) -> None:
    first = envelope([aircraft("ae01d2", lat=36.0)])
    last = envelope([aircraft("ae01d2", lat=36.5)], now=T0 + timedelta(minutes=5))
    feed_server.reply(
        "/v2/hex/",
        Reply(body=first),
        Reply(body=b"<html>502 Bad Gateway</html>"),
        Reply(body=b'{"ac":[{"hex":"ae01d2","lat":NaN}],"now":1}'),
        Reply(body=first, cut_at=30),
        # Two malformed records beside a good one (outside the area): the answer is used, the two skipped.
        Reply(body=envelope([aircraft("ae01d2", lat=95.0), aircraft("zzzzzz"), aircraft("ae01ce", lat=30.0)])),
        Reply(status=500, body=b"oops"),
        Reply(status=429, body=b"{}", headers={"Retry-After": "1"}),
        Reply(body=last),
    )
    daemon = Daemon(write_config([feed(feed_server, "loopback")]))
    daemons.append(daemon)
    daemon.wait_for(lambda: daemon.query("SELECT count(*) FROM sightings") == 2, timeout_s=60)
    assert daemon.query("SELECT group_concat(lat) FROM (SELECT lat FROM sightings ORDER BY ts)") == "36.0,36.5"
    assert daemon.stop()[0] == 0
    out = daemon.output()
    assert "Traceback" not in out
    assert "skipped a malformed aircraft record" in out
    assert "recovered after" in out


def test_429_403_timeout_and_gzip_bomb_are_logged_once_and_others_keep_storing(
    feed_server: FeedServer, write_config: ConfigWriter, daemons: list[Daemon]
) -> None:
    bomb = gzip.compress(b'{"ac":[' + b" " * (60 * 1024 * 1024) + b"]}")  # ~60 kB on the wire, 60 MB inflated
    feed_server.reply("/good/v2/hex/", Reply(body=envelope([aircraft("ae01d2")])))
    feed_server.reply("/busy/v2/", Reply(status=429, body=b"{}", headers={"Retry-After": "3600"}))
    feed_server.reply("/locked/v2/", Reply(status=403, body=b"Please contact us"))
    feed_server.reply("/slow/v2/", Reply(body=envelope([]), delay_s=2))
    feed_server.reply("/bomb/v2/", Reply(body=bomb, headers={"Content-Encoding": "gzip"}))
    names = ("good", "busy", "locked", "slow", "bomb")
    config = write_config(
        [feed(feed_server, n, base_url=f"{feed_server.url}/{n}", read_timeout_s=0.5, max_body_mb=5) for n in names]
    )
    daemon = Daemon(config)
    daemons.append(daemon)
    daemon.wait_for(lambda: (daemon.query("SELECT count(*) FROM feed_polls WHERE feed = 'good'") or 0) >= 4)
    daemon.wait_for(lambda: (daemon.query("SELECT count(*) FROM feed_polls WHERE feed = 'slow'") or 0) >= 2)
    assert daemon.query("SELECT count(*) FROM sightings") == 1
    assert daemon.query("SELECT state FROM feed_state WHERE feed = 'busy'") == "parked"
    assert daemon.query("SELECT state FROM feed_state WHERE feed = 'locked'") == "parked"
    assert daemon.query("SELECT count(*) FROM feed_polls WHERE feed = 'busy'") == 1  # waits its Retry-After
    assert daemon.query("SELECT count(*) FROM feed_polls WHERE feed = 'locked'") == 1  # parked for an hour
    assert daemon.stop()[0] == 0
    out = daemon.output()
    assert out.count("feed busy failed: HTTP 429") == 1 and "Retry-After 3600 s" in out
    assert out.count("feed locked failed: HTTP 403") == 1 and "access refused" in out
    assert out.count("feed slow failed: timeout") == 1
    assert out.count("feed bomb failed: body over the 5242880 byte cap") == 1
    assert "Traceback" not in out


def test_run_serves_the_api_when_http_is_enabled(
    feed_server: FeedServer, write_config: ConfigWriter, daemons: list[Daemon]
) -> None:
    feed_server.reply("/v2/hex/", Reply(body=envelope([aircraft("ae01d2")])))
    port = free_port()
    config = write_config([feed(feed_server, "loopback")], http={"enabled": True, "port": port})
    daemon = Daemon(config)
    daemons.append(daemon)
    daemon.wait_for(lambda: (daemon.query("SELECT count(*) FROM feed_polls") or 0) >= 1)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sightings/62-4125", timeout=5) as resp:
        body = json.loads(resp.read())
    assert [(r["hex"], r["feed"]) for r in body["items"]] == [("ae01d2", "loopback")]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        assert resp.status == 200
    assert daemon.stop()[0] == 0


def test_serve_answers_until_sigterm(write_config: ConfigWriter, tmp_path: Path) -> None:
    port = free_port()
    config = write_config([], http={"port": 1})  # --port overrides it
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    refused = subprocess.run(
        [sys.executable, "-m", "ingest", "serve", "--config", str(config)], capture_output=True, text=True, env=env,
        timeout=30,
    )  # fmt: skip
    assert refused.returncode == 1 and refused.stderr.startswith("ingest: error: no database at ")
    SqliteStore(tmp_path / "ingest.db").close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=2) as resp:
                    assert json.loads(resp.read())["openapi"].startswith("3.1")
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "ingest serve did not answer"
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def test_a_feed_that_drips_fails_at_its_deadline_and_sigterm_does_not_wait_for_it(
    feed_server: FeedServer, raw_server: StartServer, write_config: ConfigWriter, daemons: list[Daemon]
) -> None:
    feed_server.reply("/v2/hex/", Reply(body=envelope([aircraft("ae01d2")])))
    drip = raw_server(drip_headers(0.2))  # one byte every 0.2 s, for ever
    config = write_config([
        feed(feed_server, "good"),
        feed(feed_server, "drip", base_url=drip.url, interval_s=1, connect_timeout_s=0.5, read_timeout_s=1),
    ])  # fmt: skip
    daemon = Daemon(config)
    daemons.append(daemon)
    # Deadline 0.5 + 3 x 1 s: the dripping poll fails after 3.5 s, not after the server gives up.
    daemon.wait_for(lambda: (daemon.query("SELECT count(*) FROM feed_polls WHERE feed = 'drip'") or 0) >= 1, 10)
    assert "timeout" in daemon.query("SELECT error FROM feed_polls WHERE feed = 'drip'")
    assert daemon.query("SELECT max(duration_ms) FROM feed_polls WHERE feed = 'drip'") < 4500
    assert (daemon.query("SELECT count(*) FROM feed_polls WHERE feed = 'good'") or 0) >= 3  # nobody waited
    time.sleep(1.5)  # the next dripping poll is in flight
    code, took_s = daemon.stop()
    assert code == 0 and took_s < 2.5, took_s
    out = daemon.output()
    assert "Traceback" not in out and out.count("feed drip failed") == 1, out


def test_one_answer_from_the_future_is_refused_and_blinds_nobody(
    feed_server: FeedServer, write_config: ConfigWriter, daemons: list[Daemon]
) -> None:
    """A feed whose `now` jumps an hour ahead for one answer: that answer's positions are refused (counted),
    and every later, correct position of the aircraft is still stored; its sortie never has a future fix."""
    answers = iter(range(10_000))

    def reply() -> Reply:
        n = next(answers)
        now = datetime.now(UTC) + (timedelta(hours=1) if n == 2 else timedelta(0))
        return Reply(body=envelope([aircraft("ae01d2", seen_pos=0.2)], now=now))

    feed_server.reply("/v2/hex/", reply)
    daemon = Daemon(write_config([feed(feed_server, "jumpy", interval_s=0.3)]))
    daemons.append(daemon)
    daemon.wait_for(lambda: (daemon.query("SELECT count(*) FROM sightings") or 0) >= 8)
    limit = time.time() + 30
    assert daemon.query(f"SELECT count(*) FROM sightings WHERE ts > {limit}") == 0
    assert daemon.query("SELECT sum(rejected) FROM feed_polls") == 1
    assert daemon.query("SELECT count(*) FROM feed_polls WHERE error LIKE 'all 1 records malformed%'") == 1
    assert daemon.query("SELECT max(last_at) FROM sorties") < limit
    assert daemon.query("SELECT count(*) FROM sorties") == 1
    assert daemon.stop()[0] == 0
    out = daemon.output()
    assert "Traceback" not in out and out.count("skipped a malformed aircraft record (position time") == 1, out
    assert out.count("feed jumpy failed") == 1 and "feed jumpy recovered" in out
