"""Benchmark sortie alerts: feed response -> start alert acknowledged, and draining a 10,000-alert outbox.

What it measures (reliability-and-performance.md §1.4 and §1.8, GitHub issue 3):

1. Latency, on the daemon's real path. A private mosquitto on a free loopback port (never 1883), a
   loopback readsb-v2 feed server (http.server in a thread, jv2 bodies with a live `now`), a config
   written to the scratch directory (tests/fixtures/watchlist_small.csv, `[mqtt] enabled`, one feed
   polled every `--interval-s`), `ingest.config.load` + `ingest.app.build_app`, and
   `ingest.scheduler.run_daemon(app, stop)` unmodified in a thread. While it starts, four names it looks
   up in ingest.scheduler are swapped for subclasses that only take time stamps (time.perf_counter):
   Fetcher (when a response has been received), AlertRelay.wake (when the writer committed an alert),
   MqttPublisher.publish / its PUBACK callback, and _WriterOutbox (rows read, rows marked sent).
   Each trial makes one of the four watched aircraft appear airborne inside the Korean box, waits for its
   start alert to be marked sent and seen by a paho v5 subscriber (QoS 1), then reports it on the ground
   (a landing ends the sortie) and waits for the end alert, so the next trial is a NEW sortie.
   t0 = the first response holding the aircraft has been received; t1 = its start alert's outbox row has
   been marked sent (the relay processed the PUBACK). The total is split into: the rest of the poll
   (the feed's second request, /v2/reg/), parse+select+writer commit, the relay's dispatch (wake ->
   publish), the broker (publish -> PUBACK on paho's thread) and the relay's pickup (PUBACK -> marked
   sent: the relay is woken by the PUBACK, marks it and refills). The subscriber's receive time is the
   external view.
2. Drain rate of `--alerts` queued alerts (start and end alerts of synthetic sorties from
   `ingest.alerts.messages.alert`, ~450 bytes, distinct event_ids), queued in a fresh Store with
   `save_tracking(Tracking(alerts=...))` before the publisher connects (the broker is up: a reconnect
   backoff after an outage is not what is measured). Time from starting the publisher to the last row
   marked sent (checked with outbox_counts() afterwards), for the shipped code:
   (a) the one-shot path `deliver_pending(settings, store, clock, timeout_s)` (one thread, Store as port,
       waiting for the next PUBACK between pumps);
   (b) the daemon path: Writer thread + `Alerts` (AlertRelay thread woken by every PUBACK,
       `_WriterOutbox` as port);
   beside the floor, in the same run: a bare paho v5 client publishing the same payloads QoS 1 with
   max_inflight 100 and waiting for every PUBACK. Ratios are path rate / floor rate. Only time stamps are
   added: MqttPublisher (publish() and its PUBACK callback), the outbox port and, for (b), the writer
   thread's Store are swapped for subclasses that time their calls.

How to run (from the repository root; about a minute):

    .venv/bin/python scripts/bench_alerts.py [--trials 30] [--alerts 10000] [--interval-s 0.25] [--json]
                                             [--tcp-nodelay]

How to read it:

- Latency: p50/p95/max per segment over the trials (one warm-up trial is dropped). "relay wake-up/polling"
  is dispatch + pickup; "broker" is publish -> PUBACK. The subscriber row is what a consumer sees.
- Drain: alerts/s = alerts marked sent / (publisher start -> last mark_sent returned); the floor's is
  PUBACKs / (connect -> last PUBACK), and its publish phase alone is printed below the table (§1.4 times
  that). "/floor" is path rate / floor rate. pumps = outbox reads that returned rows, rows/pump their mean
  size, gap ms the median time between them, read/mark ms the mean cost of one port call.
- Relay thread time (ingest paths): the drain split into startup (publisher start -> first outbox read
  with rows: connecting), outbox calls (for (b) a writer round trip each: SQLite inside the writer thread
  plus the hand-off to and from it), publish() calls, and the rest (waiting for a wake-up, take_acks,
  the loop). Per alert: publish() -> PUBACK on paho's thread, and PUBACK -> row marked sent; "in flight"
  is the mean number still unacknowledged when a pump reads the outbox (max_inflight minus its room).
- "no other thread running": the same outbox SQL at the same batch size on this thread, without MQTT, so
  the drain's read/mark ms can be told apart into SQL and waiting for the GIL or a CPU.
- "Why" derives the causes from this run's numbers. `--tcp-nodelay` starts mosquitto with
  `set_tcp_nodelay true`, a diagnostic for PUBACKs held back by Nagle's algorithm.

Needs mosquitto (/usr/sbin/mosquitto or on PATH). Scratch files (config, SQLite, broker config and log)
live in a tempfile.mkdtemp() directory removed at exit; the broker is stopped at exit.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import math
import os
import platform
import re
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from time import perf_counter
from typing import Any

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

import ingest.scheduler as scheduler
from ingest.alerts.messages import alert
from ingest.alerts.mqtt import MAX_INFLIGHT as PAHO_MAX_INFLIGHT
from ingest.alerts.mqtt import MqttOptions, MqttPublisher
from ingest.alerts.outbox import MAX_INFLIGHT as RELAY_MAX_INFLIGHT
from ingest.app import App, build_app
from ingest.config import DatabaseSettings, Settings, load
from ingest.feeds.base import FeedRequest
from ingest.feeds.transport import Fetcher, Response
from ingest.models import Alert, Fix, Sortie, SortieEvent
from ingest.scheduler import (
    _ACK_WAIT_S,
    _FLUSH_ON_STOP_S,
    _RELAY_PERIOD_S,
    AlertRelay,
    Alerts,
    Writer,
    _WriterOutbox,
    deliver_pending,
    run_daemon,
    utc_now,
)
from ingest.store import SqliteStore, Store, Tracking
from ingest.watchlist import WatchEntry

REPO = Path(__file__).resolve().parents[1]
WATCHLIST = REPO / "tests" / "fixtures" / "watchlist_small.csv"
HOST = "127.0.0.1"
SHARED_BROKER_PORT = 1883  # never used
MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "mosquitto")

DEFAULT_TRIALS = 30
DEFAULT_ALERTS = 10_000
DEFAULT_INTERVAL_S = 0.25
WARMUP_TRIALS = 1
FLOOR_MAX_INFLIGHT = 100
NAGLE_HINT_MS = 35.0  # a PUBACK this late looks like Nagle waiting for a delayed ACK

GAP_S = 3.0  # sorties end by landing here; the gap only matters if a poll is very late
CHECK_INTERVAL_S = 1.0
TOPIC_PREFIX = "ingest"
AREA_NAME = "Korean Peninsula"
INSIDE_LAT_DEG, INSIDE_LON_DEG = 37.0, 124.8  # over the Yellow Sea, inside lat 33-43.5, lon 124-132
SEEN_POS_S = 1.5

BROKER_START_TIMEOUT_S = 10.0
DAEMON_START_TIMEOUT_S = 15.0
TRIAL_TIMEOUT_S = 10.0
DRAIN_TIMEOUT_S = 60.0
SUBSCRIBE_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5.0
LATENCY_POLL_S = 0.005
DRAIN_POLL_S = 0.01
MS_PER_S = 1000.0
SYNTHETIC_START = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
SYNTHETIC_SORTIE_S = 3 * 3600


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, poll_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(poll_s)


# -- broker -------------------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nobody listens on right now, never the shared broker's."""
    while True:
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        if port != SHARED_BROKER_PORT:
            return port


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), 0.2):
            return True
    except OSError:
        return False


