"""SBS-1 / BaseStation (TCP 30003): a pure line parser, a pure per-hex assembler, and the stream feed.

    socket ──► split_lines() ──► parse_line() ──► Assembler.add() ──► Assembler.take(now) ──► ParseResult
    (SbsFeed's reader thread)      (pure)            (pure, under SbsFeed's lock, taken at each tick)

The format (feeds.md §6.5): comma-separated `MSG` lines of 22 fields, CRLF-terminated, an empty line as
heartbeat. One line carries only what one Mode S message held (MSG,1 the callsign, MSG,3 the airborne
position, MSG,4 the velocity, MSG,5 the altitude, MSG,6 the squawk), so the Assembler keeps the latest value
of each per hex and turns every new position into one Observation carrying them.

Timestamps carry no zone: readsb writes UTC, dump1090-fa the receiver's local time, hence the `timezone`
setting ("UTC", an IANA name such as "Asia/Seoul", or "local" for this machine's zone; a container's local
zone is usually UTC, so name the receiver's zone). A clock that runs hours away from ours is logged once
per connection.

The reader thread owns the socket: it reconnects with capped exponential backoff (as pyModeS'
NetworkSource), logs one WARNING per outage and an INFO on reconnection, and skips malformed lines, counting
them and logging each kind (the field at fault) once. A silent stream counts as dead after
max(read_timeout_s, 75 s): readsb and dump1090-fa send a heartbeat every 60 s when no aircraft is heard.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import re
import selectors
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ingest.config import FeedSettings
from ingest.errors import ConfigError, FeedUnavailable
from ingest.feeds.base import FeedContext
from ingest.feeds.readsb import clean_callsign
from ingest.models import Observation, ParseResult, Rejected
from ingest.timeutil import from_epoch

log = logging.getLogger(__name__)

SOURCE_TYPE = "other"  # what readsb calls positions from an SBS input (feeds.md §6.3)
FIELDS = 22  # fields of a MSG line; extra trailing fields are ignored
RAW_CUT = 200  # characters of a rejected line that are kept and logged
FORGET_AFTER_S = 300.0  # a hex silent this long (by the stream's own clock) is forgotten
MAX_HEXES = 20_000  # hexes remembered at once; the least recently heard goes first
MAX_PENDING_OBSERVATIONS = 50_000  # positions kept between two takes; the oldest go first
MAX_PENDING_REJECTED = 10_000  # rejected lines kept between two takes
KINEMATIC_MAX_AGE_S = 60.0  # altitude, speed and track older than this are not copied into a position
MAX_LINE_BYTES = 4_096  # a real line is under 200 bytes: more without a newline is not SBS
HEARTBEAT_SILENCE_S = 75.0  # readsb / dump1090-fa heartbeat every 60 s, plus slack
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 60.0
CLOCK_SKEW_WARN_S = 1_800.0  # message times this far from our clock: the timezone setting is wrong
_POLL_S = 0.25  # how often a blocked connect or recv looks at the stop flag
_RECV_BYTES = 65_536

_HEX = re.compile(r"[0-9a-f]{6}")
_SQUAWK = re.compile(r"[0-7]{4}")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")  # float() would also take "nan", "1_0", "infinity"
_DATE = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})")
_TIME = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?")
_OTHER_RECORDS = frozenset({"SEL", "ID", "AIR", "STA", "CLK"})  # BaseStation records with no aircraft state
_ALT_RANGE_FT = (-2_000, 100_000)
_GS_MAX_KT = 4_000.0
_GROUND = {"-1": True, "1": True, "0": False, "": None}

Wanted = Callable[[str, bool, str | None], bool]  # as Watchlist.wants: (hex, non_icao, registration)
Clock = Callable[[], datetime]


class SbsLineError(ValueError):
    """One SBS line is unusable because of one field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class SbsMessage:
    """What one MSG line says about one aircraft; None where the line leaves the field empty."""

    transmission_type: int  # 1-8 (feeds.md §6.5)
    hex_icao: str  # 6 lower-case hex digits
    non_icao: bool  # a '~' prefix (not sent by readsb or dump1090-fa, which suppress such addresses)
    generated_at: datetime  # UTC: fields 7 and 8 read in the feed's timezone
    callsign: str | None
    alt_baro_ft: int | None
    alt_geom_ft: int | None  # an altitude with an `H` suffix (readsb --gnss)
    gs_kt: float | None
    track_deg: float | None
    lat_deg: float | None
    lon_deg: float | None
    squawk: str | None
    on_ground: bool | None  # field 22 (-1 ground, 0 airborne); True for every MSG,2 (surface position)

    @property
    def has_position(self) -> bool:
        return self.lat_deg is not None and self.lon_deg is not None


