"""Benchmark the alert channels: draining a queued outbox, and one alert's latency, each channel beside its
own floor measured in the same run (issue 10).

Every channel is driven as the daemon drives it: a Writer thread owns a fresh SQLite file
(ingest/scheduler.py), the Delivery object (ingest/alerts/delivery.py) runs the channel's thread and reaches
the store through the writer (`writer_access`). MQTT is also driven as the one-shot commands drive it
(`ingest.alerts.delivery.deliver` with a locked store, as `ingest poll` does).

- MQTT: `--alerts` start/end events (~450 B, distinct event_ids, as the Tracker writes them) queued before
  the channel starts, against a private mosquitto on a free loopback port (never 1883). Floor: a bare
  paho v5 client publishing the same payloads QoS 1 with max_inflight 100, waiting for every PUBACK.
- webhook: `--posts` events to a loopback HTTP/1.1 server (http.server, keep-alive) answering 200. Floor:
  bare requests POSTs of the same bodies through one Session to the same server, one after the other.
- apprise: `--notes` events through Apprise's json:// scheme to the same server (attach_map off). Floor: a
  bare `apprise.Apprise()` with the same URL, `notify(body, title)` once per event.
- Latency: one event committed (through the writer, as the Tracker commits it) to marked delivered, per
  channel, `--trials` times; floor: one bare publish -> PUBACK, one bare POST, one bare notify. And the
  sortie map (the apprise channel attaches it to start and end): its drawing time, warm.

Rates: events marked delivered / (channel start -> the last one marked), read by polling the database with
a separate connection every POLL_S; the floor's: events / (start -> the last acknowledgement). "/floor" is
the channel's rate over its floor's, the target being >= 0.8 for MQTT.

How to run (from the repository root; about a minute):

    .venv/bin/python scripts/bench_alerts.py [--alerts 10000] [--posts 2000] [--notes 300] [--trials 20] [--json]

Needs mosquitto (/usr/sbin/mosquitto or on PATH). Scratch files live in a temporary folder removed at exit.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from time import perf_counter
from typing import Any

import apprise
import paho.mqtt.client as mqtt
import requests
from paho.mqtt.enums import CallbackAPIVersion

from ingest.alerts.delivery import Delivery, MapMaker, deliver
from ingest.alerts.messages import alert
from ingest.alerts.routing import Router
from ingest.app import build_app
from ingest.commands import locked_access
from ingest.config import Settings, load
from ingest.models import Alert, Fix, Sortie, SortieEvent
from ingest.scheduler import Writer, utc_now, writer_access
from ingest.store import SqliteStore, Store, Tracking, open_configured

REPO = Path(__file__).resolve().parents[1]
WATCHLIST = REPO / "tests" / "fixtures" / "watchlist_small.csv"
HOST = "127.0.0.1"
FLOOR_MAX_INFLIGHT = 100  # paho's, as ingest/alerts/mqtt.py MAX_INFLIGHT
POLL_S = 0.02
TIMEOUT_S = 120.0
T0 = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
PREFIX = "bench"
SECRETS: dict[str, str] = {}  # INGEST_ALERTS_<NAME>_URL(S) of the channels, set by run()


# -- the services ---------------------------------------------------------------------------------------


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        if port != 1883:
            return port


class Mosquitto:
    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.access(exe, os.X_OK):
            raise SystemExit("mosquitto not found; install it with: apt-get install mosquitto")
        self.port = free_port()
        conf = workdir / "mosquitto.conf"
        lines = [f"listener {self.port} {HOST}", "allow_anonymous true", "persistence false"]
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.2):
                return
            time.sleep(0.05)
        self.stop()
        raise SystemExit("mosquitto did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Sink:
    """A loopback HTTP/1.1 server that answers every POST 200 (keep-alive) and counts them."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with sink.lock:
                    sink.count += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((HOST, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- events ---------------------------------------------------------------------------------------------


def events(count: int, channels: tuple[str, ...], settings: Settings, offset: int = 0) -> list[Alert]:
    """Start and end events of made-up sorties of the watchlist's aircraft, routed as the Tracker routes them."""
    app = build_app(settings)
    entries = app.watchlist.entries
    router = Router([c for c in settings.channels() if c.name in channels])
    out: list[Alert] = []
    i = offset
    while len(out) < count:
        entry = entries[i % len(entries)]
        start = T0 + timedelta(minutes=i)
        first = Fix(start, 37.12345, 124.81234, 31000, "TORA23", "adsb.lol")
        last = Fix(start + timedelta(hours=4), 38.2345, 125.1234, 28000, "TORA24", "adsb.lol")
        s = Sortie(
            sortie_id=f"{entry.hexes[0]}-{start:%Y%m%dT%H%M%SZ}", key=entry.key, hex_icao=entry.hexes[0],
            registration=entry.registration, type_icao=entry.icao_type, first=first, last=last,
            last_seen_at=last.at, callsigns=("TORA23", "TORA24"), max_alt_baro_ft=33000, sightings=812,
            previous_sortie_end=start - timedelta(days=2), end_reason="left_area",
        )  # fmt: skip
        for kind in ("start", "end"):
            out.append(router.route(alert(PREFIX, "Korean Peninsula", SortieEvent(kind, s)), kind, s, entry))
        i += 1
    return out[:count]


def config(scratch: Path, name: str, broker_port: int, tables: str, mqtt_on: bool) -> Settings:
    path = scratch / f"{name}.toml"
    path.write_text(
        f'[database]\npath = "{scratch / (name + ".db")}"\n[watchlist]\npath = "{WATCHLIST}"\n[replay]\non_start = []\n'
        f'[daemon]\nlog_level = "WARNING"\n[mqtt]\nenabled = {"true" if mqtt_on else "false"}\nhost = "{HOST}"\n'
        f'port = {broker_port}\ntopic_prefix = "{PREFIX}"\nclient_id = "bench-{name}"\n{tables}'
    )
    environ = {k: v for k, v in SECRETS.items() if f'name = "{k.split("_")[2].lower()}"' in tables}
    return load(path, environ=environ)


def delivered(db: Path) -> tuple[int, int]:
    with closing(sqlite3.connect(db, timeout=5)) as conn:
        row = conn.execute("SELECT count(*) - count(delivered_at), count(delivered_at) FROM deliveries").fetchone()
    return int(row[0]), int(row[1])


def wait_delivered(db: Path, total: int, what: str) -> float:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if delivered(db)[1] >= total:
            return perf_counter()
        time.sleep(POLL_S)
    raise SystemExit(f"{what}: not every event was delivered within {TIMEOUT_S:.0f} s ({delivered(db)})")


@contextlib.contextmanager
def daemon_side(settings: Settings) -> Iterator[tuple[Writer, Delivery]]:
    """The daemon's writer thread and Delivery, as run_daemon builds them (not started)."""
    writer = Writer(build_app(settings), utc_now)
    writer.open()
    delivery = Delivery(settings, writer_access(writer))
    writer.on_alerts = delivery.wake
    try:
        yield writer, delivery
    finally:
        delivery.stop(2.0)
        writer.close()


def queue(db_settings: Settings, alerts: Sequence[Alert]) -> None:
    store = SqliteStore(db_settings.database.path)
    try:
        store.save_tracking(Tracking(alerts=alerts))
    finally:
        store.close()


# -- drains ---------------------------------------------------------------------------------------------


def wait_marked(delivery: Delivery, total: int, what: str) -> float:
    """When the channels' own count of events marked delivered reached `total`: the time of the last mark
    (time.monotonic), looked at every POLL_S (no database load, and rarely enough not to take the GIL from
    the threads measured)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if sum(c.delivered for c in delivery.channels) >= total:
            return max(c.last_marked for c in delivery.channels)
        time.sleep(POLL_S)
    raise SystemExit(f"{what}: not every event was delivered within {TIMEOUT_S:.0f} s")


def drain_channel(settings: Settings, alerts: Sequence[Alert]) -> float:
    """Queued events drained by the daemon's Delivery; returns events/s."""
    queue(settings, alerts)
    with daemon_side(settings) as (_, delivery):
        t0 = time.monotonic()
        delivery.start()
        t1 = wait_marked(delivery, len(alerts), "drain")
    if delivered(settings.database.path) != (0, len(alerts)):
        raise SystemExit(f"drain: the database says {delivered(settings.database.path)}")
    return len(alerts) / (t1 - t0)


def drain_one_shot(settings: Settings, alerts: Sequence[Alert]) -> tuple[float, float]:
    """Queued MQTT events drained by `deliver()`, as `ingest poll` does: (events/s from the call to the last
    mark, the whole call's time in s, with connecting and the clean disconnect)."""
    queue(settings, alerts)
    store = open_configured(settings.database, create=True, shared=True)
    marked: list[float] = []
    real_stop = Delivery.stop

    def stop(self: Delivery, flush_s: float) -> None:  # the time of the last mark, before the channels go
        real_stop(self, flush_s)
        marked.append(max((c.last_marked for c in self.channels), default=0.0))

    try:
        Delivery.stop = stop  # type: ignore[method-assign]
        t0 = time.monotonic()
        summary = deliver(settings, locked_access(store), TIMEOUT_S)
        took = time.monotonic() - t0
    finally:
        Delivery.stop = real_stop  # type: ignore[method-assign]
        store.close()
    if sum(summary.delivered.values()) != len(alerts):
        raise SystemExit(f"one-shot drain delivered {summary.delivered}, not {len(alerts)}")
    return len(alerts) / (marked[0] - t0), took


def floor_paho(port: int, alerts: Sequence[Alert]) -> float:
    done, connected = threading.Event(), threading.Event()
    acked = [0]

    def on_publish(client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        acked[0] += 1
        if acked[0] == len(alerts):
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-floor", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(FLOOR_MAX_INFLIGHT)
    client.on_connect = lambda c, u, f, r, p: connected.set()
    client.on_publish = on_publish
    t0 = perf_counter()
    client.connect(HOST, port, keepalive=30)
    client.loop_start()
    try:
        connected.wait(10)
        for a in alerts:
            client.publish(a.topic, a.payload, qos=1)
        if not done.wait(TIMEOUT_S):
            raise SystemExit("the paho floor did not get every PUBACK")
        t1 = perf_counter()
    finally:
        client.disconnect()
        client.loop_stop()
    return len(alerts) / (t1 - t0)


def floor_requests(url: str, alerts: Sequence[Alert]) -> float:
    session = requests.Session()
    bodies = [a.payload.encode() for a in alerts]
    t0 = perf_counter()
    for body in bodies:
        r = session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=(3.05, 10))
        r.raise_for_status()
    t1 = perf_counter()
    session.close()
    return len(alerts) / (t1 - t0)


def floor_apprise(url: str, count: int) -> float:
    a = apprise.Apprise()
    a.add(url)
    t0 = perf_counter()
    for i in range(count):
        if not a.notify(body=f"USAF Boeing RC-135W 62-4125 (TORA23) entered the area, event {i}", title="62-4125"):
            raise SystemExit("the apprise floor failed")
    return count / (perf_counter() - t0)


# -- latency --------------------------------------------------------------------------------------------


def commit(store: Store, alerts: list[Alert]) -> None:
    store.save_tracking(Tracking(alerts=alerts))


def latency_channel(settings: Settings, trials: int) -> list[float]:
    """One event committed through the writer (as the Tracker commits it) to its delivery marked, in ms."""
    out: list[float] = []
    with daemon_side(settings) as (writer, delivery):
        delivery.start()
        time.sleep(0.5)  # connected, idle
        for n in range(trials + 1):
            (one,) = events(1, tuple(c.name for c in settings.channels()), settings, offset=10_000 + n)
            t0 = time.monotonic()
            writer.submit(functools.partial(commit, alerts=[one])).result(10)
            delivery.wake()  # what the writer's on_alerts does after the Tracker's commit
            t1 = wait_marked(delivery, n + 1, "latency")
            if n:  # the first is a warm-up
                out.append((t1 - t0) * 1000)
    return out


def latency_paho(port: int, trials: int) -> list[float]:
    acked = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-floor-lat", protocol=mqtt.MQTTv5)
    client.on_publish = lambda *a: acked.set()
    client.connect(HOST, port, keepalive=30)
    client.loop_start()
    out = []
    try:
        time.sleep(0.2)
        for n in range(trials + 1):
            acked.clear()
            t0 = perf_counter()
            client.publish(f"{PREFIX}/floor", "{}", qos=1)
            acked.wait(10)
            if n:
                out.append((perf_counter() - t0) * 1000)
    finally:
        client.disconnect()
        client.loop_stop()
    return out


def latency_of(call: Callable[[], object], trials: int) -> list[float]:
    out = []
    for n in range(trials + 1):
        t0 = perf_counter()
        call()
        if n:
            out.append((perf_counter() - t0) * 1000)
    return out


def map_ms(settings: Settings) -> list[float]:
    """The sortie map the apprise channel attaches, drawn warm (as `ingest map` draws it), in ms."""
    store = SqliteStore(settings.database.path)
    app = build_app(settings)
    store.sync_watchlist(app.watchlist)
    from ingest.pipeline import replay_file
    from ingest.tracker import Tracker

    recording = settings.database.path.with_suffix(".ndjson")
    lines = []
    for i in range(240):  # four hours over the Yellow Sea, a fix a minute
        at = T0 + timedelta(minutes=i)
        record = {"hex": "ae01d2", "type": "adsb_icao", "flight": "TORA23  ", "alt_baro": 31000, "lat": 35 + i * 0.01,
                  "lon": 124.5 + (i % 60) * 0.02, "seen_pos": 1.0, "seen": 0.5, "messages": 1000}  # fmt: skip
        lines.append(json.dumps({"now": at.timestamp(), "aircraft": [record]}))
    recording.write_text("\n".join(lines) + "\n")
    tracker = Tracker(settings, store, watchlist=app.watchlist, alerts=False)
    for outcome in replay_file(recording, "replay", app.selector, utc_now):
        tracker.save_poll(store, outcome, outcome.record.started_at)
    (sortie,) = store.sorties()
    lock = threading.Lock()

    def access(fn: Callable[[Any], Any]) -> Any:
        with lock:
            return fn(store)

    maker = MapMaker(settings, access)
    try:
        return latency_of(lambda: maker(sortie.sortie_id), 3)
    finally:
        store.close()


# -- report ---------------------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    broker = Mosquitto(scratch)
    sink = Sink()
    try:
        hook_url, notes_url = f"http://{HOST}:{sink.port}/hook", f"json://{HOST}:{sink.port}/notes"
        SECRETS.update(INGEST_ALERTS_HOOK_URL=hook_url, INGEST_ALERTS_PHONE_URLS=notes_url)
        webhook = '[[alerts]]\nname = "hook"\nkind = "webhook"\n'
        phone = '[[alerts]]\nname = "phone"\nkind = "apprise"\nattach_map = false\n'

        def cfg(name: str, tables: str = "", mqtt_on: bool = False) -> Settings:
            return config(scratch, name, broker.port, tables, mqtt_on)

        mqtt_events = events(args.alerts, ("mqtt",), cfg("ev", mqtt_on=True))
        rates: dict[str, dict[str, float]] = {}
        # Rounds of floor, daemon path, one-shot path, floor: each path against the mean of the floors around it
        # (the machine is shared: its load drifts within seconds), the median round reported.
        rounds = []
        for r in range(args.rounds):
            floor = floor_paho(broker.port, mqtt_events)
            daemon = drain_channel(cfg(f"mqtt-daemon-{r}", mqtt_on=True), mqtt_events)
            one_shot, call_s = drain_one_shot(cfg(f"mqtt-oneshot-{r}", mqtt_on=True), mqtt_events)
            floor = (floor + floor_paho(broker.port, mqtt_events)) / 2
            rounds.append({"floor": floor, "daemon": daemon, "one_shot": one_shot, "call_s": call_s})
        rates["mqtt"] = {
            "floor": statistics.median(x["floor"] for x in rounds),
            "daemon": statistics.median(x["daemon"] for x in rounds),
            "one_shot": statistics.median(x["one_shot"] for x in rounds),
            "daemon_ratio": statistics.median(x["daemon"] / x["floor"] for x in rounds),
            "one_shot_ratio": statistics.median(x["one_shot"] / x["floor"] for x in rounds),
            "one_shot_call_s": statistics.median(x["call_s"] for x in rounds),
        }
        rates["mqtt_rounds"] = {f"{k}_{i}": v for i, x in enumerate(rounds) for k, v in x.items()}
        hook_events = events(args.posts, ("hook",), cfg("ev-hook", webhook))
        rates["webhook"] = {
            "floor": floor_requests(hook_url, hook_events), "daemon": drain_channel(cfg("hook", webhook), hook_events),
        }  # fmt: skip
        note_events = events(args.notes, ("phone",), cfg("ev-phone", phone))
        rates["apprise"] = {
            "floor": floor_apprise(notes_url, args.notes), "daemon": drain_channel(cfg("phone", phone), note_events),
        }  # fmt: skip
        session = requests.Session()
        notifier = apprise.Apprise()
        notifier.add(notes_url)
        latency = {
            "mqtt": (latency_channel(cfg("lat-mqtt", mqtt_on=True), args.trials),
                     latency_paho(broker.port, args.trials)),
            "webhook": (latency_channel(cfg("lat-hook", webhook), args.trials),
                        latency_of(lambda: session.post(hook_url, data=b"{}", timeout=5), args.trials)),
            "apprise": (latency_channel(cfg("lat-phone", phone), args.trials),
                        latency_of(lambda: notifier.notify(body="x", title="y"), args.trials)),
        }  # fmt: skip
        maps = map_ms(cfg("map"))
    finally:
        sink.stop()
        broker.stop()
    return {"rates": rates, "latency_ms": {k: {"channel": v[0], "floor": v[1]} for k, v in latency.items()},
            "map_ms": maps, "counts": {"mqtt": args.alerts, "webhook": args.posts, "apprise": args.notes}}  # fmt: skip


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    libs = " | ".join(f"{name} {version(name)}" for name in ("paho-mqtt", "apprise", "requests"))
    print(f"Python {platform.python_version()} | {libs} | {os.cpu_count()} CPUs")
    print(f"command: {' '.join([sys.executable, *sys.argv])}\n")
    print("1. Drain of queued events, each channel beside its own floor (events/s)")
    print(f"{'channel':<40} {'events':>7} {'floor/s':>9} {'channel/s':>10} {'/floor':>7}")
    r, n = result["rates"], result["counts"]
    m = r["mqtt"]
    rows = [
        ("mqtt (daemon: Writer + Delivery)", "mqtt", m["daemon"], m["floor"], m["daemon_ratio"]),
        ("mqtt (one-shot deliver())", "mqtt", m["one_shot"], m["floor"], m["one_shot_ratio"]),
        ("webhook (daemon)", "webhook", r["webhook"]["daemon"], r["webhook"]["floor"], None),
        ("apprise json:// (daemon)", "apprise", r["apprise"]["daemon"], r["apprise"]["floor"], None),
    ]
    for label, kind, rate, floor, ratio in rows:
        ratio = rate / floor if ratio is None else ratio
        print(f"{label:<40} {n[kind]:>7} {floor:>9,.0f} {rate:>10,.0f} {ratio:>7.2f}")
    rr = r["mqtt_rounds"]
    each = ", ".join(
        f"{rr[f'daemon_{i}'] / rr[f'floor_{i}']:.2f}/{rr[f'one_shot_{i}'] / rr[f'floor_{i}']:.2f}"
        for i in range(args.rounds)
    )
    print(f"mqtt: the median of {args.rounds} rounds (floor, daemon, one-shot, floor); daemon/one-shot per round: "
          f"{each}")  # fmt: skip
    print(f"mqtt one-shot: the whole deliver() call, connecting and the clean disconnect included: "
          f"{m['one_shot_call_s']:.2f} s")  # fmt: skip
    print("rates: start -> the last event marked delivered; floors: mqtt = bare paho v5 QoS 1, inflight 100 (mean")
    print("  of the two around the round), start = connect; webhook = bare requests Session POSTs to the same")
    print("  server; apprise = bare Apprise notify() to the same json:// URL\n")
    print(f"2. Latency, one event committed -> marked delivered ({args.trials} trials after a warm-up), ms")
    print(f"{'channel':<10} {'p50':>7} {'p95':>7}   {'floor p50':>9} {'floor p95':>9}")
    for kind, v in result["latency_ms"].items():
        c, f = v["channel"], v["floor"]
        print(f"{kind:<10} {pct(c, 0.5):>7.2f} {pct(c, 0.95):>7.2f}   {pct(f, 0.5):>9.2f} {pct(f, 0.95):>9.2f}")
    m = result["map_ms"]
    print(f"\nthe sortie map the apprise channel attaches to start and end (240 fixes, warm): "
          f"{statistics.median(m):.0f} ms median; matplotlib's import is paid when the channel opens, off the first "
          "alert's path")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=10_000, help="MQTT events drained (default 10000)")
    parser.add_argument("--posts", type=int, default=2_000, help="webhook events drained (default 2000)")
    parser.add_argument("--notes", type=int, default=300, help="apprise events drained (default 300)")
    parser.add_argument("--trials", type=int, default=20, help="latency trials per channel (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="MQTT drain rounds, the median reported (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench_alerts_"))
    try:
        result = run(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report(result, args)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