def mosquitto_exe() -> str:
    for candidate in MOSQUITTO_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise RuntimeError("mosquitto not found; install it with: apt-get install mosquitto")


def mosquitto_version(exe: str) -> str:
    done = subprocess.run([exe, "-h"], capture_output=True, text=True, check=False)
    match = re.search(r"mosquitto version (\S+)", done.stdout + done.stderr)
    return match.group(1) if match else "unknown"


class Mosquitto:
    """A private broker: one anonymous listener on a free loopback port, no persistence."""

    def __init__(self, workdir: Path, tcp_nodelay: bool = False) -> None:
        self.exe = mosquitto_exe()
        self.port = free_port()
        self.log = workdir / "mosquitto.log"
        self.conf = workdir / "mosquitto.conf"
        lines = [f"listener {self.port} {HOST}", "allow_anonymous true", "persistence false"]
        lines.append(f"log_dest file {self.log}")
        if tcp_nodelay:
            lines.append("set_tcp_nodelay true")  # a diagnostic: PUBACKs not held back by Nagle
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + BROKER_START_TIMEOUT_S
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
                raise RuntimeError(f"mosquitto did not start on port {self.port}\n{log}")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# -- feed server --------------------------------------------------------------------------------------


def feed_record(entry: WatchEntry, on_ground: bool) -> dict[str, Any]:
    """A readsb aircraft object of a watched aircraft inside the area, airborne or just landed."""
    return {
        "hex": entry.hexes[0], "type": "adsb_icao", "flight": "TORA23  ", "r": entry.registration,
        "t": entry.icao_type, "dbFlags": 1, "alt_baro": "ground" if on_ground else 31000,
        "gs": 12.0 if on_ground else 412.3, "track": 45.5, "squawk": "4651", "lat": INSIDE_LAT_DEG,
        "lon": INSIDE_LON_DEG, "seen_pos": SEEN_POS_S, "seen": 0.4, "messages": 1200, "rssi": -12.3,
    }  # fmt: skip


def jv2_body(records: Sequence[dict[str, Any]], now_s: float) -> bytes:
    now_ms = int(now_s * MS_PER_S)
    doc = {"ac": list(records), "msg": "No error", "now": now_ms, "total": len(records), "ctime": now_ms, "ptime": 0}
    return json.dumps(doc, separators=(",", ":")).encode()


class FeedServer:
    """Answers every GET with the aircraft currently shown, in a jv2 body stamped with the current time."""

    def __init__(self) -> None:
        self._records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle on, the body of a keep-alive response
            # waits for the client's delayed ACK (~40 ms on Linux). Real feed servers set TCP_NODELAY.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                body = server.body()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((HOST, 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{HOST}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="bench-feed", daemon=True)

    def show(self, records: Sequence[dict[str, Any]]) -> None:
        with self._lock:
            self._records = list(records)

    def body(self) -> bytes:
        with self._lock:
            records = list(self._records)
        return jv2_body(records, time.time())

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def write_config(path: Path, database: Path, broker_port: int, feed_url: str, interval_s: float) -> Path:
    q = json.dumps  # a TOML basic string, for these plain values
    path.write_text(
        f"[database]\npath = {q(str(database))}\n"
        f"[watchlist]\npath = {q(str(WATCHLIST))}\n"
        "[replay]\non_start = []\n"
        f"[sorties]\ngap_s = {GAP_S}\ncheck_interval_s = {CHECK_INTERVAL_S}\n"
        f"[mqtt]\nenabled = true\nhost = {q(HOST)}\nport = {broker_port}\ntopic_prefix = {q(TOPIC_PREFIX)}\n"
        f'client_id = "bench-alerts-daemon"\n'
        '[daemon]\nlog_level = "WARNING"\n'
        f'[[feeds]]\nname = "loopback"\nkind = "readsb-v2"\nbase_url = {q(feed_url)}\ninterval_s = {interval_s}\n'
    )
    return path


@contextlib.contextmanager
def patched_scheduler(**names: Any) -> Iterator[None]:
    """Swap names that run_daemon looks up in ingest.scheduler; restored on exit."""
    saved = {name: getattr(scheduler, name) for name in names}
    for name, value in names.items():
        setattr(scheduler, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(scheduler, name, value)


def with_client_id(settings: Settings, client_id: str, database: Path | None = None) -> Settings:
    mqtt_settings = dataclasses.replace(settings.mqtt, client_id=client_id)
    db = settings.database if database is None else DatabaseSettings(database)
    return dataclasses.replace(settings, mqtt=mqtt_settings, database=db)


# -- latency: time stamps -----------------------------------------------------------------------------


@dataclass(slots=True)
class Trial:
    hex_icao: str
    needle: bytes  # how the aircraft looks in a response body
    starts_before: int
    ends_before: int
    response_at: float | None = None
    response_url: str = ""


@dataclass
class LatencyTrace:
    """Time stamps taken on the daemon's threads; read by the main thread between trials."""

    last_request_url: str = ""
    armed: Trial | None = None
    responses: list[tuple[float, str]] = field(default_factory=list)
    wakes: list[float] = field(default_factory=list)
    published: dict[str, float] = field(default_factory=dict)  # event_id -> publish() called
    event_mid: dict[str, int] = field(default_factory=dict)
    acked: dict[int, float] = field(default_factory=dict)  # mid -> PUBACK seen on paho's thread
    row_event: dict[int, str] = field(default_factory=dict)
    marked: dict[str, float] = field(default_factory=dict)  # event_id -> mark_sent returned
    received: dict[str, float] = field(default_factory=dict)  # event_id -> the subscriber got it
    events: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    publishers: list[MqttPublisher] = field(default_factory=list)

    def on_response(self, url: str, body: bytes, at: float) -> None:
        self.responses.append((at, url))
        trial = self.armed
        if trial is not None and trial.response_at is None and trial.needle in body:
            trial.response_at, trial.response_url = at, url

    def on_publish(self, payload: str, mid: int | None, at: float) -> None:
        doc = json.loads(payload)
        event_id = doc["event_id"]
        self.published[event_id] = at
        if mid is not None:
            self.event_mid[event_id] = mid
        self.events[(doc["hex"], doc["event"])].append(event_id)

    def nth_event(self, hex_icao: str, kind: str, n: int) -> str | None:
        ids = self.events.get((hex_icao, kind), [])
        return ids[n] if len(ids) > n else None

    def connected(self) -> bool:
        return bool(self.publishers) and self.publishers[0].is_connected()


def timing_classes(trace: LatencyTrace) -> dict[str, Any]:
    """Subclasses of what run_daemon builds that add time stamps and change nothing else."""

    class TimedFetcher(Fetcher):
        def __call__(self, req: FeedRequest) -> Response:
            response = super().__call__(req)
            trace.on_response(req.safe_url, response.body, perf_counter())
            return response

    class TimedRelay(AlertRelay):
        def wake(self) -> None:
            trace.wakes.append(perf_counter())
            super().wake()

    class TimedPublisher(MqttPublisher):
        def __init__(self, options: MqttOptions, on_ack: Callable[[], object] = lambda: None) -> None:
            super().__init__(options, on_ack)
            trace.publishers.append(self)

        def publish(self, topic: str, payload: str) -> int | None:
            at = perf_counter()
            mid = super().publish(topic, payload)
            trace.on_publish(payload, mid, at)
            return mid

        def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any) -> None:
            trace.acked.setdefault(mid, perf_counter())
            super()._on_publish(client, userdata, mid, reason, props)

    class TimedOutbox(_WriterOutbox):
        def pending_alerts(self, limit: int, exclude: Sequence[int]) -> list[tuple[int, str, str]]:
            rows = super().pending_alerts(limit, exclude)
            for row_id, _topic, payload in rows:
                trace.row_event[row_id] = json.loads(payload)["event_id"]
            return rows

        def mark_sent(self, ids: Sequence[int], at: datetime) -> None:
            super().mark_sent(ids, at)
            done = perf_counter()
            for row_id in ids:
                trace.marked[trace.row_event[row_id]] = done

    return {"Fetcher": TimedFetcher, "AlertRelay": TimedRelay, "MqttPublisher": TimedPublisher,
            "_WriterOutbox": TimedOutbox}  # fmt: skip


