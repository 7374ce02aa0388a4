"""The readsb / ADSBx-v2 family: the parser shared by every such source, the query plan its adapters share
(ReadsbFamilyFeed: "hex", "area" and "mil" queries) and the `readsb-v2` adapter (adsbx.py and
airplaneslive.py hold the keyed ones).

Envelopes (feeds.md §0, §6.2, §6.4): `ac` (jv2: adsb.lol, airplanes.live, ADSBx) or `aircraft` (readsb
native, aircraft.json, adsb.fi radius queries); `now` in seconds or milliseconds. The body is decoded with
msgspec in two steps, the envelope with each aircraft kept raw, then every aircraft on its own, so one
bad record is rejected and counted while the rest of the poll is kept (reliability-and-performance.md
§6.1). msgspec refuses NaN/Infinity, bools where numbers belong and strings such as `"lat": "37.5"`.
A bare aircraft object (ADSBx answers a single hex so, feeds.md §4.2) is read as a list of one.

API keys travel in headers only, never in a URL or a safe_url (reliability-and-performance.md §7), and
SecretHeaders keeps them out of every repr.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta
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


class _Envelope(msgspec.Struct):
    ac: list[msgspec.Raw] | None = None
    aircraft: list[msgspec.Raw] | None = None
    now: float | None = None
    hex: str | None = None  # present when the body is one bare aircraft object


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


_ENVELOPE = msgspec.json.Decoder(_Envelope)
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


# (hex without '~', non_icao, the feed's registration) -> whether to build the record at all
Wanted = Callable[[str, bool, str | None], bool]


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

    With `wanted`, only the records it accepts are checked and built into Observations: building and
    range-checking every record of a 10,000-aircraft answer costs more than decoding it
    (scripts/bench_pipeline.py), and the watchlist keeps a few of them. `keep_military` also builds every
    record the feed marks military (dbFlags & 1), wanted or not. Every record is still decoded into its
    typed struct and its hex checked, so a record of the wrong shape is rejected and counted whoever it is.
    """
    try:
        env = _ENVELOPE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FeedFormatError(feed, source, f"invalid JSON or envelope: {exc}") from exc
    records = env.ac if env.ac is not None else env.aircraft
    if records is None and env.hex is not None:
        records = [msgspec.Raw(body)]
    if records is None:
        raise FeedFormatError(feed, source, "no 'ac' or 'aircraft' list in the response")
    feed_now = _feed_now(env.now, received_at)
    observations: list[Observation] = []
    rejected: list[Rejected] = []
    without_position = 0
    for raw in records:
        try:
            ac = _AIRCRAFT.decode(raw)
            hex_icao, non_icao = _identity(ac)
            if (
                wanted is not None
                and not (keep_military and ac.dbFlags & 1)
                and not wanted(hex_icao, non_icao, ac.r and ac.r.strip())
            ):
                continue
            obs = _observation(ac, hex_icao, non_icao, feed, feed_now)
        except (msgspec.ValidationError, msgspec.DecodeError, RecordError) as exc:
            rejected.append(_rejected(exc, raw))
            continue
        if obs is None:
            without_position += 1
        else:
            observations.append(obs)
    return ParseResult(tuple(observations), tuple(rejected), len(records), without_position, feed_now)


def _feed_now(now: float | None, received_at: datetime) -> datetime:
    if now is None or not math.isfinite(now) or now <= 0:
        return received_at
    return from_epoch(now / 1000.0 if now > _NOW_MS_ABOVE else now)


def _identity(ac: _Aircraft) -> tuple[str, bool]:
    """(6 lower-case hex digits, non_icao): readsb marks non-ICAO addresses with a leading '~'."""
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
    )


def _position(ac: _Aircraft) -> tuple[float, float, float] | None:
    """(lat, lon, age in s) from the current position, else from `lastPosition`; None without one."""
    if ac.lat is not None and ac.lon is not None:
        lat, lon, age = ac.lat, ac.lon, ac.seen_pos if ac.seen_pos is not None else (ac.seen or 0.0)
    elif ac.lastPosition is not None:
        last = ac.lastPosition
        lat, lon, age = last.lat, last.lon, last.seen_pos or 0.0
    elif ac.lat is None and ac.lon is None:
        return None
    else:
        raise RecordError("lat", "lat without lon or lon without lat")
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise RecordError("lat", f"lat {lat!r} out of range")
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise RecordError("lon", f"lon {lon!r} out of range")
    if not (math.isfinite(age) and age >= 0):
        raise RecordError("seen_pos", f"seen_pos {age!r} is not a non-negative age")
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
    """Strip readsb's space padding; None for empty and placeholder callsigns."""
    if flight is None:
        return None
    callsign = flight.strip().upper()
    return None if callsign in _JUNK_CALLSIGNS else callsign[:8]


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
