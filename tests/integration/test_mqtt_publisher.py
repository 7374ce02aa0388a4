"""MqttPublisher against a real mosquitto (tests/mqtt_broker.py): QoS 1 acks, the retained status topic and
its last will, outages at start and while connected, password and TLS set-up, and what gets logged."""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ingest.alerts.mqtt import MqttOptions, MqttPublisher
from ingest.errors import AlertError
from tests.conftest import REPO
from tests.mqtt_broker import HOST, Broker, Subscriber

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOGGER = "ingest.alerts.mqtt"
PREFIX = "adsb-test"
ALERTS = f"{PREFIX}/alerts"
WRONG_PASSWORD = "wr0ng-pa55word"

PublisherFactory = Callable[..., MqttPublisher]


def options(port: int, **overrides: Any) -> MqttOptions:
    base = MqttOptions(
        host=HOST,
        port=port,
        topic_prefix=PREFIX,
        client_id=f"ingest-test-{uuid.uuid4().hex[:8]}",
        keepalive_s=5,
        reconnect_min_s=0.1,
        reconnect_max_s=1.0,
    )
    return replace(base, **overrides)


@pytest.fixture
def make_publisher() -> Iterator[PublisherFactory]:
    """Build (not start) publishers; each is stopped at teardown."""
    made: list[MqttPublisher] = []

    def make(port: int, **overrides: Any) -> MqttPublisher:
        publisher = MqttPublisher(options(port, **overrides))
        made.append(publisher)
        return publisher

    yield make
    for publisher in made:
        publisher.stop(timeout_s=1)


def wait_acks(publisher: MqttPublisher, mids: set[int], timeout_s: float = 5.0) -> dict[int, tuple[bool, str]]:
    """Collect acks until every mid in `mids` has one (or the timeout); returns all acks seen."""
    seen: dict[int, tuple[bool, str]] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for mid, ok, reason in publisher.take_acks():
            seen[mid] = (ok, reason)
        if mids <= seen.keys():
            break
        time.sleep(0.02)
    return seen


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == level]


def never_connects(publisher: MqttPublisher, for_s: float = 1.5) -> bool:
    return not publisher.wait_connected(for_s) and not publisher.is_connected()


def test_publish_is_acked_with_its_mid_and_delivered_once(
    mqtt_broker: Broker, make_publisher: PublisherFactory
) -> None:
    publisher = make_publisher(mqtt_broker.plain_port)
    with Subscriber(mqtt_broker.plain_port, f"{ALERTS}/#") as sub:
        publisher.start()
        assert publisher.wait_connected(5)
        mid = publisher.publish(f"{ALERTS}/ae01d2", '{"alert_id": 1}')
        assert mid is not None

        acks = wait_acks(publisher, {mid})
        assert acks == {mid: (True, "Success")}  # the "online" status ack is not reported
        assert sub.wait_for(lambda m: len(m) >= 1)
        time.sleep(0.3)  # a duplicate would arrive within this
        assert sub.messages == [(f"{ALERTS}/ae01d2", '{"alert_id": 1}', False)]


def test_no_subscriber_is_still_a_successful_ack(mqtt_broker: Broker, make_publisher: PublisherFactory) -> None:
    publisher = make_publisher(mqtt_broker.plain_port)
    publisher.start()
    assert publisher.wait_connected(5)
    mid = publisher.publish(f"{ALERTS}/nobody", "x")
    assert mid is not None
    assert wait_acks(publisher, {mid}) == {mid: (True, "No matching subscribers")}