def resolve_timezone(name: str) -> tzinfo | None:
    """The zone of a `timezone` setting: UTC, an IANA zone, or None for "local" (this machine's zone).
    ValueError when the name is unknown."""
    text = name.strip()
    if text.lower() in {"utc", "z", "gmt", "etc/utc"}:
        return UTC
    if text.lower() == "local":
        return None
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}: use UTC, an IANA name such as Asia/Seoul, or local") from exc


# -- pure parsing --------------------------------------------------------------------------------


def parse_line(line: str, tz: tzinfo | None) -> SbsMessage | None:
    """One SBS line; None for a heartbeat or a record without aircraft state (SEL, ID, AIR, STA, CLK).
    `tz` is the zone the receiver writes times in (None: this machine's local zone).
    SbsLineError, naming the field, for anything else that is not a well-formed MSG line."""
    line = line.strip()
    if not line:
        return None
    fields = line.split(",")
    kind = fields[0].strip().upper()
    if kind in _OTHER_RECORDS:
        return None
    if kind != "MSG":
        raise SbsLineError("message_type", f"not an SBS record: {fields[0][:20]!r}")
    if len(fields) < FIELDS:
        raise SbsLineError("field_count", f"MSG line with {len(fields)} fields, expected {FIELDS}")
    f = [v.strip() for v in fields[:FIELDS]]
    kind_no = f[1]
    if kind_no not in {"1", "2", "3", "4", "5", "6", "7", "8"}:
        raise SbsLineError("transmission_type", f"transmission type {kind_no[:20]!r} is not 1-8")
    transmission_type = int(kind_no)
    hex_icao, non_icao = _hex(f[4])
    if f[6] or f[7]:
        generated_at = _timestamp(f[6], f[7], tz, "date_generated", "time_generated")
    else:  # fall back on the logged time when a source leaves the generated one empty
        generated_at = _timestamp(f[8], f[9], tz, "date_logged", "time_logged")
    alt_baro_ft, alt_geom_ft = _altitude(f[11])
    lat, lon = _position(f[14], f[15])
    if f[21] not in _GROUND:
        raise SbsLineError("is_on_ground", f"is_on_ground {f[21][:20]!r} is not -1, 0 or empty")
    on_ground = _GROUND[f[21]]
    if transmission_type == 2:  # surface position: on the ground, no baro altitude (feeds.md §6.5)
        on_ground, alt_baro_ft = True, None
    return SbsMessage(
        transmission_type=transmission_type,
        hex_icao=hex_icao,
        non_icao=non_icao,
        generated_at=generated_at,
        callsign=clean_callsign(f[10]) if f[10] else None,
        alt_baro_ft=alt_baro_ft,
        alt_geom_ft=alt_geom_ft,
        gs_kt=_bounded(f[12], "ground_speed", 0.0, _GS_MAX_KT),
        track_deg=_bounded(f[13], "track", 0.0, 360.0),
        lat_deg=lat,
        lon_deg=lon,
        squawk=_squawk(f[17]),
        on_ground=on_ground,
    )


def _hex(value: str) -> tuple[str, bool]:
    text = value.lower()
    non_icao = text.startswith("~")
    text = text[1:] if non_icao else text
    if not _HEX.fullmatch(text):
        raise SbsLineError("hex", f"hex {value[:20]!r} is not 6 hex digits")
    return text, non_icao


def _timestamp(date: str, clock: str, tz: tzinfo | None, date_field: str, time_field: str) -> datetime:
    d = _DATE.fullmatch(date)
    if not d:
        raise SbsLineError(date_field, f"{date_field} {date[:20]!r} is not YYYY/MM/DD")
    t = _TIME.fullmatch(clock)
    if not t:
        raise SbsLineError(time_field, f"{time_field} {clock[:20]!r} is not HH:MM:SS.mmm")
    year, month, day = (int(x) for x in d.groups())
    hour, minute, second = (int(x) for x in t.groups()[:3])
    micro = int((t.group(4) or "0").ljust(6, "0"))
    try:
        if tz is not None:
            return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz).astimezone(UTC)
        datetime(year, month, day, hour, minute, second, tzinfo=UTC)  # range check: mktime normalises 02/30
        local_s = time.mktime((year, month, day, hour, minute, second, 0, 0, -1))
        return from_epoch(local_s + micro / 1e6)
    except (ValueError, OverflowError) as exc:
        raise SbsLineError(date_field, f"{date_field} {date} {clock} is not a real time: {exc}") from None


