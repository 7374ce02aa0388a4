"""The readsb / ADSBx-v2 family: the parser shared by every such source, the query plan its adapters share
(ReadsbFamilyFeed: "hex", "area" and "mil" queries) and the `readsb-v2` adapter (adsbx.py and
airplaneslive.py hold the keyed ones).

Envelopes (feeds.md §0, §6.2, §6.4): `ac` (jv2: adsb.lol, airplanes.live, ADSBx) or `aircraft` (readsb
native, aircraft.json, adsb.fi radius queries); `now` in seconds or milliseconds. The body is decoded with
msgspec in two steps, the envelope with each aircraft kept raw, then every aircraft on its own, so one
bad record is rejected and counted while the rest of the poll is kept (reliability-and-performance.md
§6.1). msgspec refuses NaN/Infinity, bools where numbers belong and strings such as `"lat": "37.5"`.
A bare aircraft object (ADSBx answers a single hex so, feeds.md §4.2) is read as a list of one.

What may come out of parse_readsb: a ParseResult, whose `rejected` holds every record that could not be
used (the field at fault, the reason, a cut of the raw record), or one FeedFormatError for a body that is
not JSON or not the envelope, or whose `now` cannot be a time. Nothing else: records nested too deep to
decode, ages beyond a day and values out of range are rejected records. msgspec skips an unread value
recursively, so a record nested ~1,000 levels deep (fewer when called from deep in the stack) fails the
envelope decode with RecursionError; shallow_envelope() then splits the list without recursion, so that
record alone is rejected.

API keys travel in headers only, never in a URL or a safe_url (reliability-and-performance.md §7), and
SecretHeaders keeps them out of every repr.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import msgspec

from ingest.config import FeedSettings, feed_env_name
from ingest.errors import FeedFormatError
from ingest.feeds.base import FeedContext, FeedRequest
from ingest.feeds.hosts import AREA_ROUTE, HostLimit, host_limit
from ingest.geo import circle_cover
from ingest.models import Observation, ParseResult, Rejected
from ingest.timeutil import from_epoch

_NOW_MS_ABOVE = 1e11  # a `now` above this is milliseconds (feeds.md §0 rule 2)
_HEX = re.compile(r"[0-9a-f]{6}")
_SQUAWK = re.compile(r"[0-7]{4}")
_JUNK_CALLSIGNS = frozenset({"", "00000000", "????????"})
_ALT_RANGE_FT = (-2_000, 100_000)
_GS_MAX_KT = 4_000.0
_RAW_CUT = 200
# The oldest position accepted: readsb drops an aircraft from its output within minutes of its last
# message, so a `seen_pos` beyond a day is not an age (and 1e300 s is beyond what a timedelta holds).
MAX_AGE_S = 86_400.0
# readsb's `emergency` (feeds.md §6.3): none, general, lifeguard, minfuel, nordo, unlawful, downed, reserved.
# A short lower-case word not in that list is kept too (a newer readsb may add one); anything else is
# dropped to None, never a reason to reject the record.
EMERGENCY_VALUES = frozenset({"none", "general", "lifeguard", "minfuel", "nordo", "unlawful", "downed", "reserved"})
_EMERGENCY_WORD = re.compile(r"[a-z]{1,16}")


class _Envelope(msgspec.Struct):
    ac: list[msgspec.Raw] | None = None
    aircraft: list[msgspec.Raw] | None = None
    now: float | None = None
    hex: str | None = None  # present when the body is one bare aircraft object
    # The bundled demo marks every response `"_synthetic": "..."` (config/demo/README.md): made-up data.
    synthetic: Any = msgspec.field(default=None, name="_synthetic")


class _LastPosition(msgspec.Struct):
    lat: float
    lon: float
    seen_pos: float | None = None


class _Aircraft(msgspec.Struct):
    """The fields we use, with the types readsb emits; unknown keys are skipped unread."""

    hex: str
    type: str | None = None
    flight: str | None = None
    r: str | None = None
    t: str | None = None
    dbFlags: int = 0
    alt_baro: int | float | str | None = None
    altitude: int | float | str | None = None  # old dump1090 name of alt_baro
    alt_geom: float | None = None
    gs: float | None = None
    speed: float | None = None  # old dump1090 name of gs
    track: float | None = None
    squawk: str | None = None
    lat: float | None = None
    lon: float | None = None
    seen_pos: float | None = None
    seen: float | None = None
    messages: int | None = None
    mlat: list[str] | None = None
    tisb: list[str] | None = None
    lastPosition: _LastPosition | None = None
    emergency: Any = None  # any JSON value: only a short lower-case word is used (_emergency)


class _Head(msgspec.Struct):
    """What decides whether a record is wanted: read first, cheaply, from every record of an answer."""

    hex: str
    r: str | None = None
    dbFlags: int = 0


class _Heads(msgspec.Struct):
    """Every record's identity, in one decode of the whole answer (a C loop, not 10,000 Python calls)."""

    ac: list[_Head] | None = None
    aircraft: list[_Head] | None = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_HEAD = msgspec.json.Decoder(_Head)