class Subscriber:
    """A paho v5 client subscribed with QoS 1 to every sortie alert; records when each event arrived."""

    def __init__(self, port: int, topic_filter: str, sink: dict[str, float]) -> None:
        self.port = port
        self.topic_filter = topic_filter
        self.sink = sink
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-alerts-subscriber", protocol=mqtt.MQTTv5
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def start(self) -> Subscriber:
        self.client.connect(HOST, self.port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(SUBSCRIBE_TIMEOUT_S):
            self.stop()
            raise RuntimeError(f"subscriber did not subscribe within {SUBSCRIBE_TIMEOUT_S:g} s")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        if not reason.is_failure:
            client.subscribe(self.topic_filter, qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        at = perf_counter()
        with contextlib.suppress(ValueError, KeyError, TypeError):
            self.sink.setdefault(json.loads(msg.payload)["event_id"], at)


# -- latency: trials ----------------------------------------------------------------------------------


SEGMENTS: tuple[tuple[str, str], ...] = (
    ("poll_rest", "poll: rest of the poll (2nd request, /v2/reg/)"),
    ("store", "ingest: parse+select+writer commit -> wake"),
    ("dispatch", "relay dispatch: wake -> publish()"),
    ("broker", "broker: publish() -> PUBACK (paho thread)"),
    ("pickup", "relay pickup: PUBACK -> row marked sent"),
    ("total", "TOTAL: response -> start alert marked sent"),
    ("relay", "  of which relay wake-up/polling (dispatch+pickup)"),
    ("subscriber", "external: response -> subscriber received it"),
)


SEGMENT_NAMES = {
    "poll_rest": "the rest of the poll (its 2nd request)", "store": "parse+select+writer commit",
    "dispatch": "the relay's dispatch", "broker": "publish -> PUBACK", "pickup": "the relay's pickup",
}  # fmt: skip
PATH_NAMES = {"floor": "floor", "one_shot": "(a) one-shot", "daemon": "(b) daemon"}


def latency_sample(trace: LatencyTrace, trial: Trial, event_id: str) -> dict[str, float]:
    """One trial's segments in ms (see SEGMENTS)."""
    t0 = trial.response_at
    assert t0 is not None
    poll_done = next((at for at, url in list(trace.responses) if at >= t0 and url == trace.last_request_url), t0)
    published = trace.published[event_id]
    wake = next((w for w in list(trace.wakes) if w >= t0), published)
    acked = trace.acked[trace.event_mid[event_id]]
    marked = trace.marked[event_id]
    s = {
        "poll_rest": poll_done - t0, "store": wake - poll_done, "dispatch": published - wake,
        "broker": acked - published, "pickup": marked - acked, "total": marked - t0,
        "subscriber": trace.received[event_id] - t0,
    }  # fmt: skip
    s["relay"] = s["dispatch"] + s["pickup"]
    return {k: v * MS_PER_S for k, v in s.items()}


def run_trial(trace: LatencyTrace, server: FeedServer, entry: WatchEntry) -> tuple[dict[str, float], str]:
    """A new sortie: appear airborne, wait for the start alert (marked and received), land, wait for the end.
    Returns the start alert's segments and the request whose response first held the aircraft."""
    hex_icao = entry.hexes[0]
    trial = Trial(
        hex_icao, f'"hex":"{hex_icao}"'.encode(),
        len(trace.events.get((hex_icao, "start"), [])), len(trace.events.get((hex_icao, "end"), [])),
    )  # fmt: skip
    trace.armed = trial
    server.show([feed_record(entry, on_ground=False)])

    def start_done() -> bool:
        event_id = trace.nth_event(hex_icao, "start", trial.starts_before)
        return event_id is not None and event_id in trace.marked and event_id in trace.received

    wait_until(start_done, TRIAL_TIMEOUT_S, f"the start alert of {hex_icao}", LATENCY_POLL_S)
    trace.armed = None
    start_id = trace.nth_event(hex_icao, "start", trial.starts_before)
    assert start_id is not None
    server.show([feed_record(entry, on_ground=True)])

    def end_done() -> bool:
        event_id = trace.nth_event(hex_icao, "end", trial.ends_before)
        return event_id is not None and event_id in trace.marked

    wait_until(end_done, TRIAL_TIMEOUT_S, f"the end alert of {hex_icao}", LATENCY_POLL_S)
    server.show([])
    return latency_sample(trace, trial, start_id), trial.response_url


@dataclass(slots=True)
class LatencyRun:
    samples: list[dict[str, float]]
    requests_per_poll: int
    first_route: dict[str, int]  # which request's response first held the aircraft


def run_latency(scratch: Path, broker: Mosquitto, trials: int, interval_s: float) -> LatencyRun:
    server = FeedServer()
    server.start()
    try:
        config = write_config(scratch / "latency.toml", scratch / "latency.db", broker.port, server.url, interval_s)
        app = build_app(load(config, environ={}))
        trace = LatencyTrace(last_request_url=app.feeds[0].requests()[-1].safe_url)
        subscriber = Subscriber(broker.port, f"{TOPIC_PREFIX}/sortie/#", trace.received).start()
        try:
            results = run_daemon_trials(app, trace, server, trials)
        finally:
            subscriber.stop()
    finally:
        server.close()
    routes: dict[str, int] = defaultdict(int)
    for _, url in results:
        routes[url.split("/v2/", 1)[-1].split("/", 1)[0]] += 1
    return LatencyRun([sample for sample, _ in results], len(app.feeds[0].requests()), dict(routes))


def run_daemon_trials(
    app: App, trace: LatencyTrace, server: FeedServer, trials: int
) -> list[tuple[dict[str, float], str]]:
    """run_daemon in a thread, with the timing subclasses, for WARMUP_TRIALS + trials sorties."""
    stop = threading.Event()
    entries = app.watchlist.entries
    with patched_scheduler(**timing_classes(trace)):
        daemon = threading.Thread(target=run_daemon, args=(app, stop), name="bench-daemon", daemon=True)
        daemon.start()
        try:
            wait_until(lambda: trace.connected() and len(trace.responses) > 0, DAEMON_START_TIMEOUT_S,
                       "the daemon to connect and poll", LATENCY_POLL_S)  # fmt: skip
            results = [run_trial(trace, server, entries[i % len(entries)]) for i in range(WARMUP_TRIALS + trials)]
        finally:
            stop.set()
            daemon.join(timeout=30)
    return results[WARMUP_TRIALS:]


# -- drain: alerts and the outbox port ----------------------------------------------------------------


def synthetic_alerts(count: int, entries: Sequence[WatchEntry]) -> list[Alert]:
    """Start and end alerts of synthetic sorties, as the Tracker builds them; every event_id distinct."""
    alerts: list[Alert] = []
    for i in range(math.ceil(count / 2)):
        entry = entries[i % len(entries)]
        start = SYNTHETIC_START + timedelta(minutes=i)
        first = Fix(start, 37.12345, 124.81234, 31000, "TORA23", "adsb.lol")
        last = Fix(start + timedelta(seconds=SYNTHETIC_SORTIE_S), 38.2345, 125.1234, 28000, "TORA24", "adsb.lol")
        hex_icao = entry.hexes[0]
        sortie = Sortie(
            sortie_id=f"{hex_icao}-{start:%Y%m%dT%H%M%SZ}", key=entry.key, hex_icao=hex_icao,
            registration=entry.registration, type_icao=entry.icao_type, first=first, last=last,
            last_seen_at=last.at, callsigns=("TORA23", "TORA24"), max_alt_baro_ft=33000, sightings=812,
            previous_sortie_end=start - timedelta(days=2), end_reason="left_area",
        )  # fmt: skip
        alerts += [alert(TOPIC_PREFIX, AREA_NAME, SortieEvent(kind, sortie)) for kind in ("start", "end")]
    return alerts[:count]


@dataclass(slots=True)
class PortCall:
    start: float
    end: float
    rows: int
    limit: int = 0  # for a read: the room the relay asked for (max_inflight minus what is in flight)


@dataclass
class PortTrace:
    """Every outbox read and mark the relay made, timed; the publisher's calls and PUBACKs, per alert."""

    reads: list[PortCall] = field(default_factory=list)
    marks: list[PortCall] = field(default_factory=list)
    marked: int = 0
    sql_s: float = 0.0  # (b) only: inside Store.pending_alerts/mark_sent, on the writer thread
    publish_s: float = 0.0  # inside MqttPublisher.publish(), on the relay's thread
    row_of_payload: dict[str, int] = field(default_factory=dict)  # the rows of the latest read
    published: dict[int, tuple[int, float]] = field(default_factory=dict)  # mid -> (row id, publish() called)
    acked: dict[int, float] = field(default_factory=dict)  # mid -> PUBACK seen on paho's thread
    marked_at: dict[int, float] = field(default_factory=dict)  # row id -> mark_sent returned

    def read(self, fn: Callable[[], list[tuple[int, str, str]]], limit: int) -> list[tuple[int, str, str]]:
        t = perf_counter()
        rows = fn()
        self.reads.append(PortCall(t, perf_counter(), len(rows), limit))
        self.row_of_payload = {payload: row_id for row_id, _topic, payload in rows}
        return rows

    def mark(self, fn: Callable[[], None], ids: Sequence[int]) -> None:
        t = perf_counter()
        fn()
        done = perf_counter()
        self.marks.append(PortCall(t, done, len(ids)))
        self.marked_at.update(dict.fromkeys(ids, done))
        self.marked += len(ids)

    def alert_legs_ms(self) -> tuple[list[float], list[float]]:
        """Per alert: publish() -> PUBACK, and PUBACK -> its row marked sent (ms)."""
        broker: list[float] = []
        pickup: list[float] = []
        for mid, (row_id, published) in self.published.items():
            acked, marked = self.acked.get(mid), self.marked_at.get(row_id)
            if acked is not None and marked is not None:
                broker.append((acked - published) * MS_PER_S)
                pickup.append((marked - acked) * MS_PER_S)
        return broker, pickup


class TracedStore(Store):
    """The one-shot path's port (a Store), timed."""

    def __init__(self, path: Path, trace: PortTrace) -> None:
        super().__init__(path)
        self.trace = trace

    def pending_alerts(self, limit: int, exclude: Iterable[int] = ()) -> list[tuple[int, str, str]]:
        return self.trace.read(lambda: super(TracedStore, self).pending_alerts(limit, exclude), limit)

    def mark_sent(self, ids: Sequence[int], at: datetime) -> None:
        self.trace.mark(lambda: super(TracedStore, self).mark_sent(ids, at), ids)


def traced_writer_outbox(trace: PortTrace) -> type[_WriterOutbox]:
    """The daemon path's port (_WriterOutbox: every call a writer round trip), timed."""

    class TracedWriterOutbox(_WriterOutbox):
        def pending_alerts(self, limit: int, exclude: Sequence[int]) -> list[tuple[int, str, str]]:
            return trace.read(lambda: super(TracedWriterOutbox, self).pending_alerts(limit, exclude), limit)

        def mark_sent(self, ids: Sequence[int], at: datetime) -> None:
            trace.mark(lambda: super(TracedWriterOutbox, self).mark_sent(ids, at), ids)

    return TracedWriterOutbox


def writer_store(trace: PortTrace) -> type[Store]:
    """The Store the daemon's Writer opens, with the SQLite time of the two outbox calls summed."""

    class WriterStore(Store):
        def pending_alerts(self, limit: int, exclude: Iterable[int] = ()) -> list[tuple[int, str, str]]:
            t = perf_counter()
            rows = super().pending_alerts(limit, exclude)
            trace.sql_s += perf_counter() - t
            return rows

        def mark_sent(self, ids: Sequence[int], at: datetime) -> None:
            t = perf_counter()
            super().mark_sent(ids, at)
            trace.sql_s += perf_counter() - t

    return WriterStore


def traced_publisher(trace: PortTrace) -> type[MqttPublisher]:
    """The MqttPublisher that deliver_pending and Alerts build, with publish() and PUBACKs timed."""

    class TracedPublisher(MqttPublisher):
        def publish(self, topic: str, payload: str) -> int | None:
            t = perf_counter()
            mid = super().publish(topic, payload)
            trace.publish_s += perf_counter() - t
            row_id = trace.row_of_payload.get(payload)
            if mid is not None and row_id is not None:
                trace.published[mid] = (row_id, t)
            return mid

        def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any) -> None:
            trace.acked[mid] = perf_counter()
            super()._on_publish(client, userdata, mid, reason, props)

    return TracedPublisher


@dataclass(slots=True)
class Drain:
    """One drain of the queued alerts."""

    path: str
    label: str
    alerts: int
    acked: int  # marked sent (ingest paths) or PUBACKs (floor)
    drain_s: float  # publisher/client start -> last row marked sent (last PUBACK for the floor)
    first_publish_s: float  # start -> first outbox read with rows (first publish() for the floor)
    unsent_after: int | None = None  # outbox_counts() once done
    call_s: float | None = None  # the whole deliver_pending() call, connect to publisher.stop()
    trace: PortTrace | None = None

    @property
    def rate(self) -> float:
        return self.acked / self.drain_s if self.drain_s > 0 else 0.0


def queue_alerts(store: Store, alerts: Sequence[Alert]) -> None:
    store.save_tracking(Tracking(alerts=alerts))
    unsent, sent = store.outbox_counts()
    if (unsent, sent) != (len(alerts), 0):
        raise RuntimeError(f"outbox holds {unsent} unsent / {sent} sent, not {len(alerts)} / 0")


def first_read_s(trace: PortTrace, t_start: float) -> float:
    return next((r.start - t_start for r in trace.reads if r.rows), math.nan)


def last_mark_s(trace: PortTrace, t_start: float) -> float:
    return trace.marks[-1].end - t_start if trace.marks else math.nan


def drain_floor(port: int, alerts: Sequence[Alert]) -> tuple[Drain, float]:
    """A bare paho v5 client, max_inflight 100: publish every payload QoS 1, wait for every PUBACK.
    Returns the drain (from connect) and the publish-phase rate (first publish -> last PUBACK, as §1.4)."""
    connected, done = threading.Event(), threading.Event()
    acked = [0]

    def on_publish(client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any) -> None:
        acked[0] += 1
        if acked[0] == len(alerts):
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-alerts-floor", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(FLOOR_MAX_INFLIGHT)
    client.on_connect = lambda c, u, f, reason, p: connected.set()
    client.on_publish = on_publish
    t_start = perf_counter()
    client.connect(HOST, port, keepalive=30)
    client.loop_start()
    try:
        if not connected.wait(CONNECT_TIMEOUT_S):
            raise RuntimeError("the floor client did not connect")
        t_first = perf_counter()
        for a in alerts:
            client.publish(a.topic, a.payload, qos=1)
        done.wait(DRAIN_TIMEOUT_S)
        t_end = perf_counter()
    finally:
        client.disconnect()
        client.loop_stop()
    label = f"floor: bare paho v5, QoS 1, inflight {FLOOR_MAX_INFLIGHT}"
    drain = Drain("floor", label, len(alerts), acked[0], t_end - t_start, t_first - t_start)
    return drain, acked[0] / (t_end - t_first)


def drain_one_shot(scratch: Path, settings: Settings, alerts: Sequence[Alert]) -> Drain:
    """(a) deliver_pending on this thread, a Store as the port."""
    trace = PortTrace()
    store = TracedStore(scratch / "oneshot.db", trace)
    try:
        queue_alerts(store, alerts)
        with patched_scheduler(MqttPublisher=traced_publisher(trace)):
            t_start = perf_counter()
            deliver_pending(with_client_id(settings, "bench-alerts-oneshot"), store, utc_now, DRAIN_TIMEOUT_S)
            call_s = perf_counter() - t_start
        unsent, sent = store.outbox_counts()
    finally:
        store.close()
    label = f"(a) one-shot deliver_pending (pump, wait <= {_ACK_WAIT_S:g} s for a PUBACK)"
    return Drain("one_shot", label, len(alerts), sent, last_mark_s(trace, t_start), first_read_s(trace, t_start),
                 unsent, call_s, trace)  # fmt: skip


def drain_daemon(scratch: Path, app: App, alerts: Sequence[Alert]) -> Drain:
    """(b) Writer + Alerts (AlertRelay woken by PUBACKs + _WriterOutbox), as run_daemon builds them."""
    settings = with_client_id(app.settings, "bench-alerts-daemon", scratch / "daemon.db")
    store = SqliteStore(settings.database.path)
    try:
        queue_alerts(store, alerts)
    finally:
        store.close()
    trace = PortTrace()
    timed = {"Store": writer_store(trace), "MqttPublisher": traced_publisher(trace),
             "_WriterOutbox": traced_writer_outbox(trace)}  # fmt: skip
    with patched_scheduler(**timed):
        writer = Writer(dataclasses.replace(app, settings=settings), utc_now)
        writer.open()
    try:
        with patched_scheduler(**timed):
            t_start = perf_counter()
            service = Alerts(settings, writer, utc_now)
            service.start()
            publisher, relay = service.publisher, service.relay
        if publisher is None or relay is None:
            raise RuntimeError("mqtt is not enabled in the drain config")
        try:
            wait_until(lambda: trace.marked >= len(alerts), DRAIN_TIMEOUT_S, "the daemon drain", DRAIN_POLL_S)
        finally:
            relay.stop(_FLUSH_ON_STOP_S)
            publisher.stop()
        unsent, sent = writer.submit(lambda s: s.outbox_counts()).result(DRAIN_TIMEOUT_S)
    finally:
        writer.close()
    label = "(b) daemon: Writer + AlertRelay (woken by PUBACKs) + _WriterOutbox"
    return Drain("daemon", label, len(alerts), sent, last_mark_s(trace, t_start), first_read_s(trace, t_start),
                 unsent, None, trace)  # fmt: skip


def port_baseline(database: Path, alerts: Sequence[Alert], rows_per_pump: float) -> dict[str, float]:
    """The outbox calls of a drain with nothing else running: a Store on this thread, the relay's pattern
    (mark the `rows_per_pump` oldest in flight, read as many more skipping the rest in flight), no MQTT."""
    batch = max(1, min(RELAY_MAX_INFLIGHT, round(rows_per_pump)))
    trace = PortTrace()
    store = TracedStore(database, trace)
    try:
        queue_alerts(store, alerts)
        inflight = [row_id for row_id, _, _ in store.pending_alerts(RELAY_MAX_INFLIGHT, ())]
        while inflight:
            done, inflight = inflight[:batch], inflight[batch:]
            store.mark_sent(done, utc_now())
            inflight += [row_id for row_id, _, _ in store.pending_alerts(len(done), inflight)]
    finally:
        store.close()
    return {"rows": batch, "read_ms_mean": mean_ms(trace.reads[1:]) or 0.0, "mark_ms_mean": mean_ms(trace.marks) or 0.0}


# -- report -------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_stats(samples: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {
        key: {name: round(percentile([s[key] for s in samples], q), 2) for name, q in (("p50", 50), ("p95", 95))}
        | {"max": round(max(s[key] for s in samples), 2)}
        for key, _ in SEGMENTS
    }


