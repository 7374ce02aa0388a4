"""SBS-1 / BaseStation (TCP 30003): a pure line parser and a pure per-hex assembler (the stream that feeds
them is sbs_stream.py).

    socket ──► split_lines() ──► parse_line() ──► Assembler.add() ──► Assembler.take(now) ──► ParseResult
    (sbs_stream.SbsFeed's thread)  (pure)            (pure, under SbsFeed's lock, taken at each tick)

The format (feeds.md §6.5): comma-separated `MSG` lines of 22 fields, CRLF-terminated, an empty line as
heartbeat. One line carries only what one Mode S message held (MSG,1 the callsign, MSG,3 the airborne
position, MSG,4 the velocity, MSG,5 the altitude, MSG,6 the squawk), so the Assembler keeps the latest value
of each per hex and turns every new position into one Observation carrying them.

Timestamps carry no zone: readsb writes UTC, dump1090-fa the receiver's local time, hence the `timezone`
setting ("UTC", an IANA name such as "Asia/Seoul", or "local" for this machine's zone; a container's local
zone is usually UTC, so name the receiver's zone). A live line is at most seconds old, so ReceiverClock
lets the stream time a message by its receive time when the receiver's clock is more than
CLOCK_TOLERANCE_S off ours (a clock stepped back, never set, or read in the wrong zone): the Assembler
merges by message time, and a clock stepped back an hour would otherwise make every later message an
hour older than the state it merges into.

parse_line raises SbsLineError and nothing else, whatever the line holds; a date before 1970 is no
receiver's clock and is refused (it would also leave no room below it for the Assembler's horizon).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ingest.feeds.readsb import clean_callsign
from ingest.models import Observation, ParseResult, Rejected
from ingest.timeutil import from_epoch

SOURCE_TYPE = "other"  # what readsb calls positions from an SBS input (feeds.md §6.3)
FIELDS = 22  # fields of a MSG line; extra trailing fields are ignored
RAW_CUT = 200  # characters of a rejected line that are kept and logged
FORGET_AFTER_S = 300.0  # a hex silent this long (by the stream's own clock) is forgotten
MAX_HEXES = 20_000  # hexes remembered at once; the least recently heard goes first
MAX_PENDING_OBSERVATIONS = 50_000  # positions kept between two takes; the oldest go first
MAX_PENDING_REJECTED = 10_000  # rejected lines kept between two takes
KINEMATIC_MAX_AGE_S = 60.0  # altitude, speed and track older than this are not copied into a position
# A live line reaches us within seconds of its time stamp (readsb and dump1090-fa write it as they decode):
# 30 s covers network and buffering delay with room to spare, and is far below the smallest clock error
# that matters (the KINEMATIC_MAX_AGE_S merge window, the pipeline's freshest-position rule).
CLOCK_TOLERANCE_S = 30.0
EMERGENCY = "general"  # SBS has one emergency flag (field 20), not readsb's kinds of emergency

_HEX = re.compile(r"[0-9a-f]{6}")
_SQUAWK = re.compile(r"[0-7]{4}")
# ASCII digits only: float() and int() also take "nan", "1_0", "infinity" and other scripts' digits ("٣٧").
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
_DATE = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})", re.ASCII)
_TIME = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?", re.ASCII)
_MIN_YEAR = 1970
_OTHER_RECORDS = frozenset({"SEL", "ID", "AIR", "STA", "CLK"})  # BaseStation records with no aircraft state
_ALT_RANGE_FT = (-2_000, 100_000)
_GS_MAX_KT = 4_000.0
_GROUND = {"-1": True, "1": True, "0": False, "": None}
# Field 20 is -1 for squawk 7500/7600/7700 (feeds.md §6.5); readsb puts an MLAT position's EPU there, so
# anything but -1 and 0 is read as "not said", never as a malformed line.
_EMERGENCY_FLAG = {"-1": True, "0": False}

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
    emergency: bool | None = None  # field 20: -1 set, 0 clear; None when empty or another value

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
        emergency=_EMERGENCY_FLAG.get(f[19]),
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
    if year < _MIN_YEAR:
        raise SbsLineError(date_field, f"{date_field} {date} is before {_MIN_YEAR}: not a receiver's clock")
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
    """The Rejected record of a line parse_line refused; lone surrogates in `line` are escaped, so the raw
    cut can be logged and stored as UTF-8."""
    raw = line.strip()[:RAW_CUT].encode("utf-8", "backslashreplace").decode("utf-8")
    return Rejected(str(exc), raw[:RAW_CUT], exc.field)


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
    emergency: bool = False
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
        if msg.emergency is not None:
            track.emergency = msg.emergency
        self._heard.add(msg.hex_icao)
        if msg.lat_deg is None or msg.lon_deg is None:
            return
        self._positioned.add(msg.hex_icao)
        if self._wanted is not None and not self._wanted(msg.hex_icao, msg.non_icao, None):
            return
        if len(self._pending) == self._pending.maxlen:
            self.dropped_observations += 1
        self._pending.append(self._observation(msg, track, msg.lat_deg, msg.lon_deg))

    def use_wanted(self, wanted: Wanted | None) -> None:
        """Build positions of other aircraft from the next message on (a reloaded watchlist)."""
        self._wanted = wanted

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
            emergency=EMERGENCY if track.emergency else None,
        )


@dataclass(frozen=True, slots=True)
class ClockChange:
    """The receiver's clock left our tolerance (`off`) or came back into it; `offset_s` is receiver minus ours."""

    off: bool
    offset_s: float


class ReceiverClock:
    """Whose clock times a live message: the receiver's while it agrees with our receive time within
    `tolerance_s`, ours from the first message that is further off until one agrees within half the
    tolerance again (the margin keeps a clock near the limit from switching at every message)."""

    def __init__(self, tolerance_s: float = CLOCK_TOLERANCE_S) -> None:
        self.tolerance_s = tolerance_s
        self.off = False  # in an episode: messages are timed by their receive time

    def stamp(self, msg: SbsMessage, received_at: datetime) -> tuple[SbsMessage, ClockChange | None]:
        """The message as the Assembler should take it, and the change of episode it caused, if any."""
        offset_s = (msg.generated_at - received_at).total_seconds()
        change = None
        if not self.off and abs(offset_s) > self.tolerance_s:
            self.off, change = True, ClockChange(True, offset_s)
        elif self.off and abs(offset_s) <= self.tolerance_s / 2:
            self.off, change = False, ClockChange(False, offset_s)
        return (replace(msg, generated_at=received_at) if self.off else msg), change


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