_HEADS = msgspec.json.Decoder(_Heads)
_AIRCRAFT = msgspec.json.Decoder(_Aircraft)


class RecordError(ValueError):
    """One aircraft record is unusable because of one field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


_AT_PATH = re.compile(r"at `\$\.?([^`]*)`")


def _rejected(exc: Exception, raw: msgspec.Raw) -> Rejected:
    if isinstance(exc, RecordError):
        field = exc.field
    else:
        match = _AT_PATH.search(str(exc))
        field = match.group(1) if match else "record"
    return Rejected(str(exc), bytes(raw)[:_RAW_CUT].decode("utf-8", "replace"), field or "record")


# A string (group 1 is its closing quote, empty when the body ends inside it: each string is then read once,
# so the scan stays linear whatever the quotes and backslashes), or a bracket, comma or colon.
_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\(?:.|\Z)[^"\\]*)*("|\Z)|[\[\]{},:]', re.DOTALL)
_KEY = msgspec.json.Decoder(str)


def shallow_envelope(
    body: bytes, lists: frozenset[str], keep: frozenset[str]
) -> tuple[bytes, dict[str, list[msgspec.Raw]]] | None:
    """For a top-level object nested too deep for msgspec: a copy of `body` in which each element of the
    top-level arrays named in `lists`, and each other top-level value not named in `keep`, is `null`; and
    those elements raw, by array name (a repeated name keeps its last array, as msgspec keeps the last
    duplicate key). None when `body` is not one object.

    The scan is iterative, so depth costs nothing. It trusts the body's syntax: the caller decodes the copy
    with msgspec, which reports any error outside the elements, and each element on its own."""
    start = len(body) - len(body.lstrip())
    if body[start : start + 1] != b"{":
        return None
    pieces: list[bytes] = []
    copied = 0  # body[:copied] is in pieces
    arrays: dict[str, list[msgspec.Raw]] = {}
    depth = 0
    key: str | None = None  # the top-level key whose value is read
    value_at: int | None = None  # where that value starts
    elements: list[msgspec.Raw] | None = None  # the elements of the array being split
    element_at = 0
    as_is = keep | lists  # top-level values copied unchanged (the arrays in `lists` are split instead)

    def null_out(begin: int, end: int) -> None:
        nonlocal copied
        if body[begin:end].strip():  # an empty span is a syntax error: left for msgspec to report
            pieces.extend((body[copied:begin], b"null"))
            copied = end

    def end_element(end: int) -> None:
        raw = body[element_at:end].strip()
        if raw and elements is not None:
            elements.append(msgspec.Raw(raw))
            null_out(element_at, end)

    for match in _JSON_TOKEN.finditer(body, start):
        token, at = match.group(), match.start()
        if token[0] == 0x22:  # a string, skipped whole; at depth 1 before a colon, a key
            if not match.group(1):
                return None  # the body ends inside a string
            if depth == 1 and value_at is None:
                key = _key(token)
        elif token in (b"{", b"["):
            if depth == 0 and at != start:
                return None  # a second document after the first
            if depth == 1 and token == b"[" and key in lists and value_at is not None:
                elements, element_at = [], match.end()
            depth += 1
        elif token in (b"}", b"]"):
            depth -= 1
            if depth < 0:
                return None
            if depth == 1 and elements is not None and key is not None:  # the split array closes
                end_element(at)
                arrays[key], elements, value_at = elements, None, None
            elif depth == 0 and value_at is not None and key not in as_is:
                null_out(value_at, at)
        elif token == b",":
            if depth == 2 and elements is not None:
                end_element(at)
                element_at = match.end()
            elif depth == 1:
                if value_at is not None and key not in as_is:
                    null_out(value_at, at)
                key, value_at = None, None
        elif depth == 1:  # b":"
            value_at = match.end()
    pieces.append(body[copied:])
    return b"".join(pieces), arrays


def _key(token: bytes) -> str | None:
    try:
        return _KEY.decode(token)
    except msgspec.DecodeError:
        return None


# (hex without '~', non_icao, the feed's registration) -> whether to build the record at all
Wanted = Callable[[str, bool, str | None], bool]

_LISTS = frozenset({"ac", "aircraft"})
_KEPT = frozenset({"now", "hex"})  # `hex` marks a bare aircraft object (adsbx.py)
_TOO_DEEP = "nested too deep to decode"


def parse_readsb(
    body: bytes,
    *,
    feed: str,
    received_at: datetime,
    source: str,
    wanted: Wanted | None = None,
    keep_military: bool = False,
) -> ParseResult:
    """Parse a readsb-family response; raises FeedFormatError when the body as a whole is unusable.

    With `wanted`, only the records it accepts are decoded in full, checked and built into Observations:
    every record's identity (hex, registration, military flag) is read first into a small struct, which
    costs a third of the full one, and the watchlist keeps a few of the 10,000 records of an area answer
    (scripts/bench_pipeline.py, scripts/bench_replay.py). `keep_military` also builds every record the feed
    marks military (dbFlags & 1), wanted or not. A record whose identity is malformed (no hex, a hex that is
    not 6 hex digits) is rejected and counted whoever it is; an unwanted record's other fields are not read.
    """
    env, records = _envelope(body, feed, source)
    feed_now = _feed_now(env.now, received_at, feed, source)
    observations: list[Observation] = []
    rejected: list[Rejected] = []
    without_position = 0
    heads = _heads(body, len(records)) if wanted is not None and env.hex is None else None
    for i, raw in enumerate(records):
        try:
            if wanted is not None:
                head = heads[i] if heads is not None else _HEAD.decode(raw)
                hex_icao, non_icao = _identity(head)
                if not (keep_military and head.dbFlags & 1) and not wanted(
                    hex_icao, non_icao, head.r and head.r.strip()
                ):
                    continue
            ac = _AIRCRAFT.decode(raw)
            hex_icao, non_icao = _identity(ac)
            obs = _observation(ac, hex_icao, non_icao, feed, feed_now)
        except (msgspec.ValidationError, msgspec.DecodeError, RecordError) as exc:
            rejected.append(_rejected(exc, raw))
            continue
        except RecursionError:  # msgspec's depth limit, for this record alone (see the module docstring)
            rejected.append(_rejected(RecordError("record", _TOO_DEEP), raw))
            continue
        if obs is None:
            without_position += 1
        else:
            observations.append(obs)
    return ParseResult(
        tuple(observations), tuple(rejected), len(records), without_position, feed_now, env.synthetic is not None
    )


def _envelope(body: bytes, feed: str, source: str) -> tuple[_Envelope, list[msgspec.Raw]]:
    """The envelope and its aircraft, raw; FeedFormatError when the body is not one."""
    try:
        env = _ENVELOPE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FeedFormatError(feed, source, f"invalid JSON or envelope: {exc}") from exc
    except RecursionError:  # a value nested too deep somewhere: split the lists without recursion
        env = _shallow_decode(body, feed, source)
    records = env.ac if env.ac is not None else env.aircraft
    if records is None and env.hex is not None:
        records = [msgspec.Raw(body)]
    if records is None:
        raise FeedFormatError(feed, source, "no 'ac' or 'aircraft' list in the response")
    return env, records


def _shallow_decode(body: bytes, feed: str, source: str) -> _Envelope:
    """The envelope of a body too deep for msgspec, with its lists split by shallow_envelope()."""
    split = shallow_envelope(body, _LISTS, _KEPT)
    if split is None:
        raise FeedFormatError(feed, source, f"invalid JSON or envelope: {_TOO_DEEP}")
    copy, arrays = split
    try:
        env = _ENVELOPE.decode(copy)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FeedFormatError(feed, source, f"invalid JSON or envelope: {exc}") from exc
    except RecursionError:  # `now` or `hex` itself, which are not split off
        raise FeedFormatError(feed, source, f"the envelope is {_TOO_DEEP}") from None
    if env.ac is not None:
        env.ac = _split_list(env.ac, arrays.get("ac"), "ac", feed, source)
    if env.aircraft is not None:
        env.aircraft = _split_list(env.aircraft, arrays.get("aircraft"), "aircraft", feed, source)
    return env


def _split_list(
    nulls: list[msgspec.Raw], raws: list[msgspec.Raw] | None, name: str, feed: str, source: str
) -> list[msgspec.Raw]:
    if raws is None or len(raws) != len(nulls):
        raise FeedFormatError(feed, source, f"the {name!r} list is {_TOO_DEEP} and cannot be split")
    return raws


def _feed_now(now: float | None, received_at: datetime, feed: str, source: str) -> datetime:
    """The envelope's `now` (s or ms, feeds.md §7); the receive time without one (absent, 0 or below).
    FeedFormatError when it cannot be a time (year 10000 and on): every position is timed from it."""
    if now is None or (math.isfinite(now) and now <= 0):
        return received_at
    try:
        return from_epoch(now / 1000.0 if now > _NOW_MS_ABOVE else now)
    except ValueError as exc:
        raise FeedFormatError(feed, source, f"the envelope's now {now!r} is not a time: {exc}") from None


def _heads(body: bytes, count: int) -> list[_Head] | None:
    """Every record's identity at once; None when some record's is malformed (each is then read alone, so
    that one bad record is rejected, not the answer)."""
    try:
        decoded = _HEADS.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    heads = decoded.ac if decoded.ac is not None else decoded.aircraft
    return heads if heads is not None and len(heads) == count else None


def _identity(ac: _Aircraft | _Head) -> tuple[str, bool]:
    """(6 lower-case hex digits, non_icao): readsb marks non-ICAO addresses with a leading '~'."""
    if _HEX.fullmatch(ac.hex):  # the common case, already clean
        return ac.hex, False
    raw_hex = ac.hex.strip().lower()
    non_icao = raw_hex.startswith("~")
    hex_icao = raw_hex[1:] if non_icao else raw_hex
    if not _HEX.fullmatch(hex_icao):
        raise RecordError("hex", f"hex {ac.hex[:20]!r} is not 6 hex digits")
    return hex_icao, non_icao


def _observation(ac: _Aircraft, hex_icao: str, non_icao: bool, feed: str, feed_now: datetime) -> Observation | None:
    """One record as an Observation; None when it has no position; RecordError when it is malformed."""
    position = _position(ac)
    if position is None:
        return None
    lat, lon, age_s = position
    alt_baro_ft, on_ground = _altitude(ac.alt_baro if ac.alt_baro is not None else ac.altitude)
    return Observation(
        hex_icao=hex_icao,
        non_icao=non_icao,
        position_at=feed_now - timedelta(seconds=age_s),
        lat_deg=lat,
        lon_deg=lon,
        alt_baro_ft=alt_baro_ft,
        on_ground=on_ground,
        alt_geom_ft=_alt_geom(ac.alt_geom),
        gs_kt=_speed(ac.gs if ac.gs is not None else ac.speed),
        track_deg=_track(ac.track),
        squawk=ac.squawk if ac.squawk is not None and _SQUAWK.fullmatch(ac.squawk) else None,
        callsign=clean_callsign(ac.flight),
        registration=(ac.r or "").strip() or None,
        type_icao=(ac.t or "").strip().upper() or None,
        source_type=_source_type(ac),
        military=bool(ac.dbFlags & 1),
        messages=ac.messages,
        feed=feed,
        age_s=age_s,
        emergency=_emergency(ac.emergency),
    )


def _emergency(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    word = value.strip()
    return word if _EMERGENCY_WORD.fullmatch(word) else None


def _position(ac: _Aircraft) -> tuple[float, float, float] | None:
    """(lat, lon, age in s) from the current position, else from `lastPosition`; None without one."""
    if ac.lat is not None and ac.lon is not None:
        lat, lon = ac.lat, ac.lon
        age, age_field = (ac.seen_pos, "seen_pos") if ac.seen_pos is not None else (ac.seen or 0.0, "seen")
    elif ac.lastPosition is not None:
        last = ac.lastPosition
        lat, lon, age, age_field = last.lat, last.lon, last.seen_pos or 0.0, "lastPosition.seen_pos"
    elif ac.lat is None and ac.lon is None:
        return None
    else:
        raise RecordError("lat", "lat without lon or lon without lat")
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise RecordError("lat", f"lat {lat!r} out of range")
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise RecordError("lon", f"lon {lon!r} out of range")
    if not (math.isfinite(age) and age >= 0):
        raise RecordError(age_field, f"{age_field} {age!r} is not a non-negative age")
    if age > MAX_AGE_S:
        raise RecordError(age_field, f"{age_field} {age!r} s is older than a day ({MAX_AGE_S:.0f} s)")
    return lat, lon, age


def _altitude(value: int | float | str | None) -> tuple[int | None, bool]:
    """readsb `alt_baro`: feet, or the string "ground" (feeds.md §0 rule 3)."""
    if value is None:
        return None, False
    if isinstance(value, str):
        if value.strip().lower() == "ground":
            return None, True
        raise RecordError("alt_baro", f"alt_baro {value[:20]!r} is neither a number nor 'ground'")
    if not (math.isfinite(value) and _ALT_RANGE_FT[0] <= value <= _ALT_RANGE_FT[1]):
        raise RecordError("alt_baro", f"alt_baro {value!r} out of range")
    return round(value), False


def _alt_geom(value: float | None) -> int | None:
    if value is None:
        return None
    if not (math.isfinite(value) and _ALT_RANGE_FT[0] <= value <= _ALT_RANGE_FT[1]):
        raise RecordError("alt_geom", f"alt_geom {value!r} out of range")
    return round(value)


def _speed(value: float | None) -> float | None:
    if value is None:
        return None
    if not (math.isfinite(value) and 0.0 <= value <= _GS_MAX_KT):
        raise RecordError("gs", f"gs {value!r} out of range")
    return value


def _track(value: float | None) -> float | None:
    if value is None:
        return None
    if not (math.isfinite(value) and 0.0 <= value <= 360.0):
        raise RecordError("track", f"track {value!r} out of range")
    return value


def _source_type(ac: _Aircraft) -> str:
    if ac.type:
        return ac.type
    # dump1090 builds without `type` say which fields came from MLAT or TIS-B (feeds.md §6.3).
    if ac.mlat and "lat" in ac.mlat:
        return "mlat"
    if ac.tisb and "lat" in ac.tisb:
        return "tisb"
    return "unknown"


def clean_callsign(flight: str | None) -> str | None:
    """Strip readsb's space padding; at most 8 characters (a callsign's length in Mode S); None for empty
    and placeholder callsigns. Cut first, then stripped and checked: `0000000 0` is no callsign either."""
    if flight is None:
        return None
    callsign = flight.strip().upper()[:8].rstrip()
    return None if callsign in _JUNK_CALLSIGNS else callsign


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# -- the family's adapters ---------------------------------------------------------------------------

# Header names whose values are secrets: SecretHeaders never shows them.
SECRET_HEADERS = frozenset({"x-rapidapi-key", "x-api-key", "api-auth", "auth", "authorization"})


class SecretHeaders(dict[str, str]):
    """Request headers whose repr (and so every FeedRequest repr and log line) masks the secret ones."""

    def __repr__(self) -> str:
        shown = (f"{k!r}: {'***' if k.lower() in SECRET_HEADERS else v!r}" for k, v in self.items())
        return "{" + ", ".join(shown) + "}"

    __str__ = __repr__


class FeedSettingError(ValueError):
    """A feed's settings cannot work (found while it is built): `key` names the feed key at fault, and
    the message never holds a secret's value."""

    def __init__(self, settings: FeedSettings, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"feeds[{settings.index}].{key}: {reason}")


