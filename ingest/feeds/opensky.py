"""The OpenSky Network `/states/all` adapter (feeds.md §5), and its pure credit arithmetic.

- Requests: `queries = ["hex"]` asks for the watchlist's hexes (`?icao24=a&icao24=b`, in chunks that keep
  the URL short), `"area"` for the area's box (`?lamin=&lomin=&lamax=&lomax=`). With a `client_id` every
  request asks the Fetcher for an OAuth2 bearer token (transport.py fetches and refreshes it); without
  one the feed is anonymous.
- Rows are positional arrays read by index after a minimum-length check (rows may carry extra elements,
  feeds.md §5.2); metres become feet and m/s knots here, once. One bad row is rejected with the field at
  fault; the rest of the answer is kept. Nothing but FeedFormatError (a body that is not JSON or has no
  `states`) escapes parse_states: a row nested too deep for msgspec is one rejected row, found by
  readsb.shallow_envelope() as there; an envelope `time` that is no Unix time in seconds gives way to
  the receive time, as a missing one does (every position carries its own time_position).
- Credits (feeds.md §5.4): a box query costs 1-4 credits by its area, a query without a box (hexes) 4.
  `credit_problem()` refuses an interval that would spend more than the day's credits at opensky.org.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import msgspec

from ingest.config import FeedSettings, Settings, feed_env_name
from ingest.errors import ConfigError, FeedFormatError
from ingest.feeds.base import FeedContext, FeedRequest
from ingest.feeds.readsb import RecordError, clean_callsign, shallow_envelope
from ingest.geo import Area
from ingest.models import Observation, ParseResult, Rejected
from ingest.timeutil import from_epoch

DEFAULT_BASE_URL = "https://opensky-network.org/api"
DEFAULT_TOKEN_URL = "https://auth.opensky-network.org/auth/realms/opensky-network/protocol/openid-connect/token"

FT_PER_M = 1 / 0.3048  # the international foot (feeds.md §5.2 rounds it to 3.28084)
KT_PER_MS = 3600 / 1852  # the international nautical mile (feeds.md: 1.943844)
MIN_ROW_LEN = 17  # indexes 0-16; `extended=1` adds 17, and rows may carry more (feeds.md §5.2)

DAILY_CREDITS_ANONYMOUS = 400  # per IP (feeds.md §5.4)
DAILY_CREDITS_USER = 4_000  # a standard account; active feeders get 8,000
GLOBAL_CREDITS = 4  # a query without a box ("over 400 or all")
_CREDIT_STEPS = ((25.0, 1), (100.0, 2), (400.0, 3))  # box area in square degrees -> credits
_DAY_S = 86_400.0
_OPENSKY_HOSTS = frozenset({"opensky-network.org", "www.opensky-network.org"})

_MAX_URL_CHARS = 4_000  # well under the 8 KiB request line that common servers accept
_HEX = re.compile(r"[0-9a-f]{6}")
_SQUAWK = re.compile(r"[0-7]{4}")
_SOURCE_TYPES = {0: "adsb_icao", 1: "asterix", 2: "mlat", 3: "flarm"}
_ALT_RANGE_FT = (-2_000, 100_000)
_GS_MAX_KT = 4_000.0
_EPOCH_MAX_S = 1e11  # a larger time is milliseconds: not what OpenSky sends
_FUTURE_SLACK_S = 60.0
_RAW_CUT = 200


# -- credits (pure) ------------------------------------------------------------------------------


def box_area_sq_deg(area: Area) -> float:
    """Latitude range times longitude range, the measure OpenSky charges by."""
    return (area.north_deg - area.south_deg) * (area.east_deg - area.west_deg)


def credit_cost(area_sq_deg: float | None) -> int:
    """Credits one `/states/all` call costs: by box area (≤25 → 1, ≤100 → 2, ≤400 → 3), else 4; None (no
    box: an icao24 query) costs what the whole world does."""
    if area_sq_deg is not None:
        for limit, credits in _CREDIT_STEPS:
            if area_sq_deg <= limit:
                return credits
    return GLOBAL_CREDITS


def daily_credits(authenticated: bool) -> int:
    return DAILY_CREDITS_USER if authenticated else DAILY_CREDITS_ANONYMOUS


def min_interval_s(credits_per_poll: int, authenticated: bool) -> float:
    """The shortest interval at which a poll of this cost keeps within the day's credits."""
    return _DAY_S * credits_per_poll / daily_credits(authenticated)