def _number(value: str, field: str) -> float | None:
    if not value:
        return None
    if not _NUMBER.fullmatch(value):
        raise SbsLineError(field, f"{field} {value[:20]!r} is not a number")
    return float(value)


def _bounded(value: str, field: str, low: float, high: float) -> float | None:
    number = _number(value, field)
    if number is not None and not low <= number <= high:
        raise SbsLineError(field, f"{field} {number!r} out of range")
    return number


def _altitude(value: str) -> tuple[int | None, int | None]:
    """(baro, geometric) feet: an `H` suffix marks a geometric altitude (readsb --gnss)."""
    geometric = value[-1:] in {"H", "h"}
    number = _bounded(value[:-1] if geometric else value, "altitude", *_ALT_RANGE_FT)
    if number is None:
        if geometric:
            raise SbsLineError("altitude", f"altitude {value[:20]!r} is not a number")
        return None, None
    return (None, round(number)) if geometric else (round(number), None)


def _position(lat_text: str, lon_text: str) -> tuple[float | None, float | None]:
    lat = _bounded(lat_text, "lat", -90.0, 90.0)
    lon = _bounded(lon_text, "lon", -180.0, 180.0)
    if (lat is None) != (lon is None):
        raise SbsLineError("lat" if lat is None else "lon", "lat without lon or lon without lat")
    return lat, lon


def _squawk(value: str) -> str | None:
    if not value:
        return None
    if not _SQUAWK.fullmatch(value):
        raise SbsLineError("squawk", f"squawk {value[:20]!r} is not 4 octal digits")
    return value


def rejected_line(exc: SbsLineError, line: str) -> Rejected:
    """The Rejected record of a line parse_line refused."""
    return Rejected(str(exc), line.strip()[:RAW_CUT], exc.field)


def split_lines(buffer: bytes) -> tuple[list[str], bytes]:
    """(complete lines without their CR/LF, the unterminated rest): a line split across two reads comes out
    once, whole, when its end arrives."""
    *lines, rest = buffer.split(b"\n")
    return [line.rstrip(b"\r").decode("ascii", "replace") for line in lines], rest


# -- pure assembly -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Track:
    """The latest of each value heard from one hex; kinematic values with the time they were sent."""

    non_icao: bool
    last_seen: datetime
    callsign: str | None = None
    squawk: str | None = None
    alt_baro_ft: int | None = None
    alt_baro_at: datetime | None = None
    alt_geom_ft: int | None = None
    alt_geom_at: datetime | None = None
    gs_kt: float | None = None
    track_deg: float | None = None
    velocity_at: datetime | None = None
    on_ground: bool = False
    messages: int = 0


