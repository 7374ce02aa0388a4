"""A session: one world, one feed server, one daemon (restarted as scenarios need), one alert recorder on a
shared mosquitto, and a sequence of fault episodes run during flights. `Session.run()` returns the
evidence; checks.py judges it.

Timeline of a session:
  start the daemon, wait for its first poll; the three flyers take off
  for each episode: a clean spell (good answers; every third time ae01ce lands and takes off again,
      a sortie end and a start), then the episode, then wait for recovery (a good answer again)
  end: ae01d2 lands, ae01ce leaves the area, 71f00d vanishes; wait for the three ends and for every
      alert to arrive; SIGTERM the daemon
Episodes never overlap, and nothing the world does (a landing, a takeoff) happens while the daemon could
not see it, except a landing and takeoff during a broker outage (the feed is fine then, the point is
that their alerts wait in the outbox).
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from tests.conftest import SMALL_WATCHLIST, render_config
from tests.faultkit.daemon import Daemon, RssSampler, Run
from tests.faultkit.disk import HarnessError, fill, mount_tmpfs, truncate_wal, unmount_tmpfs
from tests.faultkit.server import FeedFault, FeedServer, feed_faults, gzip_bomb
from tests.faultkit.world import AIRBORNE, GOOD, GROUND, Flight, Served, World
from tests.mqtt_broker import Broker, Subscriber

A, B, C = "ae01d2", "ae01ce", "71f00d"  # lands at the end; cycles and leaves the area; vanishes
PROCESS_SCENARIOS = ("broker-outage", "disk-full", "kill-9", "daemon-stopped")


@dataclass(frozen=True, slots=True)
class Profile:
    """How long each thing lasts. `short` is the test suite's (tests/integration/test_faults.py), `long`
    the default of scripts/faults.py; both poll every second so that the backoff is the daemon's real one."""

    name: str
    interval_s: float = 1.0
    gap_s: float = 4.0  # [sorties] gap_s: a feed outage lasts longer than this
    check_interval_s: float = 0.25
    connect_timeout_s: float = 0.5
    read_timeout_s: float = 0.5
    max_body_mb: float = 5.0
    outage_s: float = 4.5  # a feed outage episode
    clean_s: float = 1.5  # good answers before each episode
    poison_answers: int = 2  # hex answers with a poisoned record per episode (a lying `now`: one answer)
    broker_outage_s: float = 15.0
    disk_full_s: float = 6.0
    kills: int = 6  # kill -9s in one kill-9 episode
    stop_margin_s: float = 2.0  # daemon-stopped: down for gap_s + this
    runs: int = 1  # episodes per scenario (scripts/faults.py), except as `runs_of` says
    runs_of: tuple[tuple[str, int], ...] = ()
    rss_limit_mb: float = 200.0
    drip_max_s: float = 12.0  # a dripping answer gives up after this long
    tmpfs_mb: int = 16
    recovery_timeout_s: float = 30.0
    broker_recovery_timeout_s: float = 90.0  # paho's reconnect backoff grows up to 60 s

    def runs_for(self, scenario: str) -> int:
        return dict(self.runs_of).get(scenario, self.runs)


SHORT = Profile("short")
LONG = Profile(
    "long", gap_s=5.0, outage_s=6.0, clean_s=3.0, broker_outage_s=120.0, disk_full_s=10.0, kills=20, runs=3,
    runs_of=(("broker-outage", 1), ("kill-9", 1)), drip_max_s=30.0, tmpfs_mb=32,
)  # fmt: skip
PROFILES = {p.name: p for p in (SHORT, LONG)}


@dataclass(slots=True)
class Window:
    """One fault within an episode: applied at `start`, removed at `cleared`, a good answer again at
    `recovered` (None: not within the timeout)."""

    start: float
    cleared: float
    recovered: float | None
    must_recover: bool = True  # False for a kill -9 that came again before the restarted daemon polled