def require_api_key(settings: FeedSettings) -> str:
    """The feed's API key; FeedSettingError naming where to put it when there is none."""
    if not settings.api_key.strip():
        variable = feed_env_name(settings.name, "api_key")
        raise FeedSettingError(settings, "api_key", f"{settings.kind} needs an API key: set {variable} or api_key_file")
    return settings.api_key.strip()


def http_base(settings: FeedSettings, default: str) -> str:
    """`base_url` (or the kind's default) without a trailing slash; FeedSettingError unless http(s)."""
    base = (settings.base_url or default).rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise FeedSettingError(settings, "base_url", f"must be an http(s) URL, not {settings.base_url!r}")
    return base


class ReadsbFamilyFeed:
    """The query plan of the readsb / ADSBx-v2 family, built once from the settings and the context.

    `queries` (feeds.md §1-4): "hex" asks for the watchlist's hexes and registrations in lists of
    `max_per_request`; "area" for the circles (integer radius <= 250 nm) that cover the area box; "mil" for
    every aircraft the feed marks military. A tick makes hex chunks + registration chunks + circles + 1
    requests. Hex answers keep watched aircraft only; area and mil answers also keep dbFlags & 1 aircraft
    when `include_military` is set. Subclasses say how each request is spelt.
    """

    def __init__(self, settings: FeedSettings, context: FeedContext, base: str, limit: HostLimit | None) -> None:
        self.name = settings.name
        self.settings = settings
        self._base = base
        self._limit = limit
        self._spacing_s = limit.min_request_spacing_s if limit else 0.0
        self._wanted = context.watchlist.wants
        size = settings.max_per_request
        watchlist = context.watchlist
        lookups: list[FeedRequest] = []
        broad: list[FeedRequest] = []
        if "hex" in settings.queries:
            lookups += [self._hex_request(chunk) for chunk in _chunks(watchlist.hexes(), size)]
            lookups += [self._reg_request(chunk) for chunk in _chunks(watchlist.queryable_registrations(), size)]
        if "area" in settings.queries:
            broad += [self._area_request(lat, lon, nm) for lat, lon, nm in circle_cover(context.area)]
        if "mil" in settings.queries:
            broad.append(self._mil_request())
        self._requests = lookups + broad
        # parse() only learns which request a body answers from its safe_url.
        self._broad_sources = frozenset(r.safe_url for r in broad) if context.include_military else frozenset()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base={self._base!r}, requests={len(self._requests)})"

    @property
    def min_request_spacing_s(self) -> float:
        return self._spacing_s

    @property
    def access_hint(self) -> str:
        """What to do about a 401/403 from this feed ("" when there is nothing specific to say)."""
        return self._limit.access_hint if self._limit else ""

    def requests(self) -> list[FeedRequest]:
        return list(self._requests)

    def parse(self, body: bytes, received_at: datetime, source: str) -> ParseResult:
        return parse_readsb(
            body,
            feed=self.name,
            received_at=received_at,
            source=source,
            wanted=self._wanted,
            keep_military=source in self._broad_sources,
        )

    def _hex_request(self, items: list[str]) -> FeedRequest:
        raise NotImplementedError

    def _reg_request(self, items: list[str]) -> FeedRequest:
        raise NotImplementedError

    def _area_request(self, lat: float, lon: float, radius_nm: int) -> FeedRequest:
        raise NotImplementedError

    def _mil_request(self) -> FeedRequest:
        raise NotImplementedError