def finite(value: float, digits: int) -> float | None:
    """Rounded, or None for NaN (JSON has no NaN)."""
    return None if math.isnan(value) else round(value, digits)


def mean_ms(calls: Sequence[PortCall]) -> float | None:
    return round(sum(c.end - c.start for c in calls) / len(calls) * MS_PER_S, 3) if calls else None


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def leg_stats(values_ms: Sequence[float]) -> dict[str, float | None]:
    if not values_ms:
        return {"p50": None, "p95": None, "mean": None}
    return {"p50": round(percentile(values_ms, 50), 2), "p95": round(percentile(values_ms, 95), 2),
            "mean": round(mean(values_ms), 2)}  # fmt: skip


def pump_stats(d: Drain) -> dict[str, Any]:
    """How the relay pumped (reads that returned rows, their size and spacing, the port's cost), where the
    relay thread's time went, and how long each alert spent before its PUBACK and before it was marked sent."""
    trace = d.trace
    if trace is None:
        return {}
    reads = [r for r in trace.reads if r.rows]
    gaps = [b.start - a.start for a, b in itertools.pairwise(reads)]
    port_s = sum(c.end - c.start for c in (*trace.reads, *trace.marks))
    busy_s = port_s + trace.publish_s
    broker, pickup = trace.alert_legs_ms()
    read_ms, mark_ms = mean_ms(reads), mean_ms(trace.marks)
    # A window slot, from publish() until it is filled again: the PUBACK, the relay's pickup (which ends
    # with mark_sent), then the read that refills it. With the window full, rate = max_inflight / that.
    cycle_ms = mean(broker) + mean(pickup) + (read_ms or 0.0) if broker else math.nan
    sql = d.path == "daemon"
    return {
        "pumps": len(reads),
        "rows_per_pump": round(sum(r.rows for r in reads) / len(reads), 1) if reads else None,
        "pump_gap_ms_median": round(percentile(gaps, 50) * MS_PER_S, 2) if gaps else None,
        "read_ms_mean": read_ms,
        "mark_ms_mean": mark_ms,
        "port_calls": len(trace.reads) + len(trace.marks),
        "inflight_at_read_mean": round(mean([RELAY_MAX_INFLIGHT - r.limit for r in reads]), 1) if reads else None,
        "thread_s": {
            "startup": finite(d.first_publish_s, 3),
            "outbox_calls": round(port_s, 3),
            "outbox_sqlite": round(trace.sql_s, 3) if sql else None,
            "outbox_handoff": round(port_s - trace.sql_s, 3) if sql else None,
            "publish": round(trace.publish_s, 3),
            "rest": finite(d.drain_s - d.first_publish_s - busy_s, 3),
        },
        "publish_us_mean": round(trace.publish_s / len(trace.published) * 1e6, 1) if trace.published else None,
        "publish_to_puback_ms": leg_stats(broker),
        "puback_to_marked_ms": leg_stats(pickup),
        "slot_cycle_ms": finite(cycle_ms, 3),
        "window_bound_per_s": None if math.isnan(cycle_ms) else round(RELAY_MAX_INFLIGHT / cycle_ms * MS_PER_S),
        "steady_per_s": round(d.acked / (d.drain_s - d.first_publish_s)) if d.drain_s > d.first_publish_s else None,
    }