class Assembler:
    """Merges SBS messages per hex and turns every new position into one Observation.

    Pure: time comes from the messages themselves (a hex is forgotten `forget_after_s` after its last
    message by the stream's clock) and from `now` given to take(). With `wanted`, positions of other hexes
    are counted but not built (a receiver hears everything; the watchlist keeps a few).
    """

    def __init__(
        self,
        feed: str,
        *,
        wanted: Wanted | None = None,
        forget_after_s: float = FORGET_AFTER_S,
        max_hexes: int = MAX_HEXES,
        max_pending: int = MAX_PENDING_OBSERVATIONS,
        max_rejected: int = MAX_PENDING_REJECTED,
    ) -> None:
        self.feed = feed
        self._wanted = wanted
        self._forget = timedelta(seconds=forget_after_s)
        self._kinematic_max_age = timedelta(seconds=KINEMATIC_MAX_AGE_S)
        self._max_hexes = max_hexes
        self._tracks: OrderedDict[str, _Track] = OrderedDict()  # least recently heard first
        self._stream_clock: datetime | None = None  # the newest message time seen
        self._pending: deque[Observation] = deque(maxlen=max_pending)
        self._rejected: deque[Rejected] = deque(maxlen=max_rejected)
        self._heard: set[str] = set()  # hexes heard since the last take
        self._positioned: set[str] = set()  # ... of which sent a position
        self.dropped_observations = 0  # positions lost because take() came too late (since start)
        self.dropped_rejections = 0

    def __len__(self) -> int:
        """Hexes remembered."""
        return len(self._tracks)

    def add(self, msg: SbsMessage) -> None:
        """Merge one message into its hex's state; a position becomes a pending Observation."""
        track = self._track_for(msg)
        track.messages += 1
        if msg.callsign is not None:
            track.callsign = msg.callsign
        if msg.squawk is not None:
            track.squawk = msg.squawk
        if msg.alt_baro_ft is not None:
            track.alt_baro_ft, track.alt_baro_at = msg.alt_baro_ft, msg.generated_at
        if msg.alt_geom_ft is not None:
            track.alt_geom_ft, track.alt_geom_at = msg.alt_geom_ft, msg.generated_at
        if msg.gs_kt is not None or msg.track_deg is not None:
            track.gs_kt, track.track_deg, track.velocity_at = msg.gs_kt, msg.track_deg, msg.generated_at
        if msg.on_ground is not None:
            track.on_ground = msg.on_ground
        self._heard.add(msg.hex_icao)
        if msg.lat_deg is None or msg.lon_deg is None:
            return
        self._positioned.add(msg.hex_icao)
        if self._wanted is not None and not self._wanted(msg.hex_icao, msg.non_icao, None):
            return
        if len(self._pending) == self._pending.maxlen:
            self.dropped_observations += 1
        self._pending.append(self._observation(msg, track, msg.lat_deg, msg.lon_deg))

    def reject(self, rejected: Rejected) -> None:
        if len(self._rejected) == self._rejected.maxlen:
            self.dropped_rejections += 1
        self._rejected.append(rejected)

    def take(self, now: datetime) -> ParseResult:
        """The positions assembled and the lines rejected since the last take; `age_s` is counted to `now`.
        `aircraft` counts the hexes heard since then, `without_position` those that sent no position."""
        observations = tuple(
            replace(obs, age_s=max(0.0, (now - obs.position_at).total_seconds())) for obs in self._pending
        )
        result = ParseResult(
            observations=observations,
            rejected=tuple(self._rejected),
            aircraft=len(self._heard),
            without_position=len(self._heard - self._positioned),
            feed_now=now,
        )
        self._pending.clear()
        self._rejected.clear()
        self._heard.clear()
        self._positioned.clear()
        return result

    def _track_for(self, msg: SbsMessage) -> _Track:
        at = msg.generated_at
        if self._stream_clock is None or at > self._stream_clock:
            self._stream_clock = at
        track = self._tracks.pop(msg.hex_icao, None)
        if track is None or at - track.last_seen > self._forget:
            track = _Track(non_icao=msg.non_icao, last_seen=at)
        track.last_seen = max(track.last_seen, at)
        self._tracks[msg.hex_icao] = track  # now the most recently heard
        self._expire()
        return track

    def _expire(self) -> None:
        """Forget hexes silent for `forget_after_s`, and the least recently heard beyond `max_hexes`."""
        assert self._stream_clock is not None
        horizon = self._stream_clock - self._forget
        while self._tracks:
            hex_icao, oldest = next(iter(self._tracks.items()))
            if oldest.last_seen >= horizon and len(self._tracks) <= self._max_hexes:
                break
            del self._tracks[hex_icao]

    def _observation(self, msg: SbsMessage, track: _Track, lat: float, lon: float) -> Observation:
        at = msg.generated_at

        def fresh(since: datetime | None) -> bool:
            return since is not None and abs(at - since) <= self._kinematic_max_age

        on_ground = track.on_ground
        return Observation(
            hex_icao=msg.hex_icao,
            non_icao=msg.non_icao,
            position_at=at,
            lat_deg=lat,
            lon_deg=lon,
            alt_baro_ft=track.alt_baro_ft if fresh(track.alt_baro_at) and not on_ground else None,
            on_ground=on_ground,
            alt_geom_ft=track.alt_geom_ft if fresh(track.alt_geom_at) and not on_ground else None,
            gs_kt=track.gs_kt if fresh(track.velocity_at) else None,
            track_deg=track.track_deg if fresh(track.velocity_at) else None,
            squawk=track.squawk,
            callsign=track.callsign,
            registration=None,
            type_icao=None,
            source_type=SOURCE_TYPE,
            military=False,
            messages=track.messages,
            feed=self.feed,
        )


