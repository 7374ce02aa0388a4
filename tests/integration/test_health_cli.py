"""`ingest health`, the Docker HEALTHCHECK: exit 0 with one line when healthy, else exit 1 with one line
saying why; the same verdict as `GET /healthz` in every state (both run services.health), on both backends;
and against a real daemon process, before and after it stops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.api import ApiServer
from ingest.cli import main
from ingest.config import load
from ingest.models import FeedHealth
from ingest.services import this_host
from ingest.store import Store, open_store
from tests.conftest import ConfigWriter, aircraft, envelope
from tests.integration.conftest import Daemon, FeedServer, Reply

pytestmark = pytest.mark.integration

FEEDS: list[dict[str, Any]] = [
    {"name": "lol", "kind": "readsb-v2", "base_url": "http://127.0.0.1:9"},
    {"name": "off", "kind": "readsb-v2", "base_url": "http://127.0.0.1:9", "enabled": False},
]


def health_cli(capsys: pytest.CaptureFixture[str], config: Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["health", "--config", str(config)])
    out, err = capsys.readouterr()
    return code, out, err


def healthz(server: ApiServer) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


Step = tuple[str, float]  # ("ok FEED", seconds ago): a feed's success; ("beat", ...) / ("stopped", ...) of
# daemon box:7 on another machine; ("beat here", ...) / ("stopped here", ...) of one on this machine


def arrange(store: Store, steps: list[Step]) -> None:
    for what, ago_s in steps:
        at = datetime.now(UTC) - timedelta(seconds=ago_s)
        if what.startswith("ok "):
            with store.atomic():
                store._save_health(FeedHealth(what[3:], "ok", at, 0, None, None, None))  # type: ignore[attr-defined]
        elif what.endswith(" here"):
            store.heartbeat(f"{this_host()}:8", this_host(), 8, "0.1.0", at, stopped=what.startswith("stopped"))
        else:
            store.heartbeat("box:7", "box", 7, "0.1.0", at, stopped=what == "stopped")


STATES: list[tuple[str, list[Step], str | None]] = [
    ("never polled", [], "no feed has succeeded yet"),
    ("cron, fresh", [("ok lol", 5)], None),
    ("only the disabled feed", [("ok off", 5)], "no feed has succeeded yet"),
    ("stale", [("ok lol", 900)], "no feed has succeeded for 900 s (more than 300 s)"),
    ("daemon alive", [("ok lol", 5), ("beat", 2)], None),
    ("daemon gone", [("ok lol", 5), ("beat", 120)], "no daemon is running: box:7 last beat at"),
    ("daemon stopped", [("ok lol", 5), ("stopped", 1)], "no daemon is running: box:7 stopped at"),
    # Several daemons share the database: the one on this machine (a container's own) decides.
    (
        "ours gone, another alive",
        [("ok lol", 5), ("beat", 2), ("beat here", 120)],
        "no daemon is running: {here}:8 last",
    ),
    (
        "ours stopped, another alive",
        [("ok lol", 5), ("beat", 2), ("stopped here", 1)],
        "no daemon is running: {here}:8 stopped",
    ),
    ("ours alive, another gone", [("ok lol", 5), ("beat", 120), ("beat here", 2)], None),
]


@pytest.mark.parametrize(("name", "steps", "reason"), STATES, ids=[s[0] for s in STATES])
def test_health_and_healthz_agree(
    name: str,
    steps: list[Step],
    reason: str | None,
    database: str,
    write_config: ConfigWriter,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = "url" if "://" in database else "path"
    config = write_config(FEEDS, database={key: database})
    store = open_store(database)
    try:
        arrange(store, steps)
    finally:
        store.close()
    reason = reason and reason.replace("{here}", this_host())
    code, out, err = health_cli(capsys, config)
    with ApiServer(load(config, environ={}), port=0) as server:
        status, body = healthz(server)
    if reason is None:
        assert (code, status, err) == (0, 200, "")
        assert out.startswith("healthy: a feed succeeded ") and out.count("\n") == 1
        assert body["status"] == "ok"
    else:
        assert (code, status, out) == (1, 503, "")
        assert err.startswith(f"ingest: unhealthy: {reason}") and err.count("\n") == 1, err
        assert body["reason"] == err.removeprefix("ingest: unhealthy: ").strip()


def test_missing_database_or_bad_config_is_one_line(
    write_config: ConfigWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(FEEDS)
    code, out, err = health_cli(capsys, config)
    assert code == 1 and out == "" and err.startswith(f"ingest: error: no database at {tmp_path / 'ingest.db'}: ")
    assert err.count("\n") == 1
    bad = write_config(FEEDS, http={"stale_after_s": -1})
    code, _, err = health_cli(capsys, bad)
    assert code == 2 and err.count("\n") == 1 and "http.stale_after_s" in err


def test_health_of_a_real_daemon(feed_server: FeedServer, write_config: ConfigWriter, daemons: list[Daemon]) -> None:
    """The check Docker runs: a separate `ingest health` process beside a running `ingest run`."""
    feed_server.reply("/v2/hex/", Reply(body=envelope([aircraft("ae01d2")], now=datetime.now(UTC))))
    config = write_config([{"name": "loopback", "kind": "readsb-v2", "base_url": feed_server.url, "interval_s": 1}])
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ingest", "health", "--config", str(config)],
            capture_output=True, text=True, timeout=30, env=env, check=False,
        )  # fmt: skip

    daemon = Daemon(config)
    daemons.append(daemon)
    daemon.wait_for(lambda: (daemon.query("SELECT count(*) FROM feed_polls WHERE error IS NULL") or 0) >= 1)
    done = check()
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("healthy: a feed succeeded ") and f":{daemon.proc.pid} running since" in done.stdout
    assert done.stderr == ""
    assert daemon.stop()[0] == 0
    done = check()
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("ingest: unhealthy: no daemon is running: ") and " stopped at " in done.stderr
    assert done.stderr.count("\n") == 1
