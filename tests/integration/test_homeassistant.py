"""The homeassistant channel against a real mosquitto, with a paho client subscribed to `homeassistant/#` (and
the states under the [mqtt] prefix) as Home Assistant would be: discovery payloads with the keys Home
Assistant requires and unique ids, the entities following a replayed sortie, the birth message answered
with the configs again, an open sortie's position followed, and the entities removed when the channel is
turned off."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.alerts.delivery import Delivery
from tests.conftest import aircraft, envelope
from tests.integration.alerting import Bench, load_settings, two_sorties, write_alerts_config
from tests.mqtt_broker import Broker, Message, Subscriber

pytestmark = pytest.mark.integration

NODE = "test_62_4134"
OBJECTS = {
    f"homeassistant/{c}/{NODE}/{o}/config"
    for c, o in [("binary_sensor", "on_sortie"), ("device_tracker", "position"), ("sensor", "altitude"),
                 ("sensor", "callsign"), ("sensor", "last_seen")]
}  # fmt: skip
STATE = f"test/ha/{NODE}/state"
LOCATION = f"test/ha/{NODE}/location"


def settings_for(tmp_path: Path, broker: Broker, enabled: bool = True) -> Any:
    tables = f'[[alerts]]\nname = "ha"\nkind = "homeassistant"\nenabled = {"true" if enabled else "false"}\n'
    tables += "state_interval_s = 0.3\n"
    mqtt_section = {"host": "127.0.0.1", "port": broker.plain_port, "topic_prefix": "test", "client_id": "ingest-ha"}
    return load_settings(write_alerts_config(tmp_path, tables, mqtt=mqtt_section), {})


@pytest.fixture
def assistant(mqtt_broker: Broker) -> Iterator[Subscriber]:
    with Subscriber(mqtt_broker.plain_port, "homeassistant/#", client_id="home-assistant") as sub:
        yield sub


@pytest.fixture
def states(mqtt_broker: Broker) -> Iterator[Subscriber]:
    with Subscriber(mqtt_broker.plain_port, "test/#", client_id="states") as sub:
        yield sub


def configs(messages: list[Message]) -> list[tuple[str, dict[str, Any]]]:
    return [(t, json.loads(p)) for t, p, _ in messages if t.endswith("/config") and p]


def published(sub: Subscriber, topic: str) -> list[Any]:
    return [json.loads(p) if p else None for t, p, _ in sub.messages if t == topic]


def wait_delivered(b: Bench, channel: str = "ha", timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = b.states().get(channel)
        if state is not None and state.queued == 0 and state.delivered:
            return
        time.sleep(0.05)
    pytest.fail(f"channel {channel} did not deliver within {timeout_s} s: {b.states()}")


def test_discovery_entities_follow_a_replayed_sortie_birth_and_removal(
    tmp_path: Path, mqtt_broker: Broker, assistant: Subscriber, states: Subscriber
) -> None:
    b = Bench(settings_for(tmp_path, mqtt_broker))
    b.replay(two_sorties(tmp_path))  # 62-4134: start, end, start, end
    d = Delivery(b.settings, b.access)
    d.start()
    try:
        wait_delivered(b)
        assert assistant.wait_for(lambda m: {t for t, _ in configs(m)} >= OBJECTS, 5), assistant.messages
        assert states.wait_for(lambda m: len([1 for t, _, _ in m if t == STATE]) >= 5, 5), states.messages
        found = configs(assistant.messages)
        assert {t for t, _ in found} == OBJECTS and all(retained for t, _, retained in assistant.messages)
        ids = [c["unique_id"] for _, c in found]
        assert len(ids) == len(set(ids)) == 5
        for topic, c in found:
            component, object_id = topic.split("/")[1], topic.split("/")[3]
            assert {"name", "unique_id", "default_entity_id", "availability_topic", "device", "origin"} <= set(c)
            assert "object_id" not in c  # deprecated since Home Assistant 2025.10
            assert c["default_entity_id"] == f"{component}.{NODE}_{object_id}"
            assert c["availability_topic"] == "test/status" and c["origin"]["name"] == "ingest"
            assert c["device"]["identifiers"] == [NODE] and c["device"]["name"] == "62-4134 Boeing RC-135W"
            assert c["device"]["manufacturer"] == "USAF"
            if component == "device_tracker":
                assert c["json_attributes_topic"] == LOCATION and c["source_type"] == "gps"
            else:
                assert c["state_topic"] == STATE and "{{ value_json." in c["value_template"]
        # The entities follow the sortie: on, off, on, off, and where it landed last.
        on = [s["on_sortie"] for s in published(states, STATE)]
        assert on[-4:] == ["ON", "OFF", "ON", "OFF"], on
        assert published(states, STATE)[-1]["sortie_id"] == "ae01ce-20261120T230258Z"
        assert published(states, LOCATION)[-1] == {"latitude": 37.25, "longitude": 125.3, "gps_accuracy": 0}
        assert states.wait_for(lambda m: ("test/status", "online", True) in m, 5)  # the availability topic

        # Home Assistant restarts: its birth message gets every config again.
        before = len(configs(assistant.messages))
        ha = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="ha-birth")
        ha.connect("127.0.0.1", mqtt_broker.plain_port)
        ha.loop_start()
        ha.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)
        assert assistant.wait_for(lambda m: len(configs(m)) >= before + 5, 5), "no re-publish after the birth"
        ha.loop_stop()
        ha.disconnect()
    finally:
        d.stop(2.0)

    # Turned off: the next start empties every discovery topic (Home Assistant removes the entities).
    b.close()
    b = Bench(settings_for(tmp_path, mqtt_broker, enabled=False))
    d = Delivery(b.settings, b.access)
    d.start()
    try:
        assert assistant.wait_for(lambda m: {t for t, p, _ in m if t in OBJECTS and p == ""} == OBJECTS, 10)
        assert states.wait_for(lambda m: (STATE, "", True) in m and (LOCATION, "", True) in m, 5)
    finally:
        d.stop(2.0)
    assert b.states()["ha"].memo == ""
    b.close()


def test_an_open_sortie_s_position_follows_its_sightings(
    tmp_path: Path, mqtt_broker: Broker, states: Subscriber
) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    flying = [aircraft("ae01d2", 37.0 + 0.1 * i, 124.8 + 0.1 * i, alt=31000 + 100 * i) for i in range(6)]
    lines = [envelope([a], now=t0 + timedelta(minutes=i)) for i, a in enumerate(flying)]
    first, rest = tmp_path / "first.ndjson", tmp_path / "rest.ndjson"
    first.write_bytes(b"\n".join(lines[:2]) + b"\n")
    rest.write_bytes(b"\n".join(lines[2:]) + b"\n")
    b = Bench(settings_for(tmp_path, mqtt_broker))
    b.replay(first)
    d = Delivery(b.settings, b.access)
    d.start()
    try:
        wait_delivered(b)
        node = "test_62_4125"
        state, location = f"test/ha/{node}/state", f"test/ha/{node}/location"
        assert states.wait_for(lambda m: any(t == state for t, _, _ in m), 5)
        assert published(states, state)[-1]["on_sortie"] == "ON"
        b.replay(rest)  # more sightings, no event: the state follows them within state_interval_s
        ok = states.wait_for(lambda m: any(t == location and '"latitude":37.5' in p for t, p, _ in m), 5)
        assert ok, published(states, location)
        assert published(states, state)[-1]["alt_baro_ft"] == 31500
        assert published(states, state)[-1]["on_sortie"] == "ON"
    finally:
        d.stop(2.0)
    b.close()
