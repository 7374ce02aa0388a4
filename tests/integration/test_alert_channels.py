"""The webhook and apprise channels against a real HTTP server on 127.0.0.1 (Apprise through its json:// and
form:// schemes), events raised by replaying a recording into a real SQLite file, and the Delivery object
the daemon runs: payloads and signatures, a 500 then recovery delivered once, a 403 that parks, a server
down for a whole sortie, Retry-After, two channels with one down. The daemon itself, killed with -9
between enqueue and delivery, is test_alert_daemon.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.alerts.delivery import Delivery
from ingest.cli import main
from tests.integration.alerting import Answer, Bench, HookServer, hook_server, load_settings, two_sorties
from tests.integration.alerting import write_alerts_config as write_config

pytestmark = pytest.mark.integration

FAST = "retry_min_s = 0.2\nretry_max_s = 1.0\n"
EVENTS = [
    "ae01ce-20261120T225958Z/start", "ae01ce-20261120T225958Z/end",
    "ae01ce-20261120T230258Z/start", "ae01ce-20261120T230258Z/end",
]  # fmt: skip


@pytest.fixture
def server() -> Iterator[HookServer]:
    with hook_server() as s:
        yield s


def bench(tmp_path: Path, tables: str, environ: dict[str, str]) -> Bench:
    return Bench(load_settings(write_config(tmp_path, tables), environ))


def run(b: Bench) -> Delivery:
    d = Delivery(b.settings, b.access)
    d.start()
    return d


WEBHOOK = f'[[alerts]]\nname = "hook"\nkind = "webhook"\ntimezone = "Asia/Seoul"\n{FAST}'


def test_webhook_payload_signature_and_order(tmp_path: Path, server: HookServer) -> None:
    headers = tmp_path / "hook-headers"  # as a Docker secret would hold them
    headers.write_text("# for ntfy\nAuthorization: Bearer tk_h3ader\nX-Tags: rc135\n")
    environ = {"INGEST_ALERTS_HOOK_URL": server.url("/hook?token=t0k"), "INGEST_ALERTS_HOOK_SECRET": "hmac-key"}
    b = bench(tmp_path, WEBHOOK + f'headers_file = "{headers}"\n', environ)
    b.replay(two_sorties(tmp_path))
    d = run(b)
    try:
        posted = server.wait("/hook", 4)
    finally:
        d.stop(2.0)
    assert [p.json()["event_id"] for p in posted] == EVENTS
    first = posted[0]
    assert first.path == "/hook?token=t0k"
    expected = "sha256=" + hmac.new(b"hmac-key", first.body, hashlib.sha256).hexdigest()
    assert first.headers["X-Ingest-Signature"] == expected
    assert first.headers["X-Ingest-Event"] == "start" and first.headers["X-Ingest-Event-Id"] == EVENTS[0]
    assert (first.headers["Authorization"], first.headers["X-Tags"]) == ("Bearer tk_h3ader", "rc135")
    assert first.headers["Content-Type"] == "application/json"
    body = first.json()
    assert (body["event"], body["registration"], body["hex"], body["type"]) == ("start", "62-4134", "ae01ce", "R135")
    assert (body["operator"], body["type_name"], body["channel"]) == ("USAF", "Boeing RC-135W", "hook")
    assert body["title"] == "62-4134: sortie started"
    assert body["text"].startswith("USAF Boeing RC-135W 62-4134 (SNOOP01) entered the Korean Peninsula area")
    assert "KST" in body["text"]
    assert posted[1].json()["end_reason"] == "landed" and "landed" in posted[1].json()["text"]
    assert b.states()["hook"].delivered == 4 and b.states()["hook"].queued == 0
    b.close()


def test_webhook_500_then_recovery_delivers_once(
    tmp_path: Path, server: HookServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.script("/hook", Answer(500), Answer(500), Answer(200))
    b = bench(tmp_path, WEBHOOK, {"INGEST_ALERTS_HOOK_URL": server.url("/hook")})
    b.replay(two_sorties(tmp_path))
    caplog.set_level(logging.INFO, "ingest.alerts")
    d = run(b)
    try:
        server.wait("/hook", 6)  # two 500s, then the four events
        time.sleep(0.5)  # anything repeated would have come by now
    finally:
        d.stop(2.0)
    posted = server.requests("/hook")
    assert [p.status for p in posted] == [500, 500, 200, 200, 200, 200]
    ok = [p.json()["event_id"] for p in posted if p.status == 200]
    assert ok == EVENTS  # each once, in order
    assert [p.json()["event_id"] for p in posted[:3]] == [EVENTS[0]] * 3  # the same event, retried
    lines = [r.getMessage() for r in caplog.records if "alerts channel hook" in r.getMessage()]
    assert sum("answered HTTP 500" in line for line in lines) == 1, lines  # one line per episode
    assert any("delivering again after 2 failed attempts" in line for line in lines), lines
    assert b.states()["hook"].queued == 0
    b.close()


def test_a_webhook_that_drips_its_answer_is_cut_at_the_post_deadline_and_retried(
    tmp_path: Path, server: HookServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Each byte comes within timeout_s (0.4 s), so only the whole POST's deadline (3 x 0.4 s) can cut it.
    server.script("/hook", Answer(drip_s=0.2), Answer())
    b = bench(tmp_path, WEBHOOK + "timeout_s = 0.4\n", {"INGEST_ALERTS_HOOK_URL": server.url("/hook")})
    b.replay(two_sorties(tmp_path))
    t0 = time.monotonic()
    with caplog.at_level(logging.INFO, logger="ingest.alerts"):
        d = run(b)
        try:
            posted = server.wait("/hook", 5, timeout_s=15)
        finally:
            d.stop(2.0)
            b.close()
    assert posted[1].at - posted[0].at < 1.2 + 1.5  # cut at 1.2 s (plus the back-off and a watchdog tick)
    assert [p.json()["event_id"] for p in posted] == [EVENTS[0], *EVENTS]  # the cut one again, then the rest
    assert "did not finish answering within 1.2 s" in caplog.text, caplog.text
    assert time.monotonic() - t0 < 10


def test_webhook_403_parks_the_channel(tmp_path: Path, server: HookServer, caplog: pytest.LogCaptureFixture) -> None:
    server.script("/hook", Answer(403))
    b = bench(tmp_path, WEBHOOK, {"INGEST_ALERTS_HOOK_URL": server.url("/hook?token=t0k")})
    b.replay(two_sorties(tmp_path))
    d = run(b)
    try:
        server.wait("/hook", 1)
        time.sleep(1.0)  # retry_min_s is 0.2: a retry would have come
    finally:
        d.stop(1.0)
    assert len(server.requests("/hook")) == 1
    state = b.states()["hook"]
    assert state.parked_until is not None and state.queued == 4
    assert (
        state.last_error == f"http://127.0.0.1:{server.port} answered HTTP 403 (a refusal that retrying will not fix)"
    )
    parked = [r for r in caplog.records if "parked until" in r.getMessage()]
    assert len(parked) == 1 and parked[0].levelno == logging.ERROR
    assert all("t0k" not in r.getMessage() for r in caplog.records)
    b.close()
    # Fixed on the server's side: `ingest alerts test hook` succeeds and un-parks it; a restarted delivery goes on.
    server.script("/hook", Answer(200))
    config = tmp_path / "ingest.toml"
    environ = {"INGEST_ALERTS_HOOK_URL": server.url("/hook?token=t0k")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in environ.items():
            mp.setenv(k, v)
        assert main(["alerts", "test", "hook", "--config", str(config)]) == 0
    assert server.requests("/hook")[-1].json()["event"] == "test"
    b = bench(tmp_path, WEBHOOK, environ)
    assert b.states()["hook"].parked_until is None
    d = run(b)
    try:
        server.wait("/hook", 6)
    finally:
        d.stop(2.0)
    assert [p.json()["event_id"] for p in server.requests("/hook")[2:]] == EVENTS
    b.close()


def test_a_server_down_for_a_whole_sortie_gets_both_events_in_order_after(tmp_path: Path, server: HookServer) -> None:
    environ = {"INGEST_ALERTS_HOOK_URL": server.url("/hook")}
    server.down()
    b = bench(tmp_path, WEBHOOK, environ)
    d = run(b)
    try:
        b.replay(two_sorties(tmp_path))  # while it is down: both sorties start and end
        d.wake()
        time.sleep(1.0)
        state = b.states()["hook"]
        assert state.queued == 4 and state.failures >= 2 and "Connection refused" in (state.last_error or "")
        server.up()
        posted = server.wait("/hook", 4, timeout_s=5)
    finally:
        d.stop(2.0)
    assert [p.json()["event_id"] for p in posted] == EVENTS
    b.close()


def test_retry_after_is_honoured(tmp_path: Path, server: HookServer) -> None:
    server.script("/hook", Answer(429, {"Retry-After": "2"}), Answer(200))
    b = bench(tmp_path, WEBHOOK, {"INGEST_ALERTS_HOOK_URL": server.url("/hook")})
    b.replay(two_sorties(tmp_path), upto=1)
    d = run(b)
    try:
        first, second = server.wait("/hook", 2, timeout_s=6)
    finally:
        d.stop(1.0)
    assert 1.9 <= second.at - first.at <= 3.5  # not retry_min_s (0.2 s): what the server asked
    b.close()


APPRISE = f'[[alerts]]\nname = "phone"\nkind = "apprise"\n{FAST}'


def test_apprise_title_body_and_the_map(tmp_path: Path, server: HookServer) -> None:
    b = bench(tmp_path, APPRISE, {"INGEST_ALERTS_PHONE_URLS": f"json://127.0.0.1:{server.port}/phone"})
    b.replay(two_sorties(tmp_path))
    d = run(b)
    try:
        posted = server.wait("/phone", 4, timeout_s=30)
    finally:
        d.stop(2.0)
    bodies = [p.json() for p in posted]
    assert [x["title"] for x in bodies] == ["62-4134: sortie started", "62-4134: sortie ended (landed)"] * 2
    assert bodies[0]["message"].startswith("USAF Boeing RC-135W 62-4134 (SNOOP01) entered the Korean Peninsula area")
    (picture,) = bodies[1]["attachments"]
    assert picture["filename"] == "ae01ce-20261120T225958Z.png" and picture["mimetype"] == "image/png"
    assert base64.b64decode(picture["base64"])[:8] == b"\x89PNG\r\n\x1a\n"
    b.close()


def test_apprise_500_then_recovery_once_and_403_parks(tmp_path: Path, server: HookServer) -> None:
    server.script("/phone", Answer(500), Answer(200))
    server.script("/pager", Answer(403))
    tables = APPRISE.replace('"phone"', '"phone"\nattach_map = false') + APPRISE.replace('"phone"', '"pager"')
    urls = {"INGEST_ALERTS_PHONE_URLS": f"form://127.0.0.1:{server.port}/phone",
            "INGEST_ALERTS_PAGER_URLS": f"json://127.0.0.1:{server.port}/pager"}  # fmt: skip
    b = bench(tmp_path, tables, urls)
    b.replay(two_sorties(tmp_path))
    d = run(b)
    try:
        server.wait("/phone", 5, timeout_s=15)
        server.wait("/pager", 1)
        time.sleep(0.6)
    finally:
        d.stop(2.0)
    phone = server.requests("/phone")
    assert [p.status for p in phone] == [500, 200, 200, 200, 200]
    assert phone[0].headers["Content-Type"] == "application/x-www-form-urlencoded"  # form:// posts a form
    assert b"title=62-4134%3A+sortie+started" in phone[0].body
    assert len(server.requests("/pager")) == 1
    states = b.states()
    assert states["phone"].queued == 0 and states["phone"].delivered == 4
    assert states["pager"].parked_until is not None and "error=403" in (states["pager"].last_error or "")
    b.close()


def test_apprise_retries_only_the_url_that_failed(tmp_path: Path, server: HookServer) -> None:
    server.script("/b", Answer(500), Answer(200))
    urls = f"json://127.0.0.1:{server.port}/a json://127.0.0.1:{server.port}/b"
    b = bench(tmp_path, APPRISE.replace("kind", "attach_map = false\nkind"), {"INGEST_ALERTS_PHONE_URLS": urls})
    b.replay(two_sorties(tmp_path), upto=1)
    d = run(b)
    try:
        server.wait("/b", 2, timeout_s=10)
        time.sleep(0.5)
    finally:
        d.stop(1.0)
    assert len(server.requests("/a")) == 1  # it took the event the first time: not sent to it again
    assert b.states()["phone"].queued == 0
    b.close()


def test_two_channels_one_down_the_other_delivers_on_time(tmp_path: Path, server: HookServer) -> None:
    server.script("/hook", Answer(500))
    tables = WEBHOOK + APPRISE.replace("kind", "attach_map = false\nkind")
    b = bench(tmp_path, tables, {"INGEST_ALERTS_HOOK_URL": server.url("/hook"),
                                 "INGEST_ALERTS_PHONE_URLS": f"json://127.0.0.1:{server.port}/phone"})  # fmt: skip
    d = run(b)
    try:
        time.sleep(0.3)  # both channels idle
        t0 = time.monotonic()
        b.replay(two_sorties(tmp_path))
        d.wake()
        phone = server.wait("/phone", 4, timeout_s=5)
        took = phone[-1].at - t0
        hook_tries = len(server.requests("/hook"))
    finally:
        d.stop(1.0)
    assert took < 2.0, took  # the webhook's 500s and backoff hold only the webhook
    assert hook_tries >= 1
    states = b.states()
    assert (states["phone"].queued, states["hook"].queued) == (0, 4)
    b.close()


def test_replay_alerts_only_with_alerts_and_the_bundled_demo_never(
    tmp_path: Path, server: HookServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGEST_ALERTS_HOOK_URL", server.url("/hook"))
    config = write_config(tmp_path, WEBHOOK)
    recording = two_sorties(tmp_path)
    assert main(["replay", "--config", str(config), str(recording)]) == 0
    assert "alerts delivered" not in capsys.readouterr().out
    b = Bench(load_settings(config, {"INGEST_ALERTS_HOOK_URL": server.url("/hook")}))
    assert b.access(lambda s: s.outbox_counts()) == (0, 0)  # nothing queued for later either
    b.close()
    (tmp_path / "ingest.db").unlink()
    assert main(["replay", "--alerts", "--config", str(config), str(recording)]) == 0
    assert "alerts delivered: hook 4" in capsys.readouterr().out
    assert [p.json()["event_id"] for p in server.requests("/hook")] == EVENTS
    demo = Path(__file__).parents[2] / "config" / "demo" / "synthetic-tora23-replay.ndjson.gz"
    assert main(["replay", "--alerts", "--config", str(config), str(demo)]) == 0
    assert len(server.requests("/hook")) == 4  # synthetic: never alerted, --alerts or not


def test_alerts_test_with_a_wrong_name_or_none_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, "")
    assert main(["alerts", "test", "nosuch", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err == "ingest: error: no enabled alert channel 'nosuch' (configured: none)\n"
    assert main(["alerts", "test", "--config", str(config)]) == 2  # argparse: the NAME is required
    assert "the following arguments are required: NAME" in capsys.readouterr().err
    assert main(["alerts", "status", "--config", str(config)]) == 1  # no database yet: one line, no traceback
    err = capsys.readouterr().err
    assert err.startswith("ingest: error: no database at ") and err.count("\n") == 1
