"""Alert channels in the real daemon: `ingest run` polls a loopback feed, two channels (a webhook and an Apprise
json:// URL on a loopback HTTP server) fail, the daemon is killed with -9 between enqueue and delivery; after
the restart each channel delivers each event once, and `ingest alerts status` counts them per channel."""

from __future__ import annotations

import json
import time

import pytest

from ingest.cli import main
from tests.conftest import ConfigWriter
from tests.integration.alerting import Answer, HookServer, hook_server
from tests.integration.conftest import Daemon, FeedServer, Sky
from tests.integration.test_sorties_mqtt import YELLOW_SEA

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHANNELS = """
[[alerts]]
name = "hook"
kind = "webhook"
retry_min_s = 0.2
retry_max_s = 0.5
[[alerts]]
name = "phone"
kind = "apprise"
attach_map = false
retry_min_s = 0.2
retry_max_s = 0.5
"""


def delivered(server: HookServer, prefix: str, key: str) -> list[str]:
    """The event ids the service took (2xx), in order."""
    return [p.json()[key] for p in server.requests(prefix) if p.status == 200 and p.json().get(key)]


def test_kill_9_between_enqueue_and_delivery(
    sky: Sky, feed_server: FeedServer, write_config: ConfigWriter, daemons: list[Daemon],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    with hook_server() as server:
        server.script("/hook", Answer(500))
        server.script("/phone", Answer(500))
        config = write_config(
            [{"name": "loopback", "kind": "readsb-v2", "base_url": feed_server.url, "interval_s": 0.3}],
            sorties={"gap_s": 3.0, "check_interval_s": 0.25},
        )
        config.write_text(config.read_text() + CHANNELS)
        env = {"INGEST_ALERTS_HOOK_URL": server.url("/hook"),
               "INGEST_ALERTS_PHONE_URLS": f"json://127.0.0.1:{server.port}/phone"}  # fmt: skip
        daemons.append(first := Daemon(config, env))
        sky.put("ae01d2", YELLOW_SEA)
        first.wait_for(lambda: first.query("SELECT count(*) FROM deliveries WHERE delivered_at IS NULL") == 2)
        server.wait("/hook", 2)  # tried and failed, and retried
        server.wait("/phone", 2)
        first.proc.kill()  # -9: nothing flushed, nothing marked
        first.proc.wait()
        assert delivered(server, "/hook", "event_id") == []

        server.script("/hook", Answer(200))
        server.script("/phone", Answer(200))
        sky.clear()  # after the restart the sortie ends (signal lost): a second event for each channel
        daemons.append(second := Daemon(config, env, log_name="daemon2.log"))
        second.wait_for(lambda: second.query("SELECT count(*) FROM deliveries WHERE delivered_at IS NOT NULL") == 4,
                        timeout_s=20)  # fmt: skip
        time.sleep(0.5)  # a repeat would have come by now
        code, _ = second.stop()
        assert code == 0

        hook = delivered(server, "/hook", "event_id")
        assert [e.rsplit("/", 1)[1] for e in hook] == ["start", "end"] and len(set(hook)) == 2
        titles = [p.json()["title"] for p in server.requests("/phone") if p.status == 200]
        assert titles == ["62-4125: sortie started", "62-4125: sortie ended (signal lost)"]

        capsys.readouterr()
        assert main(["alerts", "status", "--config", str(config), "--format", "json"]) == 0
        rows = {r["channel"]: r for r in json.loads(capsys.readouterr().out)["channels"]}
        assert {name: (r["queued"], r["delivered"]) for name, r in rows.items()} == {"hook": (0, 2), "phone": (0, 2)}
        assert all(r["last_error"] and "500" in r["last_error"] for r in rows.values())  # the last one, before
        assert all(r["failures"] == 0 and r["parked_until"] is None for r in rows.values())
        assert main(["alerts", "status", "--config", str(config)]) == 0
        table = capsys.readouterr().out
        assert table.splitlines()[0].split() == ["channel", "kind", "queued", "delivered", "last", "delivered", "state"]
        assert "hook     webhook" in table and " ok" in table
