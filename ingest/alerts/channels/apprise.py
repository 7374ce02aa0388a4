"""The `apprise` channel kind: Telegram, Discord, ntfy, Signal, Matrix, Pushover, e-mail and ~100 more
through Apprise, the only module that imports it.

Each of the channel's URLs is its own Apprise object, so the channel knows which services took an event:
a retry after a partial failure sends only to the others (the delivery row keeps which took it, in the
database). The title and body are alerts/events.py's; start and end carry the sortie's map (a PNG, as
`ingest map` draws it) where the service takes attachments, when `attach_map` is on.

- A service that took the event: done for it. One that failed: Apprise's reason (its log for that call)
  decides: `error=401/403/404` parks the channel, anything else backs off. Apprise itself is told not to
  retry (its `retry=0` default): the channel's own backoff does.
- The map is drawn at most once per event and kept in memory for its retries; drawing takes about 0.35 s
  (matplotlib is imported when the channel opens, off the first alert's path). A map that cannot be drawn
  never holds an alert: it goes without.
- Repeats: a service that took the event while the daemon died before marking it (a few ms) gets it again.
- Apprise URLs carry tokens: they are never logged; messages name the service (`Telegram`) only.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from zoneinfo import ZoneInfo

import apprise
from apprise.attachment.memory import AttachMemory

from ingest.alerts.events import Event, describe
from ingest.alerts.outbox import PERMANENT, Clock, Failure, SequentialChannel, StoreAccess
from ingest.config import AlertSettings
from ingest.errors import ConfigError

log = logging.getLogger("ingest.alerts")
# Apprise's own lines reach us through each call's result (the reason we log, once per episode); left to
# propagate they would repeat every attempt, and its INFO lines every delivery.
logging.getLogger("apprise").propagate = False

MAP_KINDS = frozenset({"start", "end"})
_STATUS = re.compile(r"error=(\d{3})")
_PROBLEMS = frozenset({"WARNING", "ERROR", "CRITICAL"})

# (sortie_id) -> PNG bytes, or None when there is nothing to draw
MapSource = Callable[[str], bytes | None]


def check_urls(settings: AlertSettings) -> None:
    """ConfigError naming the channel's urls key for a URL Apprise does not know (never the URL: secrets)."""
    for n, url in enumerate(settings.urls.split(), 1):
        if apprise.Apprise.instantiate(url) is None:
            raise ConfigError(
                f"alerts[{settings.index}].urls", "environment",
                f"URL {n} of {settings.name} is not one Apprise can use (check its scheme and fields)",
            )  # fmt: skip


class AppriseChannel(SequentialChannel):
    def __init__(self, settings: AlertSettings, access: StoreAccess, clock: Clock, maps: MapSource | None) -> None:
        super().__init__(settings, access, clock)
        self.tz = ZoneInfo(settings.timezone) if settings.timezone else None
        self.services: list[apprise.Apprise] = []
        self.names: list[str] = []
        self.attachments: list[bool] = []
        for url in settings.urls.split():
            a = apprise.Apprise()
            if not a.add(url):
                raise ConfigError(f"alerts[{settings.index}].urls", "environment", "a URL Apprise cannot use")
            server = a[0]
            self.services.append(a)
            self.names.append(str(getattr(server, "service_name", None) or type(server).__name__))
            self.attachments.append(bool(getattr(server, "attachment_support", False)))
        self.maps = maps if settings.attach_map and any(self.attachments) else None
        self._map_cache: dict[str, bytes | None] = {}
        self._took: dict[int, set[int]] = {}  # outbox id -> the services that took it (also in the database)

    def open(self) -> None:
        super().open()
        if self.maps is not None:  # import matplotlib now, not on the first alert's path
            threading.Thread(target=_warm_maps, name=f"ingest-map-{self.name}", daemon=True).start()

    def send(self, event: Event) -> Failure | None:
        text = describe(event, self.tz)
        done = {int(i) for i in event.progress.split(",") if i.isdigit()} | self._took.get(event.outbox_id, set())
        picture = self._map(event)
        failure: Failure | None = None
        for i, (service, name) in enumerate(zip(self.services, self.names, strict=True)):
            if i in done:
                continue
            attach = None
            if picture is not None and self.attachments[i]:
                name = f"{event.sortie_id or 'sortie'}.png"
                attach = AttachMemory(content=picture, name=name, mimetype="image/png")  # type: ignore[no-untyped-call]
            result = service.notify(body=text.body, title=text.title, attach=attach, timeout=self.settings.timeout_s)
            if result:
                done.add(i)
                continue
            reason = " ".join(e.message for e in result.logs() if e.level in _PROBLEMS and e.message).strip()
            status = _STATUS.search(reason)
            code = int(status.group(1)) if status else None
            words = f"{name}: {reason or result.status.name.lower()}"
            failure = Failure(words, permanent=code in PERMANENT) if failure is None else failure
        if failure is not None and done:
            self._took[event.outbox_id] = done
            progress = ",".join(str(i) for i in sorted(done))
            self.access(lambda store: store.note_progress(self.name, event.outbox_id, progress))
        if failure is None:
            self._map_cache.pop(event.event_id, None)
            self._took.pop(event.outbox_id, None)
        return failure

    def _map(self, event: Event) -> bytes | None:
        if self.maps is None or event.kind not in MAP_KINDS or not event.sortie_id:
            return None
        if event.event_id not in self._map_cache:
            try:
                self._map_cache[event.event_id] = self.maps(event.sortie_id)
            except Exception:  # a map is a bonus: the alert goes without it
                log.warning("alerts channel %s: could not draw the map of %s", self.name, event.sortie_id,
                            exc_info=True)  # fmt: skip
                self._map_cache[event.event_id] = None
        return self._map_cache[event.event_id]


def _warm_maps() -> None:
    try:
        import ingest.mapping  # noqa: F401 - matplotlib's import is most of a first map's time
    except Exception:  # the map is drawn without the warm-up, or not at all
        log.debug("could not import the map renderer", exc_info=True)
