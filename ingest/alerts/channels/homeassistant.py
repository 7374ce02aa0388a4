"""The `homeassistant` channel kind: Home Assistant's MQTT discovery, over the [mqtt] broker connection.

One device per watched aircraft that has flown (and that the channel's filter takes), with five entities:

    binary_sensor  On sortie      ON while a sortie is open
    device_tracker Position       attributes latitude / longitude / gps_accuracy (json_attributes_topic)
    sensor         Altitude       ft, barometric
    sensor         Callsign
    sensor         Last seen      a timestamp

- Discovery configs go to `{discovery_prefix}/{component}/{node_id}/{object_id}/config`, retained, and are
  published again when Home Assistant's birth message (`{discovery_prefix}/status` = `online`) arrives
  and after every reconnect, with the states. Each entity has a `unique_id` and a `default_entity_id`
  (`binary_sensor.ingest_62_4125_on_sortie`; `object_id` is deprecated since Home Assistant 2025.10), the
  device (`identifiers`, name, model, manufacturer = operator) and the origin (`o`: ingest).
- Availability is the connection's `{topic_prefix}/status` (`online`, and `offline` as last will).
- States: `{topic_prefix}/ha/{node}/state` (JSON: on_sortie, alt_baro_ft, callsign, last_seen, sortie_id)
  and `{topic_prefix}/ha/{node}/location` (latitude, longitude, gps_accuracy), retained. Events set them at
  once (start, end, orbit, emergency); while a sortie is open its latest stored sighting updates them at most
  every `state_interval_s`.
- Turned off (`enabled = false` or the table removed), the next start publishes an empty retained payload
  to every discovery topic it made, which removes the entities, and clears the states; the topics are kept
  in the database (alert_channels.memo) for that.

Delivery: an event is marked delivered once its state messages are acknowledged (PUBACK). States are
idempotent, so a repeat after a crash changes nothing.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ingest.alerts.channels.mqtt import MqttHub
from ingest.alerts.events import Event
from ingest.alerts.outbox import IDLE_S, Channel, Clock, Failure, SequentialChannel, StoreAccess
from ingest.alerts.routing import AircraftFacts, aircraft_wanted
from ingest.config import AlertSettings
from ingest.models import Sortie
from ingest.timeutil import iso_z

log = logging.getLogger("ingest.alerts")

ACK_TIMEOUT_S = 10.0  # an event's state messages must be acknowledged within this
_SLUG = re.compile(r"[^a-z0-9]+")
ORIGIN = {"name": "ingest", "url": "https://github.com/ingest-adsb/ingest"}
# (component, object_id, name, what the entity reads)
ENTITIES: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("binary_sensor", "on_sortie", "On sortie",
     {"value_template": "{{ value_json.on_sortie }}", "payload_on": "ON", "payload_off": "OFF",
      "icon": "mdi:airplane"}),
    ("device_tracker", "position", "Position", {"source_type": "gps", "icon": "mdi:airplane-marker"}),
    ("sensor", "altitude", "Altitude",
     {"value_template": "{{ value_json.alt_baro_ft }}", "unit_of_measurement": "ft", "device_class": "distance",
      "state_class": "measurement", "icon": "mdi:altimeter"}),
    ("sensor", "callsign", "Callsign", {"value_template": "{{ value_json.callsign }}", "icon": "mdi:card-text"}),
    ("sensor", "last_seen", "Last seen", {"value_template": "{{ value_json.last_seen }}", "device_class": "timestamp"}),
)  # fmt: skip


def slug(text: str) -> str:
    return _SLUG.sub("_", text.lower()).strip("_") or "x"


@dataclass(frozen=True, slots=True)
class Aircraft:
    """An aircraft as a Home Assistant device."""

    facts: AircraftFacts

    @property
    def label(self) -> str:
        return self.facts.registration or self.facts.hex_icao or self.facts.key


class Topics:
    """Where one channel's messages go."""

    def __init__(self, discovery_prefix: str, base: str, status_topic: str) -> None:
        self.discovery_prefix = discovery_prefix
        self.base = base
        self.status_topic = status_topic

    def node(self, key: str) -> str:
        return f"{slug(self.base)}_{slug(key)}"

    def state(self, key: str) -> str:
        return f"{self.base}/ha/{self.node(key)}/state"

    def location(self, key: str) -> str:
        return f"{self.base}/ha/{self.node(key)}/location"

    def config(self, component: str, key: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node(key)}/{object_id}/config"

    def birth(self) -> str:
        return f"{self.discovery_prefix}/status"