def drain_dict(d: Drain, floor_rate: float) -> dict[str, Any]:
    return {
        "label": d.label, "alerts": d.alerts, "acked": d.acked, "unsent_after": d.unsent_after,
        "drain_s": finite(d.drain_s, 3), "first_publish_ms": finite(d.first_publish_s * MS_PER_S, 1),
        "alerts_per_s": round(d.rate), "ratio_to_floor": round(d.rate / floor_rate, 3),
        "call_s": None if d.call_s is None else round(d.call_s, 3),
    } | pump_stats(d)  # fmt: skip


def versions(mosquitto: str) -> dict[str, Any]:
    return {
        "python": platform.python_version(), "paho_mqtt": paho.mqtt.__version__, "mosquitto": mosquitto,
        "sqlite3": sqlite3.sqlite_version, "cpu_count": os.cpu_count(),
        "machine": f"{platform.system()} {platform.machine()}", "gil_switch_interval_s": sys.getswitchinterval(),
    }  # fmt: skip


def pumping(d: dict[str, Any]) -> str:
    return f"{d.get('pumps')} pumps of {d.get('rows_per_pump')} rows, {d.get('pump_gap_ms_median')} ms apart (median)"


def share(part: float | None, whole: float) -> str:
    return "-" if part is None or whole <= 0 else f"{part:.3f} s ({part / whole:.0%})"