@dataclass(slots=True)
class Episode:
    scenario: str
    run: int
    windows: list[Window] = field(default_factory=list)
    last_good_before: float | None = None
    kills: list[float] = field(default_factory=list)
    disk: tuple[float, float] | None = None  # (filled, freed)
    notes: list[str] = field(default_factory=list)
    exercised: str = ""  # why the episode did not test what it should ("" when it did)

    @property
    def id(self) -> str:
        return f"{self.scenario}#{self.run}"

    @property
    def start(self) -> float:
        return self.windows[0].start if self.windows else 0.0


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float
    topic: str
    event_id: str | None


class AlertRecorder(Subscriber):
    """The auditor: a persistent-session paho subscriber that records every message with its arrival time."""

    def __init__(self, port: int, prefix: str, client_id: str) -> None:
        super().__init__(port, f"{prefix}/#", client_id=client_id, session_expiry_s=3600)
        self.arrivals: list[Arrival] = []

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        event_id = None
        if "/sortie/" in msg.topic:
            with contextlib.suppress(ValueError, AttributeError):
                event_id = json.loads(msg.payload).get("event_id")
        with self._cond:
            self.arrivals.append(Arrival(time.time(), msg.topic, event_id))
        super()._on_message(client, userdata, msg)

    def event_ids(self) -> set[str]:
        with self._cond:
            return {a.event_id for a in self.arrivals if a.event_id}


@dataclass
class Evidence:
    """Everything a session observed, for checks.evaluate()."""

    name: str
    profile: Profile
    workdir: Path
    episodes: list[Episode]
    served: list[Served]
    flights: list[Flight]
    runs: list[Run]
    arrivals: list[Arrival]
    rss: list[tuple[float, int, int]]
    db: dict[str, Any]
    started_at: float
    ended_at: float
    errors: list[str] = field(default_factory=list)  # harness problems met on the way


