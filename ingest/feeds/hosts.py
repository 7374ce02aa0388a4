"""Published limits and routes of the public hosts we know. A host not listed here (a local receiver,
a test server on 127.0.0.1) has no minimum spacing between requests."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class HostLimit:
    """How often a public host may be asked, and which v2 route takes a registration list."""

    min_request_spacing_s: float
    source: str  # where the limit is published
    reg_route: str = "reg"


KNOWN_HOSTS: dict[str, HostLimit] = {
    # "The public endpoints are rate limited to 1 request per second" (adsbfi/opendata README, feeds.md §1.1).
    # Its README lists /v2/registration/, not /v2/reg/.
    "opendata.adsb.fi": HostLimit(1.0, "adsb.fi open data README: 1 request/s", reg_route="registration"),
    # "Rate limits are dynamic based on the environment load" (adsblol/api README, feeds.md §2.1): no
    # number is published, so we keep to the 1 request/s that the other aggregators publish.
    "api.adsb.lol": HostLimit(1.0, "adsb.lol: dynamic limit; 1 request/s kept as the common public rate"),
    # 1 request/s in every third-party description (feeds.md §3.1); access is approval-gated since 2026.
    "api.airplanes.live": HostLimit(1.0, "airplanes.live: 1 request/s (feeds.md §3.1)"),
}


def host_limit(url: str) -> HostLimit | None:
    """The known limit for a URL's host, or None for hosts we do not know."""
    host = (urlsplit(url).hostname or "").lower()
    return KNOWN_HOSTS.get(host)
