"""airplanes.live's key-gated REST API (kind `airplanes-live`, feeds.md §3.3).

readsb re-api queries on `https://rest.api.airplanes.live/` with `&jv2` (the `ac` envelope, `now` in ms):
`?find_hex=a,b&jv2`, `?find_reg=...&jv2`, `?circle=lat,lon,nm&jv2` and `?all&filter_mil&jv2` (presence-only
flags are written without `=`, which the API requires). The key goes in the `auth` header, never in the
query string. airplanes.live answers 403 to everyone it has not approved (§3.2): the pacing parks the
feed for an hour, and `access_hint` says that access must be requested from airplanes.live.
"""

from __future__ import annotations

from ingest.config import FeedSettings
from ingest.feeds.base import FeedContext, FeedRequest
from ingest.feeds.hosts import AIRPLANES_LIVE_KEY_REFUSED, host_limit
from ingest.feeds.readsb import ReadsbFamilyFeed, SecretHeaders, http_base, require_api_key

REST_BASE = "https://rest.api.airplanes.live"


class AirplanesLiveFeed(ReadsbFamilyFeed):
    """airplanes.live REST: the readsb-v2 queries as re-api query strings, with an `auth` header."""

    def __init__(self, settings: FeedSettings, context: FeedContext) -> None:
        self._headers = SecretHeaders({"auth": require_api_key(settings)})
        base = http_base(settings, REST_BASE)
        super().__init__(settings, context, base, host_limit(base))

    @property
    def access_hint(self) -> str:
        return AIRPLANES_LIVE_KEY_REFUSED

    def _request(self, query: str, safe_query: str) -> FeedRequest:
        return FeedRequest(
            self.name, f"{self._base}/?{query}&jv2", f"{self._base}/?{safe_query}&jv2", SecretHeaders(self._headers)
        )

    def _hex_request(self, items: list[str]) -> FeedRequest:
        return self._request(f"find_hex={','.join(items)}", f"find_hex=<{len(items)} items>")

    def _reg_request(self, items: list[str]) -> FeedRequest:
        return self._request(f"find_reg={','.join(items)}", f"find_reg=<{len(items)} items>")

    def _area_request(self, lat: float, lon: float, radius_nm: int) -> FeedRequest:
        query = f"circle={lat:.4f},{lon:.4f},{radius_nm}"
        return self._request(query, query)

    def _mil_request(self) -> FeedRequest:
        return self._request("all&filter_mil", "all&filter_mil")