def db_query(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows from the daemon's database through a short connection of our own ([] before it exists)."""
    if not path.exists():
        return []
    with closing(sqlite3.connect(path, timeout=5)) as conn:
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:  # not migrated yet, or busy past the timeout
            return []


def read_database(path: Path) -> dict[str, Any]:
    with closing(sqlite3.connect(path, timeout=10)) as conn:
        return {
            "integrity": [r[0] for r in conn.execute("PRAGMA integrity_check")],
            "sightings": conn.execute("SELECT hex, ts FROM sightings").fetchall(),
            "sorties": conn.execute(
                "SELECT sortie_id, hex, first_at, last_at, end_reason FROM sorties ORDER BY first_at"
            ).fetchall(),
            "outbox": conn.execute(
                "SELECT o.event_id, o.topic, o.created_at, d.delivered_at FROM outbox o "
                "JOIN deliveries d ON d.outbox_id = o.id AND d.channel = 'mqtt' ORDER BY o.id"
            ).fetchall(),
            "polls": conn.execute("SELECT count(*) FROM feed_polls").fetchone()[0],
        }


class Session:
    """Runs `scenarios` in order in one daemon's life (with the restarts they ask for)."""

    def __init__(
        self, name: str, profile: Profile, workdir: Path, broker: Broker, seed: int = 1, tmpfs: bool = False
    ) -> None:
        self.name = name
        self.profile = profile
        self.workdir = workdir
        self.broker = broker
        self.rng = random.Random(seed)
        self.tmpfs = tmpfs
        self.world = World()
        self.faults = feed_faults(profile.read_timeout_s, profile.max_body_mb, profile.drip_max_s)
        self.episodes: list[Episode] = []
        self.errors: list[str] = []
        self.db_dir = workdir / "disk" if tmpfs else workdir
        self.db = self.db_dir / "ingest.db"
        self.prefix = f"faults/{name}"
        self.mount_error = ""
        self._cycles = 0

    # -- the whole run ------------------------------------------------------------------------------

    def run(self, scenarios: list[str]) -> Evidence:
        unknown = [s for s in scenarios if s not in self.faults and s not in PROCESS_SCENARIOS]
        if unknown:
            raise HarnessError(f"unknown scenarios: {unknown}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        started_at = time.time()
        with contextlib.ExitStack() as stack:
            if self.tmpfs:
                try:
                    mount_tmpfs(self.db_dir, self.profile.tmpfs_mb)
                except HarnessError as exc:  # the disk-full episodes fail with this; the others still run
                    self.mount_error = str(exc)
                    self.tmpfs, self.db_dir, self.db = False, self.workdir, self.workdir / "ingest.db"
                else:
                    stack.callback(unmount_tmpfs, self.db_dir, self.db, self.workdir / "ingest-from-tmpfs.db")
            for fault in self.faults.values():
                if fault.kind == "gzip-bomb" and fault.name in scenarios:
                    gzip_bomb(fault.inflated_mb)  # compressing takes a while: not on the first bomb's request
            server = FeedServer(self.world).start()
            stack.callback(server.stop)
            self.server = server
            recorder = AlertRecorder(self.broker.plain_port, self.prefix, f"auditor-{self.name}")
            recorder.start(10)
            stack.callback(recorder.stop)
            self.recorder = recorder
            self.daemon = Daemon(self._write_config(server), self.workdir)
            stack.callback(self.daemon.close)
            sampler = RssSampler(lambda: self.daemon.pid)
            sampler.start()
            stack.callback(sampler.stop)
            self._start_daemon()
            self._takeoffs()
            counts: dict[str, int] = {}
            for scenario in scenarios:
                counts[scenario] = counts.get(scenario, 0) + 1
                episode = Episode(scenario, counts[scenario])
                self.episodes.append(episode)
                self._clean()
                self._execute(episode)
            self._landings()
            self.daemon.terminate()
            db = read_database(self.db)
            ended_at = time.time()
            with self.world.lock:
                served, flights = list(self.world.served), list(self.world.flights)
            return Evidence(
                self.name, self.profile, self.workdir, self.episodes, served, flights, list(self.daemon.runs),
                list(recorder.arrivals), list(sampler.samples), db, started_at, ended_at, self.errors,
            )  # fmt: skip
        raise AssertionError("unreachable")  # for mypy: the with block returns

    def _write_config(self, server: FeedServer) -> Path:
        p = self.profile
        feed = {
            "name": "loopback", "kind": "readsb-v2", "base_url": server.url, "interval_s": p.interval_s,
            "connect_timeout_s": p.connect_timeout_s, "read_timeout_s": p.read_timeout_s, "max_body_mb": p.max_body_mb,
        }  # fmt: skip
        sections: dict[str, dict[str, Any]] = {
            "database": {"path": str(self.db)},
            "watchlist": {"path": str(SMALL_WATCHLIST)},
            "replay": {"on_start": []},
            "daemon": {"log_level": "INFO"},
            "sorties": {"gap_s": p.gap_s, "check_interval_s": p.check_interval_s},
            "mqtt": {"enabled": True, "host": "127.0.0.1", "port": self.broker.plain_port, "topic_prefix": self.prefix,
                     "client_id": f"ingest-{self.name}", "keepalive_s": 5},
        }  # fmt: skip
        config = self.workdir / "ingest.toml"
        config.write_text(render_config(sections, [feed]))
        return config

    # -- steps --------------------------------------------------------------------------------------

    def _start_daemon(self) -> float:
        self.daemon.start()
        t = time.time()
        if self.world.wait_good(t, timeout_s=30) is None:
            raise HarnessError(f"the daemon never polled within 30 s; see {self.daemon.runs[-1].log}")
        return t

    def _alive(self) -> None:
        """A daemon that died by itself is recorded (checks.py reports it) and started again."""
        died = self.daemon.check_alive()
        if died is not None:
            self.errors.append(f"daemon {died.pid} exited by itself with {died.code}; restarted")
            self._start_daemon()

    def _takeoffs(self) -> None:
        for hex_icao in (A, B, C):
            self.world.takeoff(hex_icao)
            time.sleep(0.3)
        for hex_icao in (A, B, C):
            self._wait_carried(hex_icao, AIRBORNE, time.time() - 1.0, 2)

    def _wait_carried(self, hex_icao: str, phase: str, since: float, count: int) -> None:
        timeout = self.profile.recovery_timeout_s
        if self.world.wait_good(since, count, timeout, hex_icao, phase) is None:
            self.errors.append(f"{hex_icao} {phase}: {count} good answers did not come within {timeout} s")

    def _clean(self) -> None:
        """A clean spell before an episode; every third one, ae01ce lands and takes off again."""
        self._alive()
        self._cycles += 1
        if self._cycles % 3 == 0:
            self._cycle(B)
        t = time.time()
        time.sleep(self.profile.clean_s)
        if self.world.wait_good(t, 2, self.profile.recovery_timeout_s) is None:
            self.errors.append(f"no 2 good answers in the clean spell after {t:.1f}")

    def _cycle(self, hex_icao: str) -> None:
        """Land (until two answers carried it on the ground), take off again (until one carried it up)."""
        self.world.land(hex_icao)
        self._wait_carried(hex_icao, GROUND, time.time(), 2)
        self.world.takeoff(hex_icao)
        self._wait_carried(hex_icao, AIRBORNE, time.time(), 1)

    def _landings(self) -> None:
        p = self.profile
        self._alive()
        self.world.land(A)
        self.world.leave(B)
        self.world.vanish(C)
        t = time.time()
        self._wait_carried(A, GROUND, t, 2)
        self.world.vanish(A)
        time.sleep(max(0.0, t + p.gap_s + 1.5 - time.time()))  # outside reports for longer than the gap
        self.world.vanish(B)
        deadline = time.monotonic() + p.gap_s + 10
        while time.monotonic() < deadline and db_query(self.db, "SELECT 1 FROM sorties WHERE end_reason IS NULL"):
            time.sleep(0.25)
        self._wait_delivered(30.0)
        time.sleep(1.5)  # a repeated alert would come by now

    def _wait_delivered(self, timeout_s: float) -> bool:
        """Every outbox row acknowledged and received by the recorder."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rows = db_query(
                self.db,
                "SELECT o.event_id, d.delivered_at FROM outbox o JOIN deliveries d ON d.outbox_id = o.id "
                "AND d.channel = 'mqtt'",
            )
            if rows and all(sent for _, sent in rows) and {e for e, _ in rows} <= self.recorder.event_ids():
                return True
            time.sleep(0.25)
        return False

    def _last_good(self) -> float | None:
        goods = [s.at for s in self.world.answers() if s.kind == GOOD and s.delivered and "/hex/" in s.path]
        return goods[-1] if goods else None

    # -- episodes -----------------------------------------------------------------------------------

    def _execute(self, ep: Episode) -> None:
        ep.last_good_before = self._last_good()
        if ep.scenario in self.faults:
            self._feed_fault(ep, self.faults[ep.scenario])
        else:
            getattr(self, "_" + ep.scenario.replace("-", "_"))(ep)

    def _feed_fault(self, ep: Episode, fault: FeedFault) -> None:
        start = time.time()
        if fault.outage:
            self.server.set_fault(fault)
            time.sleep(self.profile.outage_s)
        else:
            # A lying `now` in one answer, a poisoned record in a few (as scripts/faults.py says).
            self.server.set_fault(fault, 1 if fault.poison.startswith("now-") else self.profile.poison_answers)
            deadline = time.monotonic() + self.profile.recovery_timeout_s
            while not self.server.poison_done() and time.monotonic() < deadline:
                time.sleep(0.1)
            if not self.server.poison_done():
                ep.exercised = "the poisoned answers were not all requested"
        self.server.set_fault(None)
        cleared = time.time()
        recovered = self.world.wait_good(cleared, timeout_s=self.profile.recovery_timeout_s)
        ep.windows.append(Window(start, cleared, recovered))
        if fault.outage and ep.last_good_before and recovered and recovered - ep.last_good_before <= self.profile.gap_s:
            ep.exercised = f"the feed was silent only {recovered - ep.last_good_before:.1f} s, not over gap_s"

    def _broker_outage(self, ep: Episode) -> None:
        start = time.time()
        self.broker.stop()
        time.sleep(1.0)
        self._cycle(B)  # a sortie ends and another starts while the broker is away
        time.sleep(max(0.0, start + self.profile.broker_outage_s - time.time()))
        self.broker.start()
        cleared = time.time()
        delivered = self._wait_delivered(self.profile.broker_recovery_timeout_s)
        ep.windows.append(Window(start, cleared, time.time() if delivered else None))
        made = db_query(self.db, "SELECT count(*) FROM outbox WHERE created_at >= ?", (_iso(start),))
        if not made or not made[0][0]:
            ep.exercised = "no alert was raised while the broker was down"

    def _disk_full(self, ep: Episode) -> None:
        if self.mount_error:
            ep.exercised = self.mount_error
            return
        if not truncate_wal(self.db):  # so that the daemon's next commit needs new blocks
            self.errors.append("could not truncate the WAL before filling the disk")
        start = time.time()
        filler = fill(self.db_dir)
        polls_full = _count(self.db, "SELECT count(*) FROM feed_polls")
        time.sleep(self.profile.disk_full_s)
        polls_later = _count(self.db, "SELECT count(*) FROM feed_polls")
        filler.unlink()
        cleared = time.time()
        ep.disk = (start, cleared)
        committed = polls_later - polls_full
        ep.notes.append(f"{committed} polls committed in {self.profile.disk_full_s:.0f} s of full disk")
        if committed > 1:
            ep.exercised = f"the full disk did not stop commits ({committed} polls were stored meanwhile)"
        ep.windows.append(Window(start, cleared, self._stored_again(cleared)))

    def _stored_again(self, since: float) -> float | None:
        """When a good answer served after `since` was first seen in the database."""
        deadline = time.monotonic() + self.profile.recovery_timeout_s
        while time.monotonic() < deadline:
            answers = [s for s in self.world.answers(since) if s.kind == GOOD and s.delivered and s.positions]
            for s in answers:
                p = s.positions[0]
                if p.inside and db_query(self.db, "SELECT 1 FROM sightings WHERE hex = ? AND ts = ?",
                                         (p.hex_icao, p.second)):  # fmt: skip
                    return s.at
            time.sleep(0.25)
        return None

    def _kill_9(self, ep: Episode) -> None:
        """kill -9 at random points (some in start-up), each followed at once by a restart."""
        for k in range(self.profile.kills):
            if k % 4 == 2:
                self._cycle(B)
            time.sleep(self.rng.uniform(0.05, 3.0))  # after the restart
            self._alive()
            start = time.time()
            self.daemon.kill9()
            ep.kills.append(start)
            self.daemon.start()
            ep.windows.append(Window(start, time.time(), None))
        last = ep.windows[-1]
        last.recovered = self.world.wait_good(last.cleared, timeout_s=self.profile.recovery_timeout_s)
        for w, after in zip(ep.windows, ep.windows[1:], strict=False):
            w.recovered = self.world.wait_good(w.cleared, timeout_s=0)
            if w.recovered is None or w.recovered > after.start:
                w.recovered, w.must_recover = None, False
        ep.notes.append(f"{sum(not w.must_recover for w in ep.windows)} of {len(ep.windows)} kills came before a poll")

    def _daemon_stopped(self, ep: Episode) -> None:
        start = time.time()
        run = self.daemon.terminate()
        if run.code != 0:
            ep.notes.append(f"SIGTERM: exit {run.code} after {run.stop_s:.1f} s ({run.how})")
        time.sleep(max(0.0, start + self.profile.gap_s + self.profile.stop_margin_s - time.time()))
        self.daemon.start()
        cleared = time.time()
        ep.windows.append(
            Window(start, cleared, self.world.wait_good(cleared, timeout_s=self.profile.recovery_timeout_s))
        )


def _count(db: Path, sql: str) -> int:
    rows = db_query(db, sql)
    return int(rows[0][0]) if rows else 0


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
