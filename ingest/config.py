"""Settings: one table of every key, loaded once by `load()`, validated before anything starts.

Precedence: defaults < TOML file < `INGEST_<SECTION>_<KEY>` environment variables < CLI flags
(`--set section.key=value`). Feeds are an array of tables; their variables are
`INGEST_FEEDS_<NAME>_<KEY>` with the name upper-cased and every other character turned into `_`
(`adsb.lol` -> `INGEST_FEEDS_ADSB_LOL_INTERVAL_S`), their flags `--set feeds.<name>.<key>=value`.
Every error is a ConfigError naming the key and where its value came from, in one line that never shows a
secret's value: a file that is not UTF-8, not TOML, nested too deep or over 1 MiB included, and a secret
(`env_only` key) given by `--set`, which every user of the machine could read in `ps`. Nothing here reads
configuration at import time. Checks that need other modules (feed kinds, published rate limits) are
done where those are built, with the same ConfigError.
"""

from __future__ import annotations

import math
import os
import re
import reprlib
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ingest.errors import ConfigError

if TYPE_CHECKING:  # for annotations only: a read command's start-up makes no Protocol (scripts/bench_cli.py)

    class _Named(Protocol):
        """A table of an array of tables: [[feeds]], [[alerts]]."""

        @property
        def name(self) -> str: ...
        @property
        def index(self) -> int: ...

    N = TypeVar("N", bound=_Named)

DEFAULT_CONFIG = Path("config/ingest.toml")
ENV_CONFIG = "INGEST_CONFIG"
DEFAULT_USER_AGENT = "ingest/0.1 (+https://github.com/ingest-adsb/ingest)"

Check = Callable[[Any], str | None]
_REQUIRED = object()
MAX_CONFIG_BYTES = 1 << 20  # the bundled file is about 10 KB
MAX_SECRET_BYTES = 64 << 10  # a password or key file; more is not a secret (/dev/zero would never end)
# Ten years: far beyond any interval or gap, and small enough that now + the duration stays a datetime
# (1e300 s passed the old "greater than 0" check and overflowed timedelta in the scheduler).
MAX_DURATION_S = 10 * 365 * 86_400.0
MAX_RETENTION_DAYS = 36_500  # a century: more is a typo, and would overflow a date when subtracted from now
_MAX_CRS_CHARS = 16_384  # a WKT2 or PROJJSON definition of a projected CRS is a few KB
_SHOW = reprlib.Repr()  # values in messages: cut, and safe for values nested deep (TOML dotted keys)
_SHOW.maxstring = _SHOW.maxother = 60


# The settings records are never compared (eq=False): generating __eq__ and __hash__ for a dozen classes is a
# tenth of what every command pays to start (scripts/bench_cli.py).
@dataclass(frozen=True, slots=True, eq=False)
class Key:
    """One setting: its name, type, default and the check its value must pass."""

    name: str
    kind: str  # str, int, float, bool, path, paths, strs, globs (a string or a list of strings)
    default: Any
    doc: str
    check: Check | None = None
    secret: bool = False  # masked by check-config; never in a repr or a log line
    env_only: bool = False  # may only come from its environment variable, never from the TOML file
    file: bool = False  # a "str" key naming a file: in the TOML file, relative to the file's folder


def _positive(v: float) -> str | None:
    return None if v > 0 else "must be greater than 0"


def _duration(v: float) -> str | None:
    return None if 0 < v <= MAX_DURATION_S else f"must be greater than 0 and at most {MAX_DURATION_S:.0f} s"


def _age(v: float) -> str | None:
    return None if 0 <= v <= MAX_DURATION_S else f"must be between 0 and {MAX_DURATION_S:.0f} s"


def _reload(v: float) -> str | None:
    return (
        None if v == 0 or 0.1 <= v <= MAX_DURATION_S else f"must be 0 (never) or between 0.1 and {MAX_DURATION_S:.0f} s"
    )


def _keepalive(v: int) -> str | None:
    return None if 1 <= v <= 65535 else "must be between 1 and 65535 s (MQTT's 16-bit keepalive)"


# The default CRS is known good (tests/unit/test_config.py checks it with pyproj): checking it again would
# import pyproj and numpy into every command, read-only ones too, for a fifth of a second.
KNOWN_GOOD_CRS = frozenset({"EPSG:5179"})


def _crs(v: str) -> str | None:
    if len(v) > _MAX_CRS_CHARS:
        return f"must be a CRS name, WKT or PROJ string of at most {_MAX_CRS_CHARS:,} characters"
    if v.strip() in KNOWN_GOOD_CRS:
        return None
    from ingest.geo import crs_problem  # pyproj loads only for a CRS we have not checked already

    try:
        problem = crs_problem(v)
    except RecursionError:  # pyproj reads a PROJJSON definition with json.loads, which recurses
        return "is nested too deep to be a CRS definition"
    return None if problem is None else _cut(" ".join(problem.split()))  # one line, whatever the value holds