def credit_problem(interval_s: float, costs: Sequence[int], authenticated: bool, detail: str = "") -> str | None:
    """Why polling every `interval_s` with requests of these costs would run out of credits, or None.
    `detail` follows the request count (what the requests are for)."""
    per_poll = sum(costs)
    if not per_poll:
        return None
    needed_s = min_interval_s(per_poll, authenticated)
    if interval_s >= needed_s:
        return None
    per_day = _DAY_S / interval_s * per_poll
    who = (
        f"a standard OpenSky account gets {DAILY_CREDITS_USER} a day"
        if authenticated
        else f"anonymous access gets {DAILY_CREDITS_ANONYMOUS} a day (set client_id for {DAILY_CREDITS_USER})"
    )
    return (
        f"{interval_s:g} s is too short: each poll costs {per_poll} OpenSky credits ({len(costs)} requests{detail}), "
        f"{per_day:.0f} a day, and {who}; use at least {math.ceil(needed_s)} s"
    )


def is_opensky_host(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() in _OPENSKY_HOSTS


# -- the adapter ----------------------------------------------------------------------------------


def _number_text(value: float) -> str:
    """A coordinate for a query string: no exponent, no trailing zeros."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


class OpenSkyFeed:
    """OpenSky's `/states/all`: the watchlist by `icao24` and/or the area's box, anonymous or OAuth2."""

    def __init__(self, settings: FeedSettings, context: FeedContext) -> None:
        self.name = settings.name
        self.settings = settings
        self.base_url = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.authenticated = bool(settings.client_id)
        self.token_url = settings.token_url or DEFAULT_TOKEN_URL
        self._hex_detail = ""
        requests: list[tuple[FeedRequest, int]] = []
        for query in settings.queries:  # "mil" has no OpenSky equivalent: check_opensky() refuses it
            if query == "hex":
                hexes = context.watchlist.hexes()
                hex_requests = self._hex_requests(hexes)
                requests += [(r, credit_cost(None)) for r in hex_requests]
                # A big watchlist is what makes the polls dear: say so in credit_problem()'s refusal.
                self._hex_detail = f": {len(hex_requests)} for {len(hexes):,} watched hexes" if hexes else ""
            elif query == "area":
                requests.append((self._area_request(context.area), credit_cost(box_area_sq_deg(context.area))))
        self._requests = [r for r, _ in requests]
        self.credit_costs: tuple[int, ...] = tuple(c for _, c in requests)

    @property
    def min_request_spacing_s(self) -> float:
        return 0.0  # OpenSky publishes credits per day, not a rate: see credit_problem()

    def requests(self) -> list[FeedRequest]:
        return list(self._requests)

    def credit_problem(self) -> str | None:
        """credit_problem() for this feed's interval and requests; None for hosts other than OpenSky's."""
        if not is_opensky_host(self.base_url):
            return None
        return credit_problem(self.settings.interval_s, self.credit_costs, self.authenticated, self._hex_detail)

    def _request(self, params: list[tuple[str, str]], safe_query: str) -> FeedRequest:
        url = f"{self.base_url}/states/all?{urlencode(params)}"
        token_url = self.token_url if self.authenticated else ""
        return FeedRequest(self.name, url, f"{self.base_url}/states/all?{safe_query}", bearer_token_url=token_url)

    def _hex_requests(self, hexes: list[str]) -> list[FeedRequest]:
        per_hex = len("icao24=000000&")
        fits = max(1, (_MAX_URL_CHARS - len(self.base_url) - len("/states/all?")) // per_hex)
        size = min(self.settings.max_per_request, fits)
        chunks = [hexes[i : i + size] for i in range(0, len(hexes), size)]
        return [self._request([("icao24", h) for h in chunk], f"icao24=<{len(chunk)} items>") for chunk in chunks]

    def _area_request(self, area: Area) -> FeedRequest:
        params = [
            ("lamin", _number_text(area.south_deg)),
            ("lomin", _number_text(area.west_deg)),
            ("lamax", _number_text(area.north_deg)),
            ("lomax", _number_text(area.east_deg)),
        ]
        query = urlencode(params)
        return self._request(params, query)

    def parse(self, body: bytes, received_at: datetime, source: str) -> ParseResult:
        return parse_states(body, feed=self.name, received_at=received_at, source=source)


def check_opensky(settings: Settings, fs: FeedSettings, feed: object) -> None:
    """ConfigError, naming the key, for OpenSky settings that cannot work; nothing for other feeds."""
    if not isinstance(feed, OpenSkyFeed):
        return

    def fail(key: str, reason: str) -> ConfigError:
        dotted = settings.feed_key(fs, key)
        return ConfigError(dotted, settings.source_of(dotted), reason)

    if any(q not in ("hex", "area") for q in fs.queries):
        raise fail("queries", "opensky answers hex and area queries only (it has no military flag for `mil`)")
    for key, url in (("base_url", fs.base_url), ("token_url", fs.token_url)):
        parts = urlsplit(url)
        if url and (parts.scheme not in {"http", "https"} or not parts.netloc):
            raise fail(key, f"must be an http(s) URL, not {url!r}")
    if "/states/" in urlsplit(fs.base_url).path.rstrip("/") + "/":
        raise fail("base_url", f"must stop before /states/all (e.g. {DEFAULT_BASE_URL})")
    if fs.client_id and not fs.client_secret:
        env = feed_env_name(fs.name, "client_secret")
        raise fail("client_secret", f"client_id is set: give the client secret in {env} or client_secret_file")
    if fs.client_secret and not fs.client_id:
        raise fail("client_id", "a client secret is set but client_id is empty")
    problem = feed.credit_problem()
    if problem:
        raise fail("interval_s", problem)


# -- the parser (pure) ----------------------------------------------------------------------------


class _Envelope(msgspec.Struct):
    time: int | float | None = None
    states: list[msgspec.Raw] | msgspec.UnsetType | None = msgspec.UNSET


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_ROW = msgspec.json.Decoder(list[Any])


def parse_states(body: bytes, *, feed: str, received_at: datetime, source: str) -> ParseResult:
    """Parse a `/states/all` answer; FeedFormatError when the body as a whole is unusable. `states: null`
    is an answer with no aircraft."""
    rows = _rows(body, feed, source)
    feed_time_s = rows.time if _valid_epoch(rows.time) else None
    feed_now = from_epoch(feed_time_s) if feed_time_s is not None else received_at
    now_s = feed_now.timestamp()
    observations: list[Observation] = []
    rejected: list[Rejected] = []
    without_position = 0
    for raw in rows.states:
        try:
            obs = _observation(_ROW.decode(raw), feed, now_s)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            rejected.append(Rejected(f"unreadable state vector: {exc}", _cut(raw), _field_at(str(exc))))
            continue
        except RecursionError:  # msgspec's depth limit, for this row alone
            rejected.append(Rejected(f"state vector {_TOO_DEEP}", _cut(raw), "row"))
            continue
        except RecordError as exc:
            rejected.append(Rejected(str(exc), _cut(raw), exc.field))
            continue
        if obs is None:
            without_position += 1
        else:
            observations.append(obs)
    return ParseResult(tuple(observations), tuple(rejected), len(rows.states), without_position, feed_now)


@dataclass(frozen=True, slots=True)
class _Rows:
    time: int | float | None
    states: list[msgspec.Raw]


_TOO_DEEP = "nested too deep to decode"
_LISTS = frozenset({"states"})
_KEPT = frozenset({"time"})


def _rows(body: bytes, feed: str, source: str) -> _Rows:
    """The envelope's time and its rows, raw; FeedFormatError when the body is not the envelope."""
    try:
        env = _ENVELOPE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FeedFormatError(feed, source, f"invalid JSON or envelope: {exc}") from exc
    except RecursionError:  # a row nested too deep: split `states` without recursion
        return _shallow_rows(body, feed, source)
    if env.states is msgspec.UNSET:
        raise FeedFormatError(feed, source, "no 'states' in the response")
    return _Rows(env.time, env.states or [])


def _shallow_rows(body: bytes, feed: str, source: str) -> _Rows:
    split = shallow_envelope(body, _LISTS, _KEPT)
    if split is None:
        raise FeedFormatError(feed, source, f"invalid JSON or envelope: {_TOO_DEEP}")
    try:
        env = _ENVELOPE.decode(split[0])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FeedFormatError(feed, source, f"invalid JSON or envelope: {exc}") from exc
    except RecursionError:  # `time` itself, which is not split off
        raise FeedFormatError(feed, source, f"the envelope is {_TOO_DEEP}") from None
    if env.states is msgspec.UNSET:
        raise FeedFormatError(feed, source, "no 'states' in the response")
    rows = split[1].get("states", []) if env.states else []
    if len(rows) != len(env.states or []):
        raise FeedFormatError(feed, source, f"the 'states' list is {_TOO_DEEP} and cannot be split")
    return _Rows(env.time, rows)


_FIELDS = (
    "icao24", "callsign", "origin_country", "time_position", "last_contact", "longitude", "latitude",
    "baro_altitude", "on_ground", "velocity", "true_track", "vertical_rate", "sensors", "geo_altitude",
    "squawk", "spi", "position_source", "category",
)  # fmt: skip
_AT_INDEX = re.compile(r"at `\$\[(\d+)\]")


def _field_at(message: str) -> str:
    """The field a msgspec error points at (`... - at `$[7]``), else "row" (not an array at all)."""
    match = _AT_INDEX.search(message)
    index = int(match.group(1)) if match else -1
    return _FIELDS[index] if 0 <= index < len(_FIELDS) else "row"


def _cut(raw: msgspec.Raw) -> str:
    return bytes(raw)[:_RAW_CUT].decode("utf-8", "replace")


def _valid_epoch(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < _EPOCH_MAX_S


def _observation(row: list[Any], feed: str, now_s: float) -> Observation | None:
    """One state vector as an Observation; None without a position; RecordError naming the bad field."""
    if len(row) < MIN_ROW_LEN:
        raise RecordError("row", f"state vector has {len(row)} elements, needs at least {MIN_ROW_LEN}")
    icao24 = _text(row, 0, "icao24")
    hex_icao = (icao24 or "").strip().lower()
    if not _HEX.fullmatch(hex_icao):
        raise RecordError("icao24", f"icao24 {icao24!r:.20} is not 6 hex digits")
    lon = _number(row, 5, "longitude")
    lat = _number(row, 6, "latitude")
    if lat is None and lon is None:
        return None
    if lat is None or lon is None:
        raise RecordError("latitude" if lat is None else "longitude", "latitude without longitude or the reverse")
    if not -90.0 <= lat <= 90.0:
        raise RecordError("latitude", f"latitude {lat!r} out of range")
    if not -180.0 <= lon <= 180.0:
        raise RecordError("longitude", f"longitude {lon!r} out of range")
    position_s = _position_time(row, now_s)
    on_ground = _flag(row, 8, "on_ground")
    baro_ft = _feet(row, 7, "baro_altitude")
    squawk = _text(row, 14, "squawk")
    return Observation(
        hex_icao=hex_icao,
        non_icao=False,
        position_at=from_epoch(position_s),
        lat_deg=lat,
        lon_deg=lon,
        alt_baro_ft=None if on_ground else baro_ft,
        on_ground=on_ground,
        alt_geom_ft=_feet(row, 13, "geo_altitude"),
        gs_kt=_knots(row, 9, "velocity"),
        track_deg=_track(row, 10, "true_track"),
        squawk=squawk if squawk is not None and _SQUAWK.fullmatch(squawk) else None,
        callsign=clean_callsign(_text(row, 1, "callsign")),
        registration=None,
        type_icao=None,
        source_type=_source_type(row, 16),
        military=False,
        messages=None,
        feed=feed,
        age_s=max(0.0, now_s - position_s),
    )


def _number(row: list[Any], i: int, name: str) -> float | None:
    value = row[i]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(name, f"{name} {value!r:.20} is not a number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise RecordError(name, f"{name} {value!r:.20} is not a finite number")
    return number


def _text(row: list[Any], i: int, name: str) -> str | None:
    value = row[i]
    if value is not None and not isinstance(value, str):
        raise RecordError(name, f"{name} {value!r:.20} is not a string")
    return value


def _flag(row: list[Any], i: int, name: str) -> bool:
    value = row[i]
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RecordError(name, f"{name} {value!r:.20} is not true or false")
    return value


def _position_time(row: list[Any], now_s: float) -> float:
    """`time_position`, else `last_contact` (Unix s): when the position was current."""
    for i, name in ((3, "time_position"), (4, "last_contact")):
        value = _number(row, i, name)
        if value is None:
            continue
        if not _valid_epoch(value):
            raise RecordError(name, f"{name} {value!r} is not a Unix time in seconds")
        if value > now_s + _FUTURE_SLACK_S:
            raise RecordError(name, f"{name} {value!r} is after the response's time {now_s:.0f}")
        return value
    raise RecordError("time_position", "a position without time_position or last_contact")


def _feet(row: list[Any], i: int, name: str) -> int | None:
    metres = _number(row, i, name)
    if metres is None:
        return None
    feet = metres * FT_PER_M
    if not _ALT_RANGE_FT[0] <= feet <= _ALT_RANGE_FT[1]:
        raise RecordError(name, f"{name} {metres!r} m out of range")
    return round(feet)


def _knots(row: list[Any], i: int, name: str) -> float | None:
    speed = _number(row, i, name)
    if speed is None:
        return None
    knots = speed * KT_PER_MS
    if not 0.0 <= knots <= _GS_MAX_KT:
        raise RecordError(name, f"{name} {speed!r} m/s out of range")
    return knots


def _track(row: list[Any], i: int, name: str) -> float | None:
    value = _number(row, i, name)
    if value is not None and not 0.0 <= value <= 360.0:
        raise RecordError(name, f"{name} {value!r} out of range")
    return value


def _source_type(row: list[Any], i: int) -> str:
    value = row[i]
    if value is None:
        return "unknown"
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError("position_source", f"position_source {value!r:.20} is not an integer")
    return _SOURCE_TYPES.get(value, "unknown")