def test_status_is_retained_online_after_connect_and_offline_after_stop(
    mqtt_broker: Broker, make_publisher: PublisherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    publisher = make_publisher(mqtt_broker.plain_port)
    assert publisher.status_topic == f"{PREFIX}/status"
    publisher.start()
    assert publisher.wait_connected(5)
    assert [r.getMessage() for r in records(caplog, logging.INFO)] == [
        f"connected to mqtt {HOST}:{mqtt_broker.plain_port}"
    ]

    with Subscriber(mqtt_broker.plain_port, publisher.status_topic, client_id="late-1") as late:
        assert late.wait_for(lambda m: (publisher.status_topic, "online", True) in m)

    publisher.stop()
    assert not publisher.is_connected()
    with Subscriber(mqtt_broker.plain_port, publisher.status_topic, client_id="late-2") as late:
        assert late.wait_for(lambda m: len(m) >= 1)
        assert late.messages == [(publisher.status_topic, "offline", True)]
    assert publisher.take_acks() == []  # neither status publish shows up as an alert ack


LWT_CHILD = """
import sys, time
from ingest.alerts.mqtt import MqttOptions, MqttPublisher
publisher = MqttPublisher(MqttOptions(host="127.0.0.1", port=int(sys.argv[1]), topic_prefix=sys.argv[2],
                                      client_id="lwt-child", keepalive_s=5, reconnect_min_s=0.1, reconnect_max_s=1))
publisher.start()
if not publisher.wait_connected(5):
    sys.exit("not connected")
print("connected", flush=True)
time.sleep(60)
"""


def test_killed_publisher_leaves_retained_offline_via_its_will(mqtt_broker: Broker) -> None:
    status = f"{PREFIX}/status"
    with Subscriber(mqtt_broker.plain_port, status) as sub:
        child = subprocess.Popen(
            [sys.executable, "-c", LWT_CHILD, str(mqtt_broker.plain_port), PREFIX],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "connected"
            assert sub.wait_for(lambda m: (status, "online", True) in m)
            child.send_signal(signal.SIGKILL)
            child.wait(5)
            assert sub.wait_for(lambda m: bool(m) and m[-1] == (status, "offline", True), timeout_s=5)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(5)
            if child.stdout is not None:
                child.stdout.close()
    with Subscriber(mqtt_broker.plain_port, status, client_id="late") as late:
        assert late.wait_for(lambda m: len(m) >= 1)
        assert late.messages == [(status, "offline", True)]


def test_broker_down_at_start_then_up_connects_by_itself(
    mqtt_broker: Broker, make_publisher: PublisherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    mqtt_broker.stop()
    publisher = make_publisher(mqtt_broker.plain_port)
    publisher.start()  # does not raise
    assert never_connects(publisher, for_s=1.0)
    warnings = [r.getMessage() for r in records(caplog, logging.WARNING)]
    assert warnings == [
        f"mqtt broker {HOST}:{mqtt_broker.plain_port} unreachable: Connection refused; retrying with backoff up to 1 s"
    ]

    mqtt_broker.start()
    assert publisher.wait_connected(5)
    mid = publisher.publish(f"{ALERTS}/late", "x")
    assert mid is not None
    assert wait_acks(publisher, {mid}) == {mid: (True, "No matching subscribers")}
    assert len(records(caplog, logging.WARNING)) == 1
    assert records(caplog, logging.ERROR) == []


def test_outage_while_connected_logs_once_and_queued_message_is_delivered_after_restart(
    tmp_path: Path, make_publisher: PublisherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    # Persistence keeps the subscriber's session (and so its subscription) across the broker restart.
    broker = Broker(tmp_path / "broker", persistence=True)
    broker.start()
    try:
        with Subscriber(broker.plain_port, f"{ALERTS}/#", session_expiry_s=300) as sub:
            publisher = make_publisher(broker.plain_port)
            publisher.start()
            assert publisher.wait_connected(5)

            broker.stop()
            deadline = time.monotonic() + 5
            while publisher.is_connected() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not publisher.is_connected()
            mid = publisher.publish(f"{ALERTS}/during-outage", '{"alert_id": 7}')
            assert mid is not None  # MQTT_ERR_NO_CONN, but paho keeps the QoS 1 message
            time.sleep(1.5)  # several failed reconnects: still only one warning
            assert publisher.take_acks() == []

            broker.start()
            assert publisher.wait_connected(5)
            acks = wait_acks(publisher, {mid})
            assert acks.get(mid, (False, ""))[0], acks
            assert sub.wait_for(lambda m: (f"{ALERTS}/during-outage", '{"alert_id": 7}', False) in m)

        warnings = [r.getMessage() for r in records(caplog, logging.WARNING)]
        assert len(warnings) == 1, warnings
        assert warnings[0].startswith(f"mqtt broker {HOST}:{broker.plain_port} unreachable: ")
        assert warnings[0].endswith("; retrying with backoff up to 1 s")
        infos = [r.getMessage() for r in records(caplog, logging.INFO)]
        assert any(m.startswith(f"reconnected to mqtt {HOST}:{broker.plain_port} after ") for m in infos), infos
        assert records(caplog, logging.ERROR) == []
        publisher.stop()
    finally:
        broker.stop()


def test_wrong_password_is_logged_once_without_the_password(
    mqtt_broker: Broker, make_publisher: PublisherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    publisher = make_publisher(mqtt_broker.password_port, username=mqtt_broker.username, password=WRONG_PASSWORD)
    assert WRONG_PASSWORD not in repr(publisher._options)
    publisher.start()
    assert never_connects(publisher, for_s=2.0)  # long enough for several refused attempts

    errors = [r.getMessage() for r in records(caplog, logging.ERROR)]
    assert len(errors) == 1, errors
    assert f"{HOST}:{mqtt_broker.password_port}" in errors[0]
    assert "Not authorized" in errors[0] or "Bad user name or password" in errors[0]
    assert records(caplog, logging.WARNING) == []
    for record in caplog.records:
        assert WRONG_PASSWORD not in record.getMessage()
        assert WRONG_PASSWORD not in (record.exc_text or "")


def test_right_password_connects_and_publishes(mqtt_broker: Broker, make_publisher: PublisherFactory) -> None:
    publisher = make_publisher(mqtt_broker.password_port, username=mqtt_broker.username, password=mqtt_broker.password)
    publisher.start()
    assert publisher.wait_connected(5)
    mid = publisher.publish(f"{ALERTS}/auth", "x")
    assert mid is not None
    assert wait_acks(publisher, {mid})[mid][0]


def test_no_password_on_the_password_listener_is_refused(
    mqtt_broker: Broker, make_publisher: PublisherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    publisher = make_publisher(mqtt_broker.password_port)
    publisher.start()
    assert never_connects(publisher)
    assert len(records(caplog, logging.ERROR)) == 1


def test_tls_with_the_right_ca_connects_and_publishes(mqtt_broker: Broker, make_publisher: PublisherFactory) -> None:
    publisher = make_publisher(mqtt_broker.tls_port, tls=True, ca_file=mqtt_broker.certs.ca_file)
    publisher.start()
    assert publisher.wait_connected(5)
    mid = publisher.publish(f"{ALERTS}/tls", "x")
    assert mid is not None
    assert wait_acks(publisher, {mid})[mid][0]


def test_tls_with_another_ca_says_certificate_verify_failed(
    mqtt_broker: Broker, make_publisher: PublisherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    publisher = make_publisher(mqtt_broker.tls_port, tls=True, ca_file=mqtt_broker.certs.other_ca_file)
    publisher.start()
    assert never_connects(publisher, for_s=2.0)
    errors = [r.getMessage() for r in records(caplog, logging.ERROR)]
    assert len(errors) == 1, errors
    assert "certificate verify failed" in errors[0]
    assert f"{HOST}:{mqtt_broker.tls_port}" in errors[0]


def test_tls_to_a_plain_listener_says_the_handshake_failed(
    mqtt_broker: Broker, make_publisher: PublisherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    publisher = make_publisher(mqtt_broker.plain_port, tls=True, ca_file=mqtt_broker.certs.ca_file)
    publisher.start()
    assert never_connects(publisher)
    errors = [r.getMessage() for r in records(caplog, logging.ERROR)]
    assert len(errors) == 1, errors
    assert "TLS handshake failed" in errors[0]


@pytest.mark.parametrize("which", ["ca_file", "cert_file", "key_file"])
def test_missing_tls_file_raises_naming_the_file(
    mqtt_broker: Broker, make_publisher: PublisherFactory, tmp_path: Path, which: str
) -> None:
    certs = mqtt_broker.certs
    files = {"ca_file": certs.ca_file, "cert_file": certs.client_cert, "key_file": certs.client_key}
    files[which] = tmp_path / "no-such-file.pem"
    publisher = make_publisher(mqtt_broker.tls_port, tls=True, **files)
    with pytest.raises(AlertError, match=re.escape("no-such-file.pem")):
        publisher.start()
    assert not publisher.is_connected()


def test_unusable_ca_file_raises_naming_the_file(
    mqtt_broker: Broker, make_publisher: PublisherFactory, tmp_path: Path
) -> None:
    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("hello\n")
    publisher = make_publisher(mqtt_broker.tls_port, tls=True, ca_file=bad)
    with pytest.raises(AlertError, match=re.escape("not-a-ca.pem")):
        publisher.start()


def test_client_certificate_is_accepted_by_a_listener_that_requires_one(
    mqtt_broker: Broker, make_publisher: PublisherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    certs = mqtt_broker.certs
    publisher = make_publisher(
        mqtt_broker.mtls_port, tls=True, ca_file=certs.ca_file, cert_file=certs.client_cert, key_file=certs.client_key
    )
    publisher.start()
    assert publisher.wait_connected(5)
    mid = publisher.publish(f"{ALERTS}/mtls", "x")
    assert mid is not None
    assert wait_acks(publisher, {mid})[mid][0]

    without = make_publisher(mqtt_broker.mtls_port, tls=True, ca_file=certs.ca_file)
    without.start()
    assert never_connects(without)
    errors = [r.getMessage() for r in records(caplog, logging.ERROR)]
    assert len(errors) == 1, errors
    assert "TLS handshake failed" in errors[0]
    assert "certificate required" in errors[0] or "handshake failure" in errors[0]  # TLS 1.3 / 1.2 alert
    assert records(caplog, logging.WARNING) == []


def test_stop_returns_in_time_when_the_broker_hangs_and_status_ends_offline(
    mqtt_broker: Broker, make_publisher: PublisherFactory
) -> None:
    with Subscriber(mqtt_broker.plain_port, f"{PREFIX}/status") as sub:
        publisher = make_publisher(mqtt_broker.plain_port)
        publisher.start()
        assert publisher.wait_connected(5)
        assert sub.wait_for(lambda m: bool(m) and m[-1][1] == "online")
        mqtt_broker.pause()
        try:
            began = time.monotonic()
            publisher.stop(timeout_s=0.5)  # no PUBACK for "offline": disconnects asking for the will
            assert time.monotonic() - began < 3
        finally:
            mqtt_broker.resume()
        assert sub.wait_for(lambda m: bool(m) and m[-1] == (f"{PREFIX}/status", "offline", True))


class FailingOnceQueue(deque[tuple[int, bool, str]]):
    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def append(self, item: tuple[int, bool, str]) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("boom")
        super().append(item)


def test_an_exception_in_a_callback_does_not_kill_the_network_thread(
    mqtt_broker: Broker, make_publisher: PublisherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    publisher = make_publisher(mqtt_broker.plain_port)
    publisher._acks = FailingOnceQueue()  # on_publish raises for the first PUBACK (the "online" status)
    publisher.start()
    assert publisher.wait_connected(5)
    mid = publisher.publish(f"{ALERTS}/after-boom", "x")
    assert mid is not None
    assert wait_acks(publisher, {mid}) == {mid: (True, "No matching subscribers")}
    failures = [r for r in records(caplog, logging.ERROR) if r.exc_info]
    assert [r.getMessage() for r in failures] == ["mqtt callback _on_publish failed"]