def discovery(topics: Topics, aircraft: Aircraft, version: str) -> list[tuple[str, dict[str, Any]]]:
    """Every discovery config of one aircraft's device: (topic, payload)."""
    f = aircraft.facts
    node = topics.node(f.key)
    device: dict[str, Any] = {
        "identifiers": [node],
        "name": " ".join(x for x in (aircraft.label, f.type_name or f.icao_type) if x),
        "model": f.type_name or f.icao_type or "aircraft",
        "serial_number": f.hex_icao,
    }
    if f.operator:
        device["manufacturer"] = f.operator
    configs = []
    for component, object_id, name, reads in ENTITIES:
        config: dict[str, Any] = {
            "name": name,
            "unique_id": f"{node}_{object_id}",
            "default_entity_id": f"{component}.{node}_{object_id}",
            "availability_topic": topics.status_topic,
            "device": device,
            "origin": {**ORIGIN, "sw_version": version},
            "qos": 1,
            **reads,
        }
        if component == "device_tracker":
            config["json_attributes_topic"] = topics.location(f.key)
        else:
            config["state_topic"] = topics.state(f.key)
        configs.append((topics.config(component, f.key, object_id), config))
    return configs


def _state(on_sortie: bool, alt: Any, callsign: Any, last_seen: Any, sortie_id: Any) -> dict[str, Any]:
    return {"on_sortie": "ON" if on_sortie else "OFF", "alt_baro_ft": alt, "callsign": callsign,
            "last_seen": last_seen, "sortie_id": sortie_id}  # fmt: skip


def _location(lat: Any, lon: Any) -> dict[str, Any] | None:
    if not isinstance(lat, int | float) or not isinstance(lon, int | float):
        return None
    return {"latitude": lat, "longitude": lon, "gps_accuracy": 0}


class HomeAssistantChannel(SequentialChannel):
    """Discovery configs and states of the aircraft; see the module docstring."""

    def __init__(
        self, settings: AlertSettings, access: StoreAccess, clock: Clock, hub: MqttHub, base: str, version: str
    ) -> None:
        super().__init__(settings, access, clock)
        self.hub = hub
        self.version = version
        self.topics = Topics(settings.discovery_prefix, base, hub.status_topic)
        hub.attach(self.wake)
        self._born = threading.Event()
        hub.subscribe(self.topics.birth(), self._birth)
        self._seen_connections = 0
        self.published: set[str] = set()  # discovery topics made (kept in the database, to remove them)
        self.devices: set[str] = set()  # keys whose discovery went out since the last (re)connect
        self.on_sortie: set[str] = set()  # keys with an open sortie: their state follows their sightings
        self._last_state: dict[str, str] = {}
        self._next_refresh = 0.0

    def _birth(self, topic: str, payload: bytes) -> None:  # paho's thread: signal only
        if payload.strip().lower() == b"online":
            self._born.set()
            self.wake.set()

    def open(self) -> None:
        super().open()
        memo = _memo(self.access, self.name)
        self.published = set(memo.get("topics", []))

    def pump(self) -> float:
        if not self.hub.is_connected():
            return 1.0  # the connection logs its own outage; events wait
        if self.hub.connections != self._seen_connections or self._born.is_set():
            reason = "Home Assistant came online" if self._born.is_set() else "connected"
            self._born.clear()
            self._seen_connections = self.hub.connections
            self.sync(reason)
        refresh_in = self.refresh()
        self.hub.take_acks(self.name)  # those of sync and refresh: nobody waits for them
        wait = super().pump()
        return min(wait, refresh_in)

    def sync(self, reason: str) -> None:
        """Every flown aircraft's discovery configs and state, again (after a connect or HA's birth)."""
        self.devices.clear()
        count = 0
        for sortie, category, tags in self.access(lambda store: store.latest_sorties()):
            facts = AircraftFacts(
                sortie.key, sortie.registration, sortie.hex_icao, sortie.type_icao, sortie.operator,
                sortie.type_name, category, tuple(t for t in (tags or "").split(",") if t),
            )  # fmt: skip
            if not aircraft_wanted(self.settings, facts):
                continue
            self._announce(Aircraft(facts))
            self._publish_sortie(sortie)
            count += 1
        log.info("alerts channel %s: %s; published %d aircraft to Home Assistant", self.name, reason, count)

    def _announce(self, aircraft: Aircraft) -> list[int]:
        """Publish an aircraft's discovery configs once per connection; remember their topics."""
        key = aircraft.facts.key
        if key in self.devices:
            return []
        mids = []
        configs = discovery(self.topics, aircraft, self.version)
        for topic, config in configs:
            mid = self.hub.publish(self.name, topic, json.dumps(config, separators=(",", ":")), retain=True)
            if mid is not None:
                mids.append(mid)
        self.devices.add(key)
        new = {t for t, _ in configs} - self.published
        if new:
            self.published |= new
            memo = json.dumps({"topics": sorted(self.published), "base": self.topics.base}, separators=(",", ":"))
            self.access(lambda store: store.set_channel_memo(self.name, self.kind, memo))
        return mids

    def _publish_sortie(self, s: Sortie) -> list[int]:
        if s.is_open:
            self.on_sortie.add(s.key)
        else:
            self.on_sortie.discard(s.key)
        state = _state(s.is_open, s.last.alt_baro_ft, s.last.callsign, iso_z(s.last_seen_at), s.sortie_id)
        return self._publish_state(s.key, state, _location(s.last.lat_deg, s.last.lon_deg))

    def _publish_state(self, key: str, state: dict[str, Any], location: dict[str, Any] | None) -> list[int]:
        mids = []
        text = json.dumps(state, separators=(",", ":"))
        self._last_state[key] = text
        for topic, payload in ((self.topics.state(key), text), (self.topics.location(key), location)):
            if payload is None:
                continue
            body = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
            mid = self.hub.publish(self.name, topic, body, retain=True)
            if mid is not None:
                mids.append(mid)
        return mids

    def refresh(self) -> float:
        """An open sortie's latest sighting as its state, at most every state_interval_s; seconds to the next."""
        if not self.on_sortie:
            return IDLE_S
        now = time.monotonic()
        if now < self._next_refresh:
            return self._next_refresh - now
        self._next_refresh = now + self.settings.state_interval_s
        since = self.clock() - timedelta(hours=1)
        for row in self.access(lambda store: store.latest_positions(since)):
            key = row.get("key")
            if key not in self.on_sortie:
                continue
            sortie_id = json.loads(self._last_state.get(key, "{}")).get("sortie_id")
            state = _state(True, row.get("alt_baro_ft"), row.get("callsign"), row.get("time"), sortie_id)
            if json.dumps(state, separators=(",", ":")) != self._last_state.get(key):
                self._publish_state(key, state, _location(row.get("lat"), row.get("lon")))
        return self.settings.state_interval_s

    def send(self, event: Event) -> Failure | None:
        if not self.hub.is_connected():
            return Failure("not connected to the mqtt broker")
        p = event.payload
        key = event.aircraft.key
        mids = self._announce(Aircraft(event.aircraft))
        on = event.kind != "end"
        if on:
            self.on_sortie.add(key)
        else:
            self.on_sortie.discard(key)
        state = _state(on, p.get("alt_baro_ft"), p.get("callsign"), p.get("time"), p.get("sortie_id"))
        where = None if event.kind == "orbit" else _location(p.get("lat"), p.get("lon"))  # an orbit's is its centre
        mids += self._publish_state(key, state, where)
        return self._await(mids)

    def _await(self, mids: Sequence[int]) -> Failure | None:
        waiting = set(mids)
        self.hub.wake_after(self.name, 1)
        deadline = time.monotonic() + ACK_TIMEOUT_S
        while waiting:
            for mid, ok, reason in self.hub.take_acks(self.name):
                if mid in waiting and not ok:
                    return Failure(f"the broker refused a state message: {reason}")
                waiting.discard(mid)
            left = deadline - time.monotonic()
            if not waiting or left <= 0:
                break
            self.wake.wait(min(left, 0.5))
            self.wake.clear()
        return Failure(f"no PUBACK within {ACK_TIMEOUT_S:g} s") if waiting else None