def parse_sbs(
    body: bytes, *, feed: str, tz: tzinfo | None, received_at: datetime, wanted: Wanted | None = None
) -> ParseResult:
    """A recorded SBS capture read in one go (replay, tests): every line through one Assembler."""
    assembler = Assembler(feed, wanted=wanted, max_pending=max(MAX_PENDING_OBSERVATIONS, body.count(b"\n") + 1))
    lines, rest = split_lines(body)
    for line in [*lines, rest.decode("ascii", "replace")]:
        try:
            msg = parse_line(line, tz)
        except SbsLineError as exc:
            assembler.reject(rejected_line(exc, line))
            continue
        if msg is not None:
            assembler.add(msg)
    return assembler.take(received_at)


# -- the stream ----------------------------------------------------------------------------------


class _Stopped(Exception):
    """stop() was called while connecting."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return str(exc) or "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class SbsFeed:
    """A receiver's BaseStation port, read by a daemon thread; `take(now)` at each tick.

    `start()` once, `take(now)` every `interval_s`, `stop()` at shutdown. A StreamFeed (base.py), not a
    polled FeedSource: it has no requests. ConfigError at construction for an empty host or unknown zone.
    """

    def __init__(
        self,
        settings: FeedSettings,
        context: FeedContext,
        *,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        clock: Clock = _utcnow,
    ) -> None:
        self.name = settings.name
        self.settings = settings
        key = f"feeds[{settings.index}]"
        if not settings.host.strip():
            raise ConfigError(f"{key}.host", "config", "an sbs feed needs the receiver's host")
        try:
            self._tz = resolve_timezone(settings.timezone)
        except ValueError as exc:
            raise ConfigError(f"{key}.timezone", "config", str(exc)) from None
        self._address = (settings.host.strip(), settings.port)
        self.url = f"tcp://{settings.host.strip()}:{settings.port}"
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._silence_s = max(settings.read_timeout_s, HEARTBEAT_SILENCE_S)
        self._clock = clock
        self._lock = threading.Lock()
        self._assembler = Assembler(self.name, wanted=context.watchlist.wants)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        # Under the lock: connection state as take() sees it.
        self._connected = False
        self._up_this_window = False  # connected at some moment since the last take
        self._down_reason = "not connected yet"
        # Reader thread only.
        self._logged_kinds: set[str] = set()
        self._warned_drops = False
        self.lines = 0  # lines read since start (heartbeats included), for stats
        self.rejected = 0  # of which rejected

    def parse(self, body: bytes, received_at: datetime) -> ParseResult:
        """A recorded capture of this receiver's SBS output (e.g. `nc host 30003 > file`), read with this
        feed's timezone."""
        return parse_sbs(body, feed=self.name, tz=self._tz, received_at=received_at)

    # StreamFeed ---------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._connected

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"sbs-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        with self._lock:
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv at once
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("feed %s: reader thread still running %.0f s after stop", self.name, timeout_s)
            self._thread = None

    def take(self, now: datetime) -> ParseResult:
        with self._lock:
            was_up = self._up_this_window or self._connected
            self._up_this_window = self._connected
            reason = self._down_reason
            result = self._assembler.take(now)
        if not was_up:
            raise FeedUnavailable(self.name, self.url, reason)
        return result

    # reader thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        backoff_s = self._backoff_initial_s
        outage_since: float | None = None
        attempts = 0
        ever_connected = False
        while not self._stop.is_set():
            try:
                sock = self._connect()
            except _Stopped:
                break
            except OSError as exc:
                attempts += 1
                reason = f"cannot connect: {_reason(exc)}"
                if outage_since is None:
                    outage_since = time.monotonic()
                    self._set_down(reason, warn=f"feed {self.name}: {self.url} unreachable: {reason}", wait=backoff_s)
                else:
                    self._set_down(reason, debug_attempts=attempts)
                if self._stop.wait(backoff_s):
                    break
                backoff_s = min(backoff_s * 2, self._backoff_max_s)
                continue
            if outage_since is not None:
                log.info(
                    "feed %s: reconnected to %s after %.0f s (%d failed attempts)",
                    self.name,
                    self.url,
                    time.monotonic() - outage_since,
                    attempts,
                )
            elif not ever_connected:
                log.info("feed %s: connected to %s", self.name, self.url)
            ever_connected = True
            outage_since, attempts = None, 0
            with self._lock:
                self._sock = sock
                self._connected = self._up_this_window = True
            try:
                reason, got_data = self._read(sock)
            except OSError as exc:
                reason, got_data = f"connection lost: {_reason(exc)}", True
            finally:
                with self._lock:
                    self._sock = None
                    self._connected = False
                sock.close()
            if self._stop.is_set():
                break
            if got_data:
                backoff_s = self._backoff_initial_s  # a working connection resets the backoff
            outage_since = time.monotonic()
            self._set_down(reason, warn=f"feed {self.name}: {self.url} {reason}", wait=backoff_s)
            if self._stop.wait(backoff_s):
                break
            backoff_s = min(backoff_s * 2, self._backoff_max_s)
        with self._lock:
            self._connected = False
            self._down_reason = "stopped"

    def _set_down(self, reason: str, warn: str | None = None, wait: float = 0.0, debug_attempts: int = 0) -> None:
        with self._lock:
            self._connected = False
            self._down_reason = reason
        if warn is not None:
            log.warning("%s; retrying in %.3g s, backing off to %.0f s", warn, wait, self._backoff_max_s)
        else:
            log.debug("feed %s: still down after %d attempts: %s", self.name, debug_attempts, reason)

    def _connect(self) -> socket.socket:
        """A connected socket, within connect_timeout_s; gives up at once when stop() is called."""
        deadline = time.monotonic() + self.settings.connect_timeout_s
        error: OSError = OSError("no address")
        for family, kind, proto, _, address in socket.getaddrinfo(*self._address, type=socket.SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                code = sock.connect_ex(address)
                if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                    raise OSError(code, os.strerror(code))
                with selectors.DefaultSelector() as selector:
                    selector.register(sock, selectors.EVENT_WRITE)
                    while not selector.select(min(_POLL_S, max(0.0, deadline - time.monotonic()))):
                        if self._stop.is_set():
                            raise _Stopped
                        if time.monotonic() >= deadline:
                            raise TimeoutError(f"connect timed out after {self.settings.connect_timeout_s:g} s")
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(code, os.strerror(code))
                sock.setblocking(True)
                sock.settimeout(_POLL_S)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                return sock
            except _Stopped:
                sock.close()
                raise
            except OSError as exc:
                sock.close()
                error = exc
        raise error

    def _read(self, sock: socket.socket) -> tuple[str, bool]:
        """Read until the peer closes, the stream falls silent or stop(); (why it ended, any line read)."""
        buffer = b""
        last_data = time.monotonic()
        got_data = False
        checked_clock = False
        while not self._stop.is_set():
            try:
                chunk = sock.recv(_RECV_BYTES)
            except TimeoutError:
                if time.monotonic() - last_data > self._silence_s:
                    return f"silent for {self._silence_s:.0f} s", got_data
                continue
            if not chunk:
                return "closed the connection", got_data
            last_data = time.monotonic()
            lines, buffer = split_lines(buffer + chunk)
            if len(buffer) > MAX_LINE_BYTES:
                lines.append(buffer.decode("ascii", "replace"))  # rejected below: not an SBS line
                buffer = b""
            if lines:
                got_data = True
                checked_clock = self._ingest(lines, checked_clock)
        return "stopped", got_data

    def _ingest(self, lines: list[str], checked_clock: bool) -> bool:
        """Parse outside the lock, merge under it; log each new kind of bad line once."""
        messages: list[SbsMessage] = []
        rejected: list[Rejected] = []
        for line in lines:
            try:
                msg = parse_line(line, self._tz)
            except SbsLineError as exc:
                rejected.append(rejected_line(exc, line))
                continue
            if msg is not None:
                messages.append(msg)
        with self._lock:
            for msg in messages:
                self._assembler.add(msg)
            for item in rejected:
                self._assembler.reject(item)
            dropped = self._assembler.dropped_observations
        self.lines += len(lines)
        self.rejected += len(rejected)
        for item in rejected:
            if item.field not in self._logged_kinds:
                self._logged_kinds.add(item.field)
                log.warning("feed %s: skipped a malformed SBS line (%s): %s", self.name, item.reason, item.raw)
        if dropped and not self._warned_drops:
            self._warned_drops = True
            log.warning("feed %s: positions dropped: take() is not called often enough", self.name)
        if messages and not checked_clock:
            self._check_clock(messages[-1].generated_at)
            return True
        return checked_clock

    def _check_clock(self, generated_at: datetime) -> None:
        skew_s = (generated_at - self._clock()).total_seconds()
        if math.fabs(skew_s) > CLOCK_SKEW_WARN_S:
            log.warning(
                "feed %s: message times run %+.1f h from this host's clock; is timezone = %r right? "
                "(readsb writes UTC, dump1090-fa the receiver's local time)",
                self.name,
                skew_s / 3600,
                self.settings.timezone,
            )