class ReadsbV2Feed(ReadsbFamilyFeed):
    """adsb.lol, adsb.fi and every ADSBx-v2-compatible API: `/v2/hex/` and `/v2/reg/` comma lists,
    `/v2/lat/{lat}/lon/{lon}/dist/{nm}` circles and `/v2/mil`."""

    def __init__(self, settings: FeedSettings, context: FeedContext) -> None:
        base = settings.base_url.rstrip("/")
        super().__init__(settings, context, base, host_limit(base))

    def _list(self, route: str, items: list[str]) -> FeedRequest:
        url = f"{self._base}/v2/{route}/{','.join(items)}"
        return FeedRequest(self.name, url, f"{self._base}/v2/{route}/<{len(items)} items>")

    def _hex_request(self, items: list[str]) -> FeedRequest:
        return self._list("hex", items)

    def _reg_request(self, items: list[str]) -> FeedRequest:
        return self._list(self._limit.reg_route if self._limit else "reg", items)

    def _area_request(self, lat: float, lon: float, radius_nm: int) -> FeedRequest:
        route = self._limit.area_route if self._limit else AREA_ROUTE  # a {lat}/{lon}/{nm} template
        url = f"{self._base}/v2/{route.format(lat=f'{lat:.4f}', lon=f'{lon:.4f}', nm=radius_nm)}"
        return FeedRequest(self.name, url, url)

    def _mil_request(self) -> FeedRequest:
        url = f"{self._base}/v2/mil"
        return FeedRequest(self.name, url, url)