def _memo(access: StoreAccess, channel: str) -> dict[str, Any]:
    state = next((s for s in access(lambda store: store.channel_states()) if s.channel == channel), None)
    if state is None or not state.memo:
        return {}
    try:
        value = json.loads(state.memo)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class HomeAssistantRemoval(Channel):
    """A homeassistant channel turned off: empties its discovery topics (removing the entities) and its
    states, once connected, then forgets the channel. Runs until done or stopped."""

    def __init__(self, name: str, access: StoreAccess, clock: Clock, hub: MqttHub, memo: dict[str, Any]) -> None:
        from ingest.config import ALERT_KEYS, AlertSettings  # a channel's settings, only to carry its name

        values = {k.name: k.default for k in ALERT_KEYS}
        values.update(name=name, kind="homeassistant", enabled=False)
        super().__init__(AlertSettings(**values), access, clock)
        self.hub = hub
        hub.attach(self.wake)
        self.topics = [t for t in memo.get("topics", []) if isinstance(t, str)]
        base = memo.get("base")
        if isinstance(base, str):  # the state topics of the same devices
            nodes = {t.split("/")[-3] for t in self.topics if t.count("/") >= 3}
            self.topics += [f"{base}/ha/{node}/{what}" for node in sorted(nodes) for what in ("state", "location")]
        self.done = False

    def open(self) -> None:
        """Nothing to note: the channel is being removed."""

    def pump(self) -> float:
        if self.done:
            return IDLE_S
        if not self.hub.is_connected():
            return 1.0
        mids = {mid for t in self.topics if (mid := self.hub.publish(self.name, t, "", retain=True)) is not None}
        deadline = time.monotonic() + ACK_TIMEOUT_S
        while mids and time.monotonic() < deadline:
            mids -= {mid for mid, _, _ in self.hub.take_acks(self.name)}
            self.wake.wait(0.2)
            self.wake.clear()
        if mids:
            return 5.0  # try again
        self.access(lambda store: store.remove_channel(self.name))
        log.info("alerts channel %s (homeassistant) is off: removed its %d retained topics", self.name,
                 len(self.topics))  # fmt: skip
        self.done = True
        return IDLE_S

    def settled(self) -> bool:
        return self.done or not self.hub.is_connected()