def _cut(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _latitude(v: float) -> str | None:
    return None if -90 <= v <= 90 else "must be a latitude between -90 and 90"


def _longitude(v: float) -> str | None:
    return None if -180 <= v <= 180 else "must be a longitude between -180 and 180"


def _port(v: int) -> str | None:
    return None if 1 <= v <= 65535 else "must be a TCP port between 1 and 65535"


def _one_of(*choices: str) -> Check:
    def check(v: str) -> str | None:
        return None if v in choices else f"must be one of {', '.join(choices)}"

    return check


def _not_empty(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


def _topic_prefix(v: str) -> str | None:
    if not v.strip() or any(c in v for c in "+#\0") or v.startswith("/") or v.endswith("/"):
        return "must be a topic without wildcards (+ #) or leading/trailing /"
    return None


def _queries(v: tuple[str, ...]) -> str | None:
    unknown = [q for q in v if q not in ("hex", "area", "mil")]
    if unknown or not v or len(set(v)) != len(v):
        return "must list hex, area and/or mil, each once"
    return None


def _db_url(v: str) -> str | None:
    if not v:
        return None
    scheme, sep, rest = v.partition("://")
    if scheme == "sqlite" and sep:
        return None if rest.startswith("/") and len(rest) > 1 else "must be sqlite:///path/to/file.db"
    if not sep or scheme not in ("postgresql", "postgres"):
        return "must be sqlite:///path or postgresql://user@host:port/database (empty: database.path)"
    netloc = rest.split("/", 1)[0]
    if ":" in netloc.rpartition("@")[0] or "password=" in v:
        return "must not hold the password: set INGEST_DATABASE_PASSWORD or database.password_file"
    return None


def _pool_size(v: int) -> str | None:
    return None if 1 <= v <= 64 else "must be between 1 and 64"


def _days(v: int) -> str | None:
    return None if 0 <= v <= MAX_RETENTION_DAYS else f"must be between 0 (keep everything) and {MAX_RETENTION_DAYS}"


def _per_request(v: int) -> str | None:
    return None if 1 <= v <= 1000 else "must be between 1 and 1000 (the APIs' list limit)"


SECTIONS: dict[str, tuple[Key, ...]] = {
    "database": (
        Key("path", "path", Path("data/ingest.db"), "the SQLite file (its folder is created), when url is empty"),
        Key("url", "str", "", "postgresql://user@host:5432/db to use PostgreSQL instead (no password in it)", _db_url),
        Key("password", "str", "", "only from INGEST_DATABASE_PASSWORD", secret=True, env_only=True),
        Key("password_file", "str", "", "a file holding the PostgreSQL password", file=True),
        Key("pool_size", "int", 4, "PostgreSQL connections a process keeps at most", _pool_size),
    ),
    "area": (
        Key("name", "str", "Korean Peninsula", "shown in output and alerts", _not_empty),
        Key("south", "float", 33.0, "southern edge, degrees", _latitude),
        Key("west", "float", 124.0, "western edge, degrees", _longitude),
        Key("north", "float", 43.5, "northern edge, degrees", _latitude),
        Key("east", "float", 132.0, "eastern edge, degrees", _longitude),
        Key("crs", "str", "EPSG:5179", "projected CRS for x_m/y_m", _crs),
    ),
    "watchlist": (
        Key("path", "path", Path("config/watchlist.csv"), "plane-alert-db CSV: the list used until you import one"),
        Key("include_military", "bool", False, "also keep every dbFlags&1 aircraft a `mil` query finds in the area"),
        Key("user_dir", "str", "", "folder of your imported list and edits (empty: the SQLite file's)", file=True),
        Key(
            "check_interval_s",
            "float",
            10.0,
            "how often `ingest run` looks for a changed list (0: only when sent SIGHUP)",
            _reload,
        ),
    ),
    "sorties": (
        Key("gap_s", "float", 1800.0, "silence that ends a sortie", _duration),
        Key("check_interval_s", "float", 30.0, "how often open sorties are checked for their end", _duration),
        Key(
            "max_blind_s",
            "float",
            10800.0,
            "blind this long (no feed covering it), a sortie ends no_coverage",
            _duration,
        ),
    ),
    "mqtt": (
        Key("enabled", "bool", False, "publish sortie alerts over MQTT"),
        Key("host", "str", "127.0.0.1", "broker host", _not_empty),
        Key("port", "int", 1883, "broker port", _port),
        Key("topic_prefix", "str", "ingest", "first topic level", _topic_prefix),
        Key("client_id", "str", "ingest", "MQTT client id (unique per daemon)", _not_empty),
        Key("username", "str", "", "user name, when the broker asks for one"),
        Key("password", "str", "", "only from INGEST_MQTT_PASSWORD", secret=True, env_only=True),
        Key("password_file", "str", "", "a file holding the password (e.g. a Docker secret)", file=True),
        Key("tls", "bool", False, "connect with TLS"),
        Key("ca_file", "str", "", "CA certificates that sign the broker's (empty: the system's)", file=True),
        Key("cert_file", "str", "", "client certificate, with key_file", file=True),
        Key("key_file", "str", "", "client certificate's private key", file=True),
        Key("keepalive_s", "int", 30, "MQTT keepalive", _keepalive),
    ),
    "http": (
        Key("enabled", "bool", False, "serve the read-only HTTP API inside `ingest run`"),
        Key("host", "str", "127.0.0.1", "address to bind (127.0.0.1: this machine only)", _not_empty),
        Key("port", "int", 8080, "TCP port", _port),
        Key(
            "stale_after_s",
            "float",
            300.0,
            "/healthz and `ingest health` fail when no feed succeeded this long",
            _duration,
        ),
    ),
    "retention": (
        Key("sightings_days", "int", 365, "delete sightings older than this many days (0: keep all)", _days),
        Key("outbox_days", "int", 30, "delete alerts delivered more than this many days ago (0: keep all)", _days),
        Key("polls_days", "int", 30, "delete the record of polls older than this many days (0: keep all)", _days),
    ),
    "replay": (
        Key("on_start", "paths", (), "recorded responses `ingest run` loads before polling"),
        Key("feed", "str", "replay", "feed name stored with replayed sightings", _not_empty),
    ),
    "daemon": (
        Key("user_agent", "str", DEFAULT_USER_AGENT, "User-Agent sent to every feed", _not_empty),
        Key(
            "log_level",
            "str",
            "INFO",
            "DEBUG, INFO, WARNING or ERROR",
            _one_of("DEBUG", "INFO", "WARNING", "ERROR"),
        ),
        Key(
            "log_format",
            "str",
            "text",
            "text, or json: one JSON object a line (ingest/logs.py)",
            _one_of("text", "json"),
        ),
    ),
}

FEED_KEYS: tuple[Key, ...] = (
    Key("name", "str", _REQUIRED, "unique name, stored with every sighting", _not_empty),
    Key("kind", "str", _REQUIRED, "readsb-v2, aircraft-json, opensky, adsbx, airplanes-live or sbs", _not_empty),
    Key("base_url", "str", "", "readsb-v2: everything before /v2/"),
    Key("source", "str", "", "aircraft-json: a file path or an http(s) URL", file=True),
    Key("interval_s", "float", 10.0, "seconds between polls", _duration),
    Key("enabled", "bool", True, "poll this feed"),
    Key("connect_timeout_s", "float", 3.05, "TCP connect timeout", _duration),
    Key("read_timeout_s", "float", 10.0, "longest silence while reading", _duration),
    Key("max_body_mb", "float", 20.0, "largest decoded body accepted", _positive),
    Key("max_per_request", "int", 1000, "hexes or registrations per request", _per_request),
    Key("max_age_s", "float", 0.0, "drop positions older than this (0: keep all)", _age),
    Key("queries", "strs", ("hex",), "readsb-v2/adsbx/airplanes-live: hex, area and/or mil", _queries),
    Key("auth", "str", "", "adsbx: rapidapi, x-api-key or api-auth"),
    Key("api_key", "str", "", "only from INGEST_FEEDS_<NAME>_API_KEY", secret=True, env_only=True),
    Key("api_key_file", "str", "", "a file holding the API key", file=True),
    Key("client_id", "str", "", "opensky: OAuth2 client id (empty: anonymous)"),
    Key("client_secret", "str", "", "only from INGEST_FEEDS_<NAME>_CLIENT_SECRET", secret=True, env_only=True),
    Key("client_secret_file", "str", "", "a file holding the OAuth2 client secret", file=True),
    Key("token_url", "str", "", "opensky: OAuth2 token endpoint (empty: OpenSky's)"),
    Key("host", "str", "", "sbs: receiver host"),
    Key("port", "int", 30003, "sbs: BaseStation port", _port),
    Key("timezone", "str", "UTC", "sbs: zone of the receiver's timestamps (readsb UTC, dump1090-fa local)"),
)


EVENT_KINDS = ("start", "end", "orbit", "emergency")
CHANNEL_KINDS = ("mqtt", "homeassistant", "apprise", "webhook")
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


def _events(v: tuple[str, ...]) -> str | None:
    if not v or any(e not in EVENT_KINDS for e in v) or len(set(v)) != len(v):
        return f"must list {', '.join(EVENT_KINDS)}, each at most once"
    return None


def _channel_name(v: str) -> str | None:
    return None if _CHANNEL_NAME.fullmatch(v) else "must be 1-40 letters, digits, - or _ (it names the channel)"


def _timezone(v: str) -> str | None:
    if not v:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # tzdata is a dependency: every IANA zone is there

    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        return "must be an IANA time zone such as Asia/Seoul (empty: UTC only)"
    return None


def _discovery_prefix(v: str) -> str | None:
    return _topic_prefix(v)


def _optional_prefix(v: str) -> str | None:
    return None if not v else _topic_prefix(v)


# [[alerts]]: one table per channel (alerts/delivery.py). `kinds` says which channel kinds take a key.
ALERT_KEYS: tuple[Key, ...] = (
    Key("name", "str", _REQUIRED, "unique name: `ingest alerts test NAME`, INGEST_ALERTS_<NAME>_<KEY>", _channel_name),
    Key("kind", "str", _REQUIRED, "mqtt, homeassistant, apprise or webhook", _one_of(*CHANNEL_KINDS)),
    Key("enabled", "bool", True, "deliver to this channel (homeassistant: false removes its entities)"),
    Key("events", "strs", EVENT_KINDS, "which events: start, end, orbit, emergency", _events),
    Key("registrations", "globs", (), "only these registrations (globs such as 62-41*; empty: any)"),
    Key("hexes", "globs", (), "only these ICAO hexes (globs; empty: any)"),
    Key("types", "globs", (), "only these ICAO types (R135, Q4, P8...; globs; empty: any)"),
    Key("operators", "globs", (), "only these operators, as the watchlist spells them (globs; empty: any)"),
    Key("tags", "globs", (), "only aircraft with one of these watchlist tags (globs; empty: any)"),
    Key("categories", "globs", (), "only these watchlist categories (globs; empty: any)"),
    Key("topic_prefix", "str", "", "mqtt: first topic level (empty: [mqtt] topic_prefix)", _optional_prefix),
    Key("discovery_prefix", "str", "homeassistant", "homeassistant: its discovery prefix", _discovery_prefix),
    Key("state_interval_s", "float", 30.0, "homeassistant: an open sortie's position at most this often", _duration),
    Key(
        "urls", "str", "", "apprise: only from INGEST_ALERTS_<NAME>_URLS (space separated)", secret=True, env_only=True
    ),
    Key("urls_file", "str", "", "apprise: a file of Apprise URLs, one a line", file=True),
    Key("attach_map", "bool", True, "apprise: attach the sortie's map (PNG) to start and end where the service can"),
    Key("url", "str", "", "webhook: only from INGEST_ALERTS_<NAME>_URL", secret=True, env_only=True),
    Key("url_file", "str", "", "webhook: a file holding the URL", file=True),
    Key("secret", "str", "", "webhook: HMAC key, only from INGEST_ALERTS_<NAME>_SECRET", secret=True, env_only=True),
    Key("secret_file", "str", "", "webhook: a file holding the HMAC key", file=True),
    Key(
        "headers",
        "str",
        "",
        "webhook: extra `Name: value` lines, only from INGEST_ALERTS_<NAME>_HEADERS",
        secret=True,
        env_only=True,
    ),
    Key(
        "headers_file",
        "str",
        "",
        "webhook: a file of extra headers, `Name: value` a line (e.g. Authorization)",
        file=True,
    ),
    Key(
        "timeout_s",
        "float",
        10.0,
        "apprise: longest a delivery may take; webhook: to connect and for each read (3x for a whole POST)",
        _duration,
    ),
    Key("timezone", "str", "", "apprise, webhook: also give times in this zone (e.g. Asia/Seoul)", _timezone),
    Key("retry_min_s", "float", 5.0, "first wait after a failure (doubling up to retry_max_s)", _duration),
    Key("retry_max_s", "float", 900.0, "longest wait between retries (a Retry-After may ask for more)", _duration),
    Key("park_s", "float", 3600.0, "how long a refusal (401/403/404) parks the channel", _duration),
)
_CHANNEL_ONLY = {
    "topic_prefix": ("mqtt",),
    "discovery_prefix": ("homeassistant",),
    "state_interval_s": ("homeassistant",),
    "urls": ("apprise",),
    "urls_file": ("apprise",),
    "attach_map": ("apprise",),
    "url": ("webhook",),
    "url_file": ("webhook",),
    "secret": ("webhook",),
    "secret_file": ("webhook",),
    "headers": ("webhook",),
    "headers_file": ("webhook",),
    "timeout_s": ("apprise", "webhook"),
    "timezone": ("apprise", "webhook"),
}


@dataclass(frozen=True, slots=True, eq=False)
class DatabaseSettings:
    """[database]: the SQLite file, or the PostgreSQL server, everything is stored in."""

    path: Path
    url: str
    password: str = field(repr=False)  # from INGEST_DATABASE_PASSWORD, or read from password_file by load()
    password_file: str
    pool_size: int

    def where(self) -> str:
        """What the store opens: the PostgreSQL URL when one is set, else the SQLite path."""
        return self.url or str(self.path)


@dataclass(frozen=True, slots=True, eq=False)
class AreaSettings:
    """[area]: the box sightings must fall in, and the projected CRS they are stored in."""

    name: str
    south: float
    west: float
    north: float
    east: float
    crs: str


@dataclass(frozen=True, slots=True, eq=False)
class WatchlistSettings:
    """[watchlist]: the aircraft watched (plane-alert-db CSV) and where a user's own list lives."""

    path: Path
    include_military: bool
    user_dir: str  # "": beside the SQLite file (ingest/watchlist_files.py)
    check_interval_s: float


@dataclass(frozen=True, slots=True, eq=False)
class SortiesSettings:
    """[sorties]: when a silence ends a sortie (in covered time), and when blindness does."""

    gap_s: float
    check_interval_s: float
    max_blind_s: float


@dataclass(frozen=True, slots=True, eq=False)
class MqttSettings:
    """[mqtt]: the broker the `mqtt` alert channel publishes to."""

    enabled: bool
    host: str
    port: int
    topic_prefix: str
    client_id: str
    username: str
    password: str = field(repr=False)  # from INGEST_MQTT_PASSWORD, or read from password_file by load()
    password_file: str
    tls: bool
    ca_file: str
    cert_file: str
    key_file: str
    keepalive_s: int


@dataclass(frozen=True, slots=True, eq=False)
class HttpSettings:
    """[http]: the read-only API and page of `ingest serve` (and of the daemon)."""

    enabled: bool
    host: str
    port: int
    stale_after_s: float


@dataclass(frozen=True, slots=True, eq=False)
class RetentionSettings:
    """[retention]: how long sightings, delivered alerts and the record of polls are kept."""

    sightings_days: int  # 0: keep every sighting
    outbox_days: int  # 0: keep every delivered alert
    polls_days: int = 30  # 0: keep every feed_polls row


@dataclass(frozen=True, slots=True, eq=False)
class ReplaySettings:
    """[replay]: recorded responses `ingest run` loads before it polls."""

    on_start: tuple[Path, ...]
    feed: str


@dataclass(frozen=True, slots=True, eq=False)
class DaemonSettings:
    """[daemon]: how the daemon presents itself to feeds and how it logs."""

    user_agent: str
    log_level: str
    log_format: str


@dataclass(frozen=True, slots=True, eq=False)
class FeedSettings:
    """One feed: a [[feeds]] table."""

    name: str
    kind: str
    base_url: str
    source: str
    interval_s: float
    enabled: bool
    connect_timeout_s: float
    read_timeout_s: float
    max_body_mb: float
    max_per_request: int
    max_age_s: float
    queries: tuple[str, ...]
    auth: str
    api_key: str = field(repr=False)  # from the environment, or read from api_key_file by load()
    api_key_file: str
    client_id: str
    client_secret: str = field(repr=False)  # likewise, from client_secret_file
    client_secret_file: str
    token_url: str
    host: str
    port: int
    timezone: str
    index: int = 0  # position in [[feeds]], for messages


@dataclass(frozen=True, slots=True, eq=False)
class AlertSettings:
    """One alert channel: an [[alerts]] table, or the [mqtt] section's own channel (named `mqtt`)."""

    name: str
    kind: str
    enabled: bool
    events: tuple[str, ...]
    registrations: tuple[str, ...]
    hexes: tuple[str, ...]
    types: tuple[str, ...]
    operators: tuple[str, ...]
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    topic_prefix: str
    discovery_prefix: str
    state_interval_s: float
    urls: str = field(repr=False)  # from the environment, or read from urls_file by load()
    urls_file: str
    attach_map: bool
    url: str = field(repr=False)  # likewise, from url_file
    url_file: str
    secret: str = field(repr=False)  # likewise, from secret_file
    secret_file: str
    headers: str = field(repr=False)  # likewise, from headers_file: `Name: value` lines (webhook_headers())
    headers_file: str
    timeout_s: float
    timezone: str
    retry_min_s: float
    retry_max_s: float
    park_s: float
    index: int = 0  # position in [[alerts]] (-1: the [mqtt] section's channel), for messages

    @property
    def key_prefix(self) -> str:
        """How messages name this channel's keys: `alerts[0]`, or `mqtt` for the [mqtt] section's."""
        return "mqtt" if self.index < 0 else f"alerts[{self.index}]"


_SECTION_TYPES: dict[str, type] = {
    "database": DatabaseSettings,
    "area": AreaSettings,
    "watchlist": WatchlistSettings,
    "sorties": SortiesSettings,
    "mqtt": MqttSettings,
    "http": HttpSettings,
    "retention": RetentionSettings,
    "replay": ReplaySettings,
    "daemon": DaemonSettings,
}


@dataclass(frozen=True)
class Settings:
    """The effective configuration. `sources` says where each dotted key's value came from."""

    path: Path
    database: DatabaseSettings
    area: AreaSettings
    watchlist: WatchlistSettings
    sorties: SortiesSettings
    mqtt: MqttSettings
    http: HttpSettings
    retention: RetentionSettings
    replay: ReplaySettings
    daemon: DaemonSettings
    feeds: tuple[FeedSettings, ...]
    sources: Mapping[str, str] = field(repr=False)
    alerts: tuple[AlertSettings, ...] = ()  # the [[alerts]] tables, as written

    def channels(self) -> tuple[AlertSettings, ...]:
        """Every enabled alert channel: `mqtt` when [mqtt] enabled (every event, every aircraft, as before
        [[alerts]] existed), then the enabled [[alerts]] tables."""
        implicit = (mqtt_channel(self.mqtt),) if self.mqtt.enabled else ()
        return implicit + tuple(a for a in self.alerts if a.enabled)

    def source_of(self, key: str) -> str:
        return self.sources.get(key, "default")

    def feed_key(self, feed: FeedSettings, key: str) -> str:
        """The dotted name of a feed's key, e.g. `feeds[0].interval_s`."""
        return f"feeds[{feed.index}].{key}"


def mqtt_channel(m: MqttSettings) -> AlertSettings:
    """The channel that `[mqtt] enabled = true` makes: named `mqtt`, every event, every aircraft."""
    values = {k.name: k.default for k in ALERT_KEYS}
    values.update(name="mqtt", kind="mqtt", topic_prefix=m.topic_prefix)
    return AlertSettings(index=-1, **values)


def alert_env_name(channel: str, key: str) -> str:
    return f"INGEST_ALERTS_{re.sub(r'[^A-Za-z0-9]', '_', channel).upper()}_{key.upper()}"


def env_name(section: str, key: str) -> str:
    return f"INGEST_{section.upper()}_{key.upper()}"


def feed_env_name(feed_name: str, key: str) -> str:
    return f"INGEST_FEEDS_{re.sub(r'[^A-Za-z0-9]', '_', feed_name).upper()}_{key.upper()}"


def config_path(explicit: Path | None, environ: Mapping[str, str]) -> Path:
    """--config, else $INGEST_CONFIG, else the bundled config/ingest.toml."""
    if explicit is not None:
        return explicit
    if environ.get(ENV_CONFIG):
        return Path(environ[ENV_CONFIG])
    return DEFAULT_CONFIG


def load(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Settings:
    """Read, merge and validate the configuration; raises ConfigError naming the key and its source."""
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    _refuse_secret_flags(overrides)
    cfg_path = config_path(path, environ)
    data = _read_toml(cfg_path)
    loader = _Loader(str(cfg_path), environ, overrides)
    sections = {name: loader.section(name, keys, data.pop(name, {})) for name, keys in SECTIONS.items()}
    feeds = loader.feeds(data.pop("feeds", []))
    alerts = loader.alerts(data.pop("alerts", []))
    for unknown in data:
        raise ConfigError(_cut(unknown, 60), str(cfg_path), "unknown section or key")
    loader.reject_unused()
    sections["mqtt"]["password"] = _mqtt_password(sections["mqtt"], loader.sources)
    db = sections["database"]
    if db["url"].startswith("sqlite:"):  # sqlite:///path is database.path by another name
        path = Path(db["url"][len("sqlite:///") :])
        from_file = loader.sources["database.url"] == str(cfg_path)
        db["path"] = cfg_path.parent / path if from_file and not path.is_absolute() else path
        loader.sources["database.path"] = loader.sources["database.url"]
        db["url"] = ""
    db["password"] = _secret(db["password"], db["password_file"], "database.password_file", loader.sources)
    settings = Settings(
        path=cfg_path,
        feeds=feeds,
        alerts=alerts,
        sources=loader.sources,
        **{name: _SECTION_TYPES[name](**values) for name, values in sections.items()},
    )
    _cross_check(settings)
    return settings


def _refuse_secret_flags(overrides: Mapping[str, str]) -> None:
    """ConfigError for a secret (an `env_only` key) given by `--set`, whichever feed it names: a command
    line is visible to every user in `ps`. The message names the variable and the *_file key; the value
    is never shown."""
    feed_secrets = {k.name for k in FEED_KEYS if k.env_only}
    for flag in overrides:
        table, _, key = flag.rpartition(".")
        if table.startswith("feeds.") and key in feed_secrets:
            env = feed_env_name(table.removeprefix("feeds."), key)
        elif table.startswith("alerts.") and key in {k.name for k in ALERT_KEYS if k.env_only}:
            env = alert_env_name(table.removeprefix("alerts."), key)
        elif any(k.name == key and k.env_only for k in SECTIONS.get(table, ())):
            env = env_name(table, key)
        else:
            continue
        shown = _cut(flag, 80)
        raise ConfigError(
            shown,
            f"--set {shown}",
            f"a secret is never taken from the command line (every user sees it in `ps`): set {env} or {shown}_file",
        )


def _mqtt_password(mqtt: Mapping[str, Any], sources: Mapping[str, str]) -> str:
    """INGEST_MQTT_PASSWORD, or the content of password_file."""
    return _secret(mqtt["password"], mqtt["password_file"], "mqtt.password_file", sources)


def _secret(value: str, path: str, file_key: str, sources: Mapping[str, str]) -> str:
    """A secret from its environment variable (`value`) or from a file (one line; the newline dropped)."""
    if not path:
        return value
    if value:
        raise ConfigError(file_key, sources[file_key], "give the environment variable or the file, not both")
    try:
        with Path(path).open("rb") as fh:
            data = fh.read(MAX_SECRET_BYTES + 1)
        if len(data) > MAX_SECRET_BYTES:
            raise ConfigError(
                file_key, sources[file_key], f"{_cut(path)} is over {MAX_SECRET_BYTES >> 10} KiB: not a secret"
            )
        return data.decode("utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(file_key, sources[file_key], f"cannot read {_cut(path)}: {reason}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    """The file's tables; ConfigError, naming the file, for anything that is not a small UTF-8 TOML file."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("(file)", str(path), "no such file; pass --config or set INGEST_CONFIG") from None
    except OSError as exc:
        raise ConfigError("(file)", str(path), exc.strerror or type(exc).__name__) from exc
    except ValueError as exc:  # a path with a NUL character
        raise ConfigError("(file)", repr(str(path)), str(exc)) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError("(file)", str(path), f"larger than {MAX_CONFIG_BYTES >> 20} MiB: not an ingest config")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError("(file)", str(path), f"not UTF-8 text (line {line}: {exc.reason})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("(file)", str(path), f"not valid TOML: {exc}") from exc
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError("(file)", str(path), "not valid TOML: arrays or tables nested too deep") from None
    except ValueError as exc:  # tomllib's int() of an integer over 4,300 digits
        raise ConfigError("(file)", str(path), f"not valid TOML: {_cut(str(exc), 80)}") from None


class _Loader:
    """Merges file, environment and flag values key by key, remembering each value's source."""

    def __init__(self, path: str, environ: Mapping[str, str], overrides: Mapping[str, str]) -> None:
        self.path = path
        self.environ = environ
        self.overrides = dict(overrides)
        self.used_env: set[str] = set()
        self.used_flags: set[str] = set()
        self.sources: dict[str, str] = {}

    def section(self, name: str, keys: tuple[Key, ...], table: Any) -> dict[str, Any]:
        if not isinstance(table, dict):
            raise ConfigError(name, self.path, "must be a table ([" + name + "])")
        known = {k.name: k for k in keys}
        for key in table:
            if key not in known:
                raise ConfigError(f"{name}.{_cut(key, 60)}", self.path, "unknown key")
            if known[key].env_only:
                raise ConfigError(
                    f"{name}.{key}", self.path, f"never put it in the file: set {env_name(name, key)} instead"
                )
        return {k.name: self._value(k, f"{name}.{k.name}", table, env_name(name, k.name)) for k in keys}

    def feeds(self, items: Any) -> tuple[FeedSettings, ...]:
        result = []
        for index, values in self._array("feeds", items, FEED_KEYS, feed_env_name):
            for secret in ("api_key", "client_secret"):
                file_key = f"feeds[{index}].{secret}_file"
                values[secret] = _secret(values[secret], values[f"{secret}_file"], file_key, self.sources)
            result.append(FeedSettings(index=index, **values))
        return self._unique("feeds", tuple(result))

    def alerts(self, items: Any) -> tuple[AlertSettings, ...]:
        """The [[alerts]] tables, each a channel; kind-specific keys are refused on other kinds."""
        if isinstance(items, dict):
            raise ConfigError("alerts", self.path, "must be an array of tables ([[alerts]]), one per channel")
        result = []
        for index, values in self._array("alerts", items, ALERT_KEYS, alert_env_name):
            for key, kinds in _CHANNEL_ONLY.items():
                dotted = f"alerts[{index}].{key}"
                if values["kind"] not in kinds and self.sources.get(dotted, "default") != "default":
                    raise ConfigError(dotted, self.sources[dotted], f"only for kind {' or '.join(kinds)}")
            for secret in ("urls", "url", "secret", "headers"):
                file_key = f"alerts[{index}].{secret}_file"
                values[secret] = _secret(values[secret], values[f"{secret}_file"], file_key, self.sources)
            result.append(AlertSettings(index=index, **values))
        return self._unique("alerts", tuple(result))

    def _array(
        self, array: str, items: Any, keys: tuple[Key, ...], env_of: Callable[[str, str], str]
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """Each table of an array of tables ([[feeds]], [[alerts]]) with its values: unknown keys and secrets
        written in the file refused; a table's variables and --set flags named after its `name`."""
        if not isinstance(items, list):
            raise ConfigError(array, self.path, f"must be an array of tables ([[{array}]])")
        known = {k.name for k in keys}
        for index, table in enumerate(items):
            if not isinstance(table, dict):
                raise ConfigError(f"{array}[{index}]", self.path, "must be a table")
            for key in table:
                if key not in known:
                    raise ConfigError(f"{array}[{index}].{_cut(key, 60)}", self.path, "unknown key")
            raw_name = table.get("name")
            label = raw_name if isinstance(raw_name, str) else str(index)
            for key in keys:
                if key.env_only and key.name in table:
                    raise ConfigError(
                        f"{array}[{index}].{key.name}", self.path,
                        f"never put it in the file: set {env_of(label, key.name)} or {key.name}_file",
                    )  # fmt: skip
            yield (
                index,
                {
                    k.name: self._value(k, f"{array}[{index}].{k.name}", table, env_of(label, k.name), label, array)
                    for k in keys
                },
            )

    def _unique(self, array: str, tables: tuple[N, ...]) -> tuple[N, ...]:
        seen: set[str] = set()
        for table in tables:
            if table.name in seen:
                raise ConfigError(f"{array}[{table.index}].name", self.path, f"{_SHOW.repr(table.name)} is used twice")
            seen.add(table.name)
        return tables

    def _value(
        self, key: Key, dotted: str, table: Mapping[str, Any], env: str, feed: str = "", array: str = "feeds"
    ) -> Any:
        flag = f"{array}.{feed}.{key.name}" if feed else dotted
        if env in self.environ:
            self.used_env.add(env)  # a known variable, even when a flag overrides it
        if flag in self.overrides:
            self.used_flags.add(flag)
            return self._finish(key, dotted, _from_text(key, self.overrides[flag]), f"--set {flag}")
        if env in self.environ:
            return self._finish(key, dotted, _from_text(key, self.environ[env]), env)
        if key.name in table:
            value = self._finish(key, dotted, _from_toml(key, table[key.name]), self.path)
            return self._from_folder(key, value)
        if key.default is _REQUIRED:
            raise ConfigError(dotted, self.path, "is required")
        self.sources[dotted] = "default"
        return key.default

    def _from_folder(self, key: Key, value: Any) -> Any:
        """A relative path written in the config file names a file beside it, wherever ingest is started:
        `INGEST_CONFIG=../config/ingest.toml` from another folder still finds the watchlist. Paths from the
        environment or --set stay relative to the working directory, as a shell user expects."""
        folder = Path(self.path).parent
        if key.kind == "path":
            return value if value.is_absolute() else folder / value
        if key.kind == "paths":
            return tuple(v if v.is_absolute() else folder / v for v in value)
        if key.file and value and "://" not in value and not Path(value).is_absolute():
            return str(folder / value)
        return value

    def _finish(self, key: Key, dotted: str, parsed: tuple[Any, str | None], source: str) -> Any:
        value, problem = parsed
        if problem is None and key.check is not None:
            problem = key.check(value)
        if problem is not None:
            raise ConfigError(dotted, source, problem)
        self.sources[dotted] = source
        return value

    def reject_unused(self) -> None:
        for flag in self.overrides:
            if flag not in self.used_flags:
                raise ConfigError(_cut(flag, 80), f"--set {_cut(flag, 80)}", "unknown key")
        for name in self.environ:
            if name.startswith("INGEST_") and name != ENV_CONFIG and name not in self.used_env:
                raise ConfigError(name, "environment", "unknown setting (check the spelling)")


def _from_toml(key: Key, value: Any) -> tuple[Any, str | None]:
    """Type-check a TOML value; TOML already typed it, so only integers widen to floats."""
    shown = _SHOW.repr(value)
    if key.kind == "bool":
        return value, None if isinstance(value, bool) else f"must be true or false, not {shown}"
    if key.kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return value, None if ok else f"must be an integer, not {shown}"
    if key.kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value, f"must be a number, not {shown}"
        number = _finite(value)
        return number, None if number is not None else f"must be a number, not {shown}"
    if key.kind == "path":
        ok = isinstance(value, str) and bool(value) and _text_problem(value) is None
        return Path(value) if ok else value, None if ok else f"must be a path, not {shown}"
    if key.kind == "globs" and isinstance(value, str):
        value = [value]  # one glob, or a list of them
    if key.kind in ("paths", "strs", "globs"):
        if not isinstance(value, list) or not all(isinstance(v, str) and _text_problem(v) is None for v in value):
            return value, f"must be a list of {'paths' if key.kind == 'paths' else 'strings'}, not {shown}"
        if key.kind == "paths":
            if not all(value):
                return value, f"must be a list of paths, not {shown}"
            return tuple(Path(v) for v in value), None
        return tuple(value), None
    if not isinstance(value, str):
        return value, f"must be a string, not {shown}"
    return value, _text_problem(value)


def _finite(value: int | float) -> float | None:
    """A number as a finite float; None for inf, NaN and integers too large for a float."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _text_problem(text: str) -> str | None:
    """Why a string cannot be a setting: a NUL (no path or host holds one; os.stat raises ValueError for
    it) or a lone surrogate (an environment variable or argument that was not UTF-8)."""
    if "\0" in text:
        return "must not contain a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be UTF-8 text"
    return None


def _from_text(key: Key, text: str) -> tuple[Any, str | None]:
    """Parse an environment variable or flag value."""
    text = text.strip()
    problem = _text_problem(text)
    if problem is not None:
        return text, problem
    shown = _SHOW.repr(text)
    try:
        if key.kind == "bool":
            lowered = text.lower()
            if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                return text, f"must be true or false, not {shown}"
            return lowered in {"true", "1", "yes"}, None
        if key.kind == "int":
            return int(text), None
        if key.kind == "float":
            value = float(text)
            return value, None if math.isfinite(value) else f"must be a number, not {shown}"
    except ValueError:  # int() also refuses more than 4,300 digits
        return text, f"must be a{'n integer' if key.kind == 'int' else ' number'}, not {shown}"
    if key.kind == "path":
        return Path(text), None if text else "must be a path"
    if key.kind in ("paths", "strs", "globs") and text.startswith("["):
        # A list written as in the TOML file: `--set 'replay.on_start=[]'`, `--set 'feeds.x.queries=["hex"]'`.
        try:
            return _from_toml(key, tomllib.loads(f"v = {text}")["v"])
        except (tomllib.TOMLDecodeError, RecursionError):
            return text, f'must be a list such as [] or ["a", "b"], not {shown}'
    if key.kind == "paths":
        return tuple(Path(p) for p in text.split(os.pathsep) if p), None
    if key.kind in ("strs", "globs"):
        return tuple(p.strip() for p in text.split(",") if p.strip()), None
    return text, None


def _is_file(path: str | Path) -> bool:
    """Path.is_file() that is False, not an OSError, for a name too long or otherwise unusable."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def _cross_check(s: Settings) -> None:
    if s.area.south >= s.area.north:
        raise ConfigError("area.south", s.source_of("area.south"), "must be less than area.north")
    if s.area.west >= s.area.east:
        raise ConfigError("area.west", s.source_of("area.west"), "must be less than area.east")
    if not _is_file(s.watchlist.path):
        raise ConfigError(
            "watchlist.path", s.source_of("watchlist.path"), f"no such file: {_cut(str(s.watchlist.path))}"
        )
    user_dir = s.watchlist.user_dir
    if user_dir and _is_file(user_dir):
        raise ConfigError("watchlist.user_dir", s.source_of("watchlist.user_dir"), f"not a folder: {_cut(user_dir)}")
    m = s.mqtt
    for key in ("ca_file", "cert_file", "key_file"):
        path = getattr(m, key)
        if path and not _is_file(path):
            raise ConfigError(f"mqtt.{key}", s.source_of(f"mqtt.{key}"), f"no such file: {_cut(path)}")
    if bool(m.cert_file) != bool(m.key_file):
        raise ConfigError("mqtt.cert_file", s.source_of("mqtt.cert_file"), "cert_file and key_file go together")
    _check_channels(s)
    polls_days = s.retention.polls_days
    if polls_days and polls_days * 86_400 < s.sorties.max_blind_s:
        raise ConfigError(
            "retention.polls_days", s.source_of("retention.polls_days"),
            f"must cover sorties.max_blind_s ({s.sorties.max_blind_s:g} s): covered time is read from the polls",
        )  # fmt: skip
    for replay in s.replay.on_start:
        if not _is_file(replay):
            raise ConfigError("replay.on_start", s.source_of("replay.on_start"), f"no such file: {_cut(str(replay))}")


def _check_channels(s: Settings) -> None:
    """What one [[alerts]] table cannot say alone: names that clash, settings that contradict."""
    for a in s.alerts:
        where = f"alerts[{a.index}]"
        if a.name == "mqtt" and s.mqtt.enabled:
            raise ConfigError(
                f"{where}.name", s.source_of(f"{where}.name"),
                "`mqtt` names the [mqtt] section's own channel (enabled = true): choose another name",
            )  # fmt: skip
        if a.retry_min_s > a.retry_max_s:
            key = f"{where}.retry_min_s"
            raise ConfigError(key, s.source_of(key), "must not exceed retry_max_s")
    assistants = [a for a in s.alerts if a.kind == "homeassistant"]
    if len(assistants) > 1:
        a = assistants[1]
        raise ConfigError(
            f"alerts[{a.index}].kind", s.source_of(f"alerts[{a.index}].kind"),
            "only one homeassistant channel: its entities are the aircraft's, whatever the channel",
        )  # fmt: skip


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")  # an HTTP token
# What the webhook sets itself (and what says how the body is framed): never replaced.
_OWN_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding", "host", "connection"})


def webhook_headers(text: str) -> list[tuple[str, str]]:
    """A webhook's extra headers: one `Name: value` a line, blank lines and `#` comments skipped. ValueError
    naming the line (and the header, never its value) for a line that is no header, a name that is not an
    HTTP token, an empty value, or a header the webhook sets itself (Content-Type, X-Ingest-*...)."""
    headers = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"line {number} is not a `Name: value` header")
        if name.lower() in _OWN_HEADERS or name.lower().startswith("x-ingest-"):
            raise ValueError(f"line {number}: {name} is set by the webhook itself")
        if not value or not (value.isascii() and value.isprintable()):
            raise ValueError(f"line {number}: {name} has an empty or unprintable value")
        headers.append((name, value))
    return headers


def _web_url(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def check_channel_urls(s: Settings) -> None:
    """The URLs the enabled channels need (secrets, from the environment or a file): checked by what delivers
    (run, poll, replay, check-config), not by the read commands, which may run without the secrets."""
    for a in s.channels():
        where = f"alerts[{a.index}]"
        source = s.source_of(f"{where}.url_file") if a.url_file else alert_env_name(a.name, "url")
        if a.kind == "webhook" and not a.url:
            env = alert_env_name(a.name, "url")
            raise ConfigError(f"{where}.url", "environment", f"a webhook needs its URL: set {env} or url_file")
        if a.kind == "webhook" and not _web_url(a.url):  # the URL is never shown: it may hold a token
            raise ConfigError(f"{where}.url", source, "must be an http:// or https:// URL with a host")
        if a.kind == "webhook" and a.headers:
            source = s.source_of(f"{where}.headers_file") if a.headers_file else alert_env_name(a.name, "headers")
            try:
                webhook_headers(a.headers)
            except ValueError as exc:  # names the line and the header, never a value: it may hold a token
                raise ConfigError(f"{where}.headers", source, str(exc)) from None
        if a.kind == "apprise" and not a.urls.split():
            raise ConfigError(
                f"{where}.urls", "environment",
                f"an apprise channel needs its URLs: set {alert_env_name(a.name, 'urls')} or urls_file",
            )  # fmt: skip


def describe(settings: Settings) -> str:
    """The effective configuration as TOML, each value annotated with its source; secrets masked."""
    lines = [f"# effective configuration (file: {settings.path})"]
    for name, keys in SECTIONS.items():
        lines.append(f"\n[{name}]")
        section = getattr(settings, name)
        for key in keys:
            dotted = f"{name}.{key.name}"
            raw = getattr(section, key.name)
            value = ('"***"' if raw else '""') if key.secret else _toml(raw)
            lines.append(f"{key.name} = {value}  # {settings.source_of(dotted)}")
    for feed in settings.feeds:
        lines.append("\n[[feeds]]")
        secrets = {k.name for k in FEED_KEYS if k.secret}
        for f in fields(FeedSettings):
            if f.name == "index":
                continue
            raw = getattr(feed, f.name)
            value = ('"***"' if raw else '""') if f.name in secrets else _toml(raw)
            lines.append(f"{f.name} = {value}  # {settings.source_of(settings.feed_key(feed, f.name))}")
    for channel in settings.alerts:
        lines.append("\n[[alerts]]")
        for key in ALERT_KEYS:
            if channel.kind not in _CHANNEL_ONLY.get(key.name, CHANNEL_KINDS):
                continue  # another kind's key
            raw = getattr(channel, key.name)
            value = ('"***"' if raw else '""') if key.secret else _toml(raw)
            lines.append(f"{key.name} = {value}  # {settings.source_of(f'alerts[{channel.index}].{key.name}')}")
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
