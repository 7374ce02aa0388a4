"""What the daemon counts while it runs, behind a small interface the core calls: the pipeline (polls,
HTTP answers), the tracker (sorties, events), the writer (sightings stored) and the alert relay (delivered,
failed). Pure: `Metrics` is a Protocol, `NO_METRICS` does nothing (one-shot commands, tests), and
metrics_prometheus.py is the one implementation that keeps the numbers (the only prometheus_client
importer). The core never imports it.

Labels stay few and fixed (Prometheus' advice: every label value is a series): a feed's name (from the
configuration), an outcome from `POLL_OUTCOMES`, a status class (`2xx`), a rejection class from
`REJECT_CLASSES`, a sortie end reason, an event kind, an alert channel. Never a hex, a registration, a
callsign or an error's text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from ingest.errors import FeedError, FeedFormatError, FeedUnavailable

if TYPE_CHECKING:
    from ingest.models import PollRecord, Rejected, SortieEvent

# The one alert channel today (alerts/mqtt.py); every channel's delivery is counted under its own name.
CHANNEL_MQTT = "mqtt"

POLL_OUTCOMES = (
    "ok", "timeout", "connection", "http_3xx", "http_4xx", "http_5xx", "too_large", "invalid_body",
    "malformed_records", "stopped", "other",
)  # fmt: skip

# The field a parser names for a refused record (models.Rejected.field), by class; anything else is "other".
_REJECT_FIELDS = (
    ("identity", ("hex", "icao24", "callsign", "flight", "squawk", "origin_country", "category")),
    ("position", ("lat", "lon", "latitude", "longitude", "position_source")),
    ("altitude", ("alt_baro", "alt_geom", "baro_altitude", "geo_altitude", "altitude")),
    ("motion", ("gs", "track", "ground_speed", "velocity", "true_track", "vertical_rate", "baro_rate", "geom_rate")),
    ("time", ("position_time", "time_position", "last_contact", "seen_pos", "seen", "now", "date_generated",
              "time_generated", "date_logged", "time_logged")),
    ("format", ("record", "row", "message_type", "field_count", "transmission_type", "is_on_ground", "on_ground")),
)  # fmt: skip
REJECT_CLASSES: dict[str, str] = {name: cls for cls, names in _REJECT_FIELDS for name in names}


class Metrics(Protocol):
    """What the running daemon reports. Every method is cheap and never raises."""

    def poll(self, record: PollRecord, failure: FeedError | None, rejected: Sequence[Rejected]) -> None:
        """A feed was polled (`failure` None: it succeeded), with the records it refused."""

    def response(self, feed: str, status: int) -> None:
        """An HTTP answer came from a feed (any status)."""

    def stored(self, feed: str, sightings: int) -> None:
        """A poll's new sightings were committed."""

    def sortie_events(self, events: Sequence[SortieEvent]) -> None:
        """Sorties started and ended."""

    def happening(self, kind: str) -> None:
        """A new episode (orbit, emergency) of a sortie was recognised."""

    def delivered(self, channel: str, alerts: int) -> None:
        """A channel confirmed alerts (MQTT: their PUBACK)."""

    def failed(self, channel: str, alerts: int) -> None:
        """A channel refused alerts (they are retried later)."""

    def watch_connection(self, channel: str, connected: Callable[[], bool]) -> None:
        """`connected()` tells, when asked, whether the channel is connected."""

    def database_ready(self) -> None:
        """The daemon opened (and migrated) the database: reading it for gauges cannot race its start-up."""


class NoMetrics:
    """Counts nothing: for one-shot commands and tests."""

    def poll(self, record: PollRecord, failure: FeedError | None, rejected: Sequence[Rejected]) -> None:
        pass

    def response(self, feed: str, status: int) -> None:
        pass

    def stored(self, feed: str, sightings: int) -> None:
        pass

    def sortie_events(self, events: Sequence[SortieEvent]) -> None:
        pass

    def happening(self, kind: str) -> None:
        pass

    def delivered(self, channel: str, alerts: int) -> None:
        pass

    def failed(self, channel: str, alerts: int) -> None:
        pass

    def watch_connection(self, channel: str, connected: Callable[[], bool]) -> None:
        pass

    def database_ready(self) -> None:
        pass


NO_METRICS: Metrics = NoMetrics()


def status_class(status: int) -> str:
    """`2xx`, `4xx` ... for an HTTP status; `other` for a number that is no HTTP status."""
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


def poll_outcome(failure: FeedError | None) -> str:
    """One of POLL_OUTCOMES for a poll's failure (None: ok). Read from the error's type, its status and the
    fixed words feeds/transport.py starts its reasons with; never from feed data."""
    if failure is None:
        return "ok"
    reason = failure.reason
    if reason.startswith("stopped"):
        return "stopped"
    if isinstance(failure, FeedFormatError):
        return "malformed_records" if reason.startswith("all ") and "records malformed" in reason else "invalid_body"
    if not isinstance(failure, FeedUnavailable):
        return "other"
    status = failure.status
    if status is not None and status != 200 and 300 <= status <= 599:
        return f"http_{status // 100}xx"
    words = reason.lower()
    if "over the cap" in words or "byte cap" in words:
        return "too_large"
    if "timeout" in words or "deadline" in words:
        return "timeout"
    if words.startswith(("connection", "not an http answer", "body cut short")) or "connection" in words:
        return "connection"
    if "empty body" in words or "corrupt compressed body" in words:
        return "invalid_body"
    return "other"


def reject_class(field: str) -> str:
    """The class of a refused record's field (REJECT_CLASSES), `other` for any field not listed."""
    return REJECT_CLASSES.get(field, "other")