def thread_split(d: dict[str, Any]) -> str:
    """Where the relay thread's time went during one drain."""
    t, whole = d["thread_s"], d["drain_s"]
    calls = f"outbox calls {share(t['outbox_calls'], whole)}"
    if t["outbox_sqlite"] is not None:
        calls += f" [SQLite in the writer {t['outbox_sqlite']:.3f} s, hand-off to/from it {t['outbox_handoff']:.3f} s]"
    return (f"startup {share(t['startup'], whole)}, {calls}, publish() {share(t['publish'], whole)}, "
            f"waiting/rest {share(t['rest'], whole)} of {whole:.3f} s")  # fmt: skip


def path_why(name: str, d: dict[str, Any], floor: dict[str, Any], idle_broker_ms: float) -> list[str]:
    """One ingest path: its rate against the floor, and which bound the numbers point at."""
    rate, ratio = d["alerts_per_s"], d["ratio_to_floor"]
    broker, pickup = d["publish_to_puback_ms"], d["puback_to_marked_ms"]
    read_ms, mark_ms = d.get("read_ms_mean") or 0.0, d.get("mark_ms_mean") or 0.0
    lines = [
        f"{name} drains at {rate:,}/s = {ratio:.2f}x the floor ({floor['alerts_per_s']:,}/s), {d['steady_per_s']:,}/s "
        f"after connecting; {pumping(d)}; {d.get('inflight_at_read_mean')} of {RELAY_MAX_INFLIGHT} still in flight "
        f"when a pump reads (mean). Relay thread: {thread_split(d)}."
    ]
    if ratio >= 0.9:
        lines.append(f"{name} is at the floor: nothing in ingest limits it measurably.")
    if broker["mean"] is None or d["window_bound_per_s"] is None:
        return lines
    relay_wait = max(pickup["mean"] - mark_ms, 0.0)
    relay_side = relay_wait + mark_ms + read_ms
    cycle, window = d["slot_cycle_ms"], d["window_bound_per_s"]
    fit = window / d["steady_per_s"] if d["steady_per_s"] else math.nan
    bigger = "the relay's side" if relay_side > broker["mean"] else "the PUBACK"
    lines.append(
        f"{name}: a window slot turns over in {cycle:.2f} ms (means): publish() -> PUBACK {broker['mean']:.2f} ms "
        f"(p50 {broker['p50']} ms under this load, {idle_broker_ms:.2f} ms for a lone alert in the latency run), "
        f"then the relay's side {relay_side:.2f} ms = {relay_wait:.2f} ms until it starts marking (waking, "
        f"finishing its current pump) + {mark_ms:.2f} ms mark_sent + {read_ms:.2f} ms for the read that refills "
        f"the slot. {RELAY_MAX_INFLIGHT} slots / {cycle:.2f} ms = {window:,}/s, {fit:.2f}x the measured steady rate; "
        f"{bigger} is the larger part ({max(relay_side, broker['mean']) / cycle:.0%})."
    )
    if ratio >= 0.9:
        return lines
    t = d["thread_s"]
    busy = t["outbox_calls"] + t["publish"]
    steady_s = d["drain_s"] - (t["startup"] or 0.0)
    if steady_s > 0 and busy / steady_s >= 0.7:
        lines.append(
            f"{name}'s relay thread is busy {busy / steady_s:.0%} of the drain after connecting (outbox calls "
            f"{t['outbox_calls']:.3f} s + publish() {t['publish']:.3f} s = {busy / d['acked'] * 1e6:.0f} us per "
            f"alert): alone that caps it at {d['acked'] / busy:,.0f}/s however fast PUBACKs come back."
        )
    base = d.get("uncontended")
    if base is not None:
        measured = read_ms + mark_ms
        alone = base["read_ms_mean"] + base["mark_ms_mean"]
        threads = "the relay and writer threads share" if t["outbox_sqlite"] is not None else "the relay thread shares"
        if alone > 0 and measured >= 2 * alone:
            lines.append(
                f"{name}'s outbox calls cost {read_ms:.3f} + {mark_ms:.3f} ms (read + mark) during the drain, but "
                f"{base['read_ms_mean']:.3f} + {base['mark_ms_mean']:.3f} ms for the same SQL and batch size "
                f"({base['rows']} rows) with no other thread running: {measured / alone:.1f}x, so most of it is "
                f"not the SQL but waiting to run again: {threads} the GIL with paho's thread (switch "
                f"interval {sys.getswitchinterval() * MS_PER_S:g} ms) and {os.cpu_count()} CPUs with mosquitto."
            )
        else:
            lines.append(
                f"{name}'s outbox calls cost {read_ms:.3f} + {mark_ms:.3f} ms (read + mark) during the drain, and "
                f"{base['read_ms_mean']:.3f} + {base['mark_ms_mean']:.3f} ms for the same SQL and batch size "
                f"({base['rows']} rows) with no other thread running: the SQL itself is what they cost."
            )
    return lines


