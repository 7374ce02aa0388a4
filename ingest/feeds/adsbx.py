"""ADS-B Exchange (kind `adsbx`): the RapidAPI community API or the enterprise gateway (feeds.md §4).

`auth` picks the API and its key header; the key comes from INGEST_FEEDS_<NAME>_API_KEY or api_key_file
and travels in that header only:

- "rapidapi": `https://adsbexchange-com1.p.rapidapi.com/v2/.../` (every path ends with `/`), headers
  `X-RapidAPI-Key` and `X-RapidAPI-Host: adsbexchange-com1.p.rapidapi.com` (§4.1);
- "x-api-key" or "api-auth": `https://gateway.adsbexchange.com/api/aircraft/v2/...` with the key in the
  header of that name (the OpenAPI says `x-api-key`, ADSBx's sample page `api-auth`) and the required
  `Accept-Encoding: gzip` (§4.2). The gateway answers a single hex with a bare object, not a collection:
  a one-hex list gets a trailing comma (`/hex/a1b2c3,`), and the parser reads a bare object anyway.

The queries and the parser are the readsb-v2 ones (ReadsbFamilyFeed). ADSBx publishes no per-second
limit (RapidAPI plans have a monthly quota; the gateway's is in the contract), so no spacing is imposed.
"""

from __future__ import annotations

from ingest.config import FeedSettings
from ingest.feeds.base import FeedContext, FeedRequest
from ingest.feeds.hosts import host_limit
from ingest.feeds.readsb import FeedSettingError, ReadsbFamilyFeed, SecretHeaders, http_base, require_api_key

RAPIDAPI_HOST = "adsbexchange-com1.p.rapidapi.com"
RAPIDAPI_BASE = f"https://{RAPIDAPI_HOST}"
GATEWAY_BASE = "https://gateway.adsbexchange.com/api/aircraft/v2"
AUTH_STYLES = ("rapidapi", "x-api-key", "api-auth")

ACCESS_HINT = "ADS-B Exchange refused the key: check api_key, that auth ({}) matches it, and the plan's quota"


class AdsbxFeed(ReadsbFamilyFeed):
    """ADSBx over RapidAPI or the gateway: the readsb-v2 queries with a key header."""

    def __init__(self, settings: FeedSettings, context: FeedContext) -> None:
        auth = settings.auth.strip().lower()
        if auth not in AUTH_STYLES:
            raise FeedSettingError(
                settings, "auth", f"adsbx needs auth = one of {', '.join(AUTH_STYLES)}, not {settings.auth!r}"
            )
        key = require_api_key(settings)
        self.auth = auth
        if auth == "rapidapi":
            base = http_base(settings, RAPIDAPI_BASE)
            self._prefix, self._suffix = "/v2", "/"
            self._headers = SecretHeaders({"X-RapidAPI-Key": key, "X-RapidAPI-Host": RAPIDAPI_HOST})
        else:
            base = http_base(settings, GATEWAY_BASE)
            self._prefix, self._suffix = "", ""
            self._headers = SecretHeaders({auth: key, "Accept-Encoding": "gzip"})
        super().__init__(settings, context, base, host_limit(base))

    @property
    def access_hint(self) -> str:
        return ACCESS_HINT.format(self.auth)

    def _request(self, path: str, safe_path: str) -> FeedRequest:
        return FeedRequest(
            self.name,
            f"{self._base}{self._prefix}/{path}{self._suffix}",
            f"{self._base}{self._prefix}/{safe_path}{self._suffix}",
            SecretHeaders(self._headers),
        )

    def _hex_request(self, items: list[str]) -> FeedRequest:
        # The gateway answers one hex with a bare object; a trailing comma makes it a collection (§4.2).
        tail = "," if len(items) == 1 and self.auth != "rapidapi" else ""
        return self._request(f"hex/{','.join(items)}{tail}", f"hex/<{len(items)} items>")

    def _reg_request(self, items: list[str]) -> FeedRequest:
        return self._request(f"registration/{','.join(items)}", f"registration/<{len(items)} items>")

    def _area_request(self, lat: float, lon: float, radius_nm: int) -> FeedRequest:
        path = f"lat/{lat:.4f}/lon/{lon:.4f}/dist/{radius_nm}"
        return self._request(path, path)

    def _mil_request(self) -> FeedRequest:
        return self._request("mil", "mil")
