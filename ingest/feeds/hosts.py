"""Published limits and routes of the public hosts we know. A host not listed here (a local receiver,
a test server on 127.0.0.1) has no minimum spacing between requests."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

# The v2 circle route of adsb.fi, adsb.lol and ADSBx (feeds.md §1.1, §2.1, §4.1).
AREA_ROUTE = "lat/{lat}/lon/{lon}/dist/{nm}"

# airplanes.live answers 403 to everyone it has not approved (feeds.md §3.2-3.3).
_AIRPLANES_LIVE_ASK = (
    "access must be requested from airplanes.live (contact@airplanes.live, with a link to and a "
    "description of the project and its user base)"
)
AIRPLANES_LIVE_KEY_REFUSED = f"the key was refused; {_AIRPLANES_LIVE_ASK}"


@dataclass(frozen=True, slots=True)
class HostLimit:
    """How often a public host may be asked, which v2 routes take a registration list and a circle, and
    what to do when it refuses access."""

    min_request_spacing_s: float
    source: str  # where the limit is published
    reg_route: str = "reg"
    area_route: str = AREA_ROUTE
    access_hint: str = ""


KNOWN_HOSTS: dict[str, HostLimit] = {
    # "The public endpoints are rate limited to 1 request per second" (adsbfi/opendata README, feeds.md §1.1).
    # Its README lists /v2/registration/, not /v2/reg/.
    "opendata.adsb.fi": HostLimit(1.0, "adsb.fi open data README: 1 request/s", reg_route="registration"),
    # "Rate limits are dynamic based on the environment load" (adsblol/api README, feeds.md §2.1): no
    # number is published, so we keep to the 1 request/s that the other aggregators publish.
    "api.adsb.lol": HostLimit(1.0, "adsb.lol: dynamic limit; 1 request/s kept as the common public rate"),
    # 1 request/s in every third-party description (feeds.md §3.1); access is approval-gated since 2026.
    # Its v2 API lists /v2/point/ for circles.
    "api.airplanes.live": HostLimit(
        1.0,
        "airplanes.live: 1 request/s (feeds.md §3.1)",
        area_route="point/{lat}/{lon}/{nm}",
        access_hint=f"{_AIRPLANES_LIVE_ASK}; then use kind airplanes-live with the key it gives",
    ),
    # The key-gated REST API (kind airplanes-live): 1 request/s in the third-party descriptions (§3.3).
    "rest.api.airplanes.live": HostLimit(
        1.0,
        "airplanes.live REST API: 1 request/s (feeds.md §3.3)",
        access_hint=AIRPLANES_LIVE_KEY_REFUSED,
    ),
}


def host_limit(url: str) -> HostLimit | None:
    """The known limit for a URL's host, or None for hosts we do not know."""
    host = (urlsplit(url).hostname or "").lower()
    return KNOWN_HOSTS.get(host)