def diagnosis(drains: dict[str, dict[str, Any]], latency: dict[str, dict[str, float]], nodelay: bool) -> list[str]:
    """Why the ingest paths drain slower than the floor, and where the latency goes, from this run's numbers."""
    a, b, floor = drains["one_shot"], drains["daemon"], drains["floor"]
    idle_broker = latency["broker"]["p50"]
    lines = [*path_why("(b) daemon", b, floor, idle_broker), *path_why("(a) one-shot", a, floor, idle_broker)]
    slow = [n for n, d in (("(a)", a), ("(b)", b)) if (d["publish_to_puback_ms"]["p95"] or 0.0) >= NAGLE_HINT_MS]
    if slow:
        hint = "" if nodelay else " Rerun with --tcp-nodelay (mosquitto `set_tcp_nodelay true`) to compare."
        lines.append(
            f"{' and '.join(slow)}: publish() -> PUBACK p95 is at least {NAGLE_HINT_MS:g} ms, near Linux's delayed TCP "
            f"ACK (~40 ms) that mosquitto's Nagle (set_tcp_nodelay {str(nodelay).lower()}) waits for.{hint}"
        )
    p50 = {key: latency[key]["p50"] for key, _ in SEGMENTS}
    parts = {key: p50[key] for key in ("poll_rest", "store", "dispatch", "broker", "pickup")}
    top = max(parts, key=lambda key: parts[key])
    period_ms = _RELAY_PERIOD_S * MS_PER_S
    pickup = (
        f"the relay pickup (PUBACK -> marked sent) is {p50['pickup']:.2f} ms p50, {latency['pickup']['p95']:.2f} ms "
        f"p95 against _RELAY_PERIOD_S {period_ms:g} ms"
    )
    if latency["pickup"]["p95"] < period_ms / 10:
        pickup += ": the PUBACK wakes the relay, it does not wait for the period"
    elif p50["pickup"] >= period_ms / 2:
        pickup += ": the relay waits for the period, the PUBACK did not wake it"
    lines.append(
        f"Latency: {p50['total']:.1f} ms p50 from the response to the alert marked sent; the largest part is "
        f"{SEGMENT_NAMES[top]} ({parts[top]:.2f} ms p50, {parts[top] / p50['total']:.0%}); {pickup}. "
        f"Relay dispatch + pickup {p50['relay']:.2f} ms, publish -> PUBACK {p50['broker']:.2f} ms, and the "
        f"subscriber has the alert after {p50['subscriber']:.1f} ms (p50)."
    )
    return lines


@dataclass(slots=True)
class Summary:
    command: str
    config: dict[str, Any]
    versions: dict[str, Any]
    latency: dict[str, Any]
    drain: dict[str, Any]
    diagnosis: list[str]
    elapsed_s: float = 0.0


PUMP_COLUMNS: tuple[tuple[str, int, str], ...] = (
    ("pumps", 6, "d"), ("rows_per_pump", 9, ".1f"), ("pump_gap_ms_median", 7, ".1f"),
    ("read_ms_mean", 8, ".3f"), ("mark_ms_mean", 8, ".3f"),
)  # fmt: skip


def cell(value: Any, width: int, spec: str) -> str:
    return f"{value:{width}{spec}}" if value is not None else f"{'-':>{width}}"


