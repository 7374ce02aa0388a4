"""`ingest run --log-format json` as a real process: every line of its stderr is one JSON object with time
(UTC, `Z`), level, logger and message, state changes carry their structured fields (feed, sortie_id, ...),
a poll is no line of its own, and no secret shows."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ConfigWriter, aircraft, envelope
from tests.integration.conftest import Daemon, FeedServer, Reply
from tests.mqtt_broker import Broker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def parse(output: str) -> list[dict[str, Any]]:
    lines = output.splitlines()
    assert lines, "no log lines"
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}\nlog:\n{output}")
    for entry in parsed:
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
        assert entry["time"].endswith("Z") and len(entry["time"]) == len("2026-12-07T03:31:21.215Z"), entry
        assert datetime.fromisoformat(entry["time"]).utcoffset() == timedelta(0)
    return parsed


def script(*steps: tuple[int, str | None]) -> Any:
    """A feed answer per request, built at request time (fresh positions): (count, what) steps, the last
    repeating; what is "error" (HTTP 500), "air" (62-4125 airborne in the area) or "ground" (landed)."""
    plan = [what for n, what in steps for _ in range(n)]
    lock = threading.Lock()
    served = [0]

    def answer() -> Reply:
        with lock:
            what = plan[min(served[0], len(plan) - 1)]
            served[0] += 1
        if what == "error":
            return Reply(status=500, body=b"oops")
        alt: int | str = 31000 if what == "air" else "ground"
        return Reply(body=envelope([aircraft("ae01d2", alt=alt, seen_pos=0.5)], now=datetime.now(UTC)))

    return answer


def test_a_daemon_logs_json_lines_with_fields_and_no_secret(
    feed_server: FeedServer, write_config: ConfigWriter, daemons: list[Daemon], mqtt_broker: Broker
) -> None:
    feed_server.reply("/v2/hex/", script((1, "error"), (3, "air"), (1, "ground")))
    config = write_config(
        [{"name": "loopback", "kind": "readsb-v2", "base_url": feed_server.url, "interval_s": 0.5}],
        mqtt={"enabled": True, "port": mqtt_broker.password_port, "username": mqtt_broker.username},
        daemon={"log_format": "json"},
    )
    daemon = Daemon(config, env={"INGEST_MQTT_PASSWORD": mqtt_broker.password})
    daemons.append(daemon)
    daemon.wait_for(lambda: '"sortie_ended"' in daemon.output() and '"mqtt_connected"' in daemon.output())
    daemon.wait_for(lambda: (daemon.query("SELECT count(*) FROM feed_polls") or 0) >= 12)  # polls go on
    assert daemon.stop()[0] == 0
    output = daemon.output()
    lines = parse(output)
    assert mqtt_broker.password not in output

    events = {line.get("event"): line for line in lines if "event" in line}
    assert {"daemon_started", "feed_failed", "feed_recovered", "mqtt_connected", "sortie_started", "sortie_ended",
            "daemon_stopping", "daemon_stopped"} <= events.keys(), output  # fmt: skip
    failed = events["feed_failed"]
    assert failed["level"] == "WARNING" and failed["logger"] == "ingest.pipeline"
    assert (failed["feed"], failed["reason"], failed["status"]) == ("loopback", "HTTP 500 Internal Server Error", 500)
    assert failed["message"].startswith("feed loopback failed: HTTP 500 Internal Server Error; next try in ")
    assert events["feed_recovered"]["feed"] == "loopback" and events["feed_recovered"]["failures"] == 1
    started, ended = events["sortie_started"], events["sortie_ended"]
    assert started["sortie_id"] == ended["sortie_id"] and started["sortie_id"].startswith("ae01d2-")
    assert (started["hex"], started["registration"], started["callsign"]) == ("ae01d2", "62-4125", "TORA23")
    assert ended["end_reason"] == "landed"
    assert events["mqtt_connected"]["broker"] == f"127.0.0.1:{mqtt_broker.password_port}"
    assert events["daemon_started"]["daemon"] == events["daemon_stopped"]["daemon"]
    # One line per state change, never one per poll: more polls ran than lines were written.
    assert not [line for line in lines if line["message"].startswith("feed loopback: ")], output
    assert len(lines) < 12, output


def test_an_error_that_stops_start_up_is_a_json_line_too(write_config: ConfigWriter, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = write_config([], http={"enabled": True, "port": busy.getsockname()[1]})
        done = subprocess.run(
            [sys.executable, "-m", "ingest", "--log-format", "json", "run", "--config", str(config)],
            capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
        )  # fmt: skip
    assert done.returncode == 1
    last = parse(done.stderr)[-1]
    assert last["level"] == "ERROR" and last["logger"] == "ingest.cli"
    assert last["message"].startswith("ingest: error: http api: cannot listen on 127.0.0.1:")