def print_text(s: Summary) -> None:
    v, c, lat, dr = s.versions, s.config, s.latency, s.drain
    print(f"Python {v['python']} | paho-mqtt {v['paho_mqtt']} | mosquitto {v['mosquitto']} | "
          f"SQLite {v['sqlite3']} | {v['cpu_count']} CPUs | {v['machine']} | "
          f"GIL switch interval {v['gil_switch_interval_s'] * MS_PER_S:g} ms")  # fmt: skip
    print(f"command: {s.command}")
    nodelay = "set_tcp_nodelay true" if c["broker_tcp_nodelay"] else "default set_tcp_nodelay false"
    print(f"broker: private mosquitto on 127.0.0.1:{c['broker_port']} ({nodelay}); ingest max_inflight relay "
          f"{c['relay_max_inflight']} / paho {c['paho_max_inflight']}; the daemon's relay pumps on every PUBACK, "
          f"on new alerts and every {c['relay_period_s']} s; the one-shot path waits <= {c['ack_wait_s']} s "
          f"for a PUBACK")  # fmt: skip
    print()
    print(f"1. Latency, feed response received -> start alert marked sent (run_daemon in-process, "
          f"{c['trials']} trials + {c['warmup_trials']} warm-up, feed polled every {c['interval_s']} s "
          f"with {lat['requests_per_poll']} requests; first response holding the aircraft: "
          f"{lat['first_response_route']})")  # fmt: skip
    print(f"{'segment':52} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}")
    for key, label in SEGMENTS:
        st = lat["segments_ms"][key]
        if key in ("total", "subscriber"):
            print("-" * 82)
        print(f"{label:52} {st['p50']:9.2f} {st['p95']:9.2f} {st['max']:9.2f}")
    print()
    print(f"2. Drain of {dr['alerts']:,} queued alerts ({dr['payload_bytes_mean']:.0f} B mean payload), "
          f"from publisher start to the last row marked sent (floor: to the last PUBACK)")  # fmt: skip
    header = (f"{'path':66} {'s':>6} {'alerts/s':>9} {'/floor':>7} {'pumps':>6} {'rows/pump':>9} "
              f"{'gap ms':>7} {'read ms':>8} {'mark ms':>8}")  # fmt: skip
    print(header)
    for d in dr["paths"].values():
        pumps = " ".join(cell(d.get(k), w, spec) for k, w, spec in PUMP_COLUMNS)
        rate = f"{d['alerts_per_s']:9,} {d['ratio_to_floor']:7.3f}"
        print(f"{d['label']:66} {cell(d['drain_s'], 6, '.2f')} {rate} {pumps}")
    print(f"floor publish phase only (first publish -> last PUBACK, as §1.4): {dr['floor_publish_phase_per_s']:,}/s; "
          f"unsent after each ingest path: " + ", ".join(
              f"{k} {d['unsent_after']}" for k, d in dr["paths"].items() if d["unsent_after"] is not None))  # fmt: skip
    one_shot_call = dr["paths"]["one_shot"]["call_s"]
    print(f"(a)'s whole deliver_pending() call, with connect and publisher.stop(): {one_shot_call:.2f} s")
    print()
    print(f"{'per alert, ms':40} {'p50':>7} {'p95':>7} {'mean':>7}")
    for key, d in dr["paths"].items():
        if key == "floor":
            continue
        for leg, what in (("publish_to_puback_ms", "publish() -> PUBACK"), ("puback_to_marked_ms", "PUBACK -> marked")):
            cells = " ".join(cell(d[leg][q], 7, ".2f") for q in ("p50", "p95", "mean"))
            print(f"{PATH_NAMES[key] + ' ' + what:40} {cells}")
    for key, d in dr["paths"].items():
        base = d.get("uncontended")
        if base is not None:
            print(f"{PATH_NAMES[key]} outbox calls with no other thread running (same SQL, {base['rows']} rows a "
                  f"pump): read {base['read_ms_mean']:.3f} ms, mark {base['mark_ms_mean']:.3f} ms "
                  f"(during the drain: {d['read_ms_mean']:.3f} / {d['mark_ms_mean']:.3f} ms)")  # fmt: skip
    print()
    print("Why:")
    for line in s.diagnosis:
        print(f"- {line}")
    print()
    print(f"total run time {s.elapsed_s:.1f} s")


# -- main ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=DEFAULT_TRIALS, help="latency trials (default %(default)s)")
    parser.add_argument("--alerts", type=int, default=DEFAULT_ALERTS, help="queued alerts (default %(default)s)")
    parser.add_argument("--interval-s", type=float, default=DEFAULT_INTERVAL_S, help="feed poll interval, seconds")
    parser.add_argument(
        "--tcp-nodelay", action="store_true", help="diagnostic: start mosquitto with `set_tcp_nodelay true`"
    )
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.alerts < 1 or args.interval_s <= 0:
        parser.error("need --trials >= 1, --alerts >= 1 and --interval-s > 0")
    return args


def run_drains(scratch: Path, broker: Mosquitto, app: App, count: int) -> dict[str, Any]:
    alerts = synthetic_alerts(count, app.watchlist.entries)
    floor, floor_publish_rate = drain_floor(broker.port, alerts)
    drains = [
        floor,
        drain_one_shot(scratch, app.settings, alerts),
        drain_daemon(scratch, app, alerts),
    ]
    paths = {d.path: drain_dict(d, floor.rate) for d in drains}
    for key in ("one_shot", "daemon"):
        rows = paths[key].get("rows_per_pump")
        if rows is not None:
            paths[key]["uncontended"] = port_baseline(scratch / f"baseline-{key}.db", alerts, rows)
    return {
        "alerts": count,
        "payload_bytes_mean": round(sum(len(a.payload) for a in alerts) / len(alerts), 1),
        "floor_publish_phase_per_s": round(floor_publish_rate),
        "paths": paths,
    }


def run(args: argparse.Namespace, scratch: Path) -> Summary:
    t_start = perf_counter()
    broker = Mosquitto(scratch, args.tcp_nodelay)
    broker.start()
    try:
        latency_run = run_latency(scratch, broker, args.trials, args.interval_s)
        config = write_config(scratch / "drain.toml", scratch / "unused.db", broker.port, "http://127.0.0.1:9", 10.0)
        drain = run_drains(scratch, broker, build_app(load(config, environ={})), args.alerts)
    finally:
        broker.stop()
    segments = latency_stats(latency_run.samples)
    latency = {
        "trials": args.trials, "warmup_trials": WARMUP_TRIALS, "requests_per_poll": latency_run.requests_per_poll,
        "first_response_route": latency_run.first_route, "segments_ms": segments,
    }  # fmt: skip
    config_facts = {
        "trials": args.trials, "warmup_trials": WARMUP_TRIALS, "alerts": args.alerts, "interval_s": args.interval_s,
        "broker_port": broker.port, "relay_period_s": _RELAY_PERIOD_S, "ack_wait_s": _ACK_WAIT_S,
        "relay_max_inflight": RELAY_MAX_INFLIGHT, "paho_max_inflight": PAHO_MAX_INFLIGHT,
        "floor_max_inflight": FLOOR_MAX_INFLIGHT, "broker_tcp_nodelay": args.tcp_nodelay,
    }  # fmt: skip
    summary = Summary(
        command=shlex.join([sys.executable, *sys.argv]),
        config=config_facts,
        versions=versions(mosquitto_version(broker.exe)),
        latency=latency,
        drain=drain,
        diagnosis=diagnosis(drain["paths"], segments, args.tcp_nodelay),
    )
    summary.elapsed_s = round(perf_counter() - t_start, 1)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench_alerts_"))
    try:
        summary = run(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        print(json.dumps(dataclasses.asdict(summary)))
    else:
        print_text(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
