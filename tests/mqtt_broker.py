"""A real, private mosquitto for tests: four loopback listeners on free ports, TLS files from trustme.

Listeners (all on 127.0.0.1, never 1883; `per_listener_settings true` so each has its own auth):
  plain_port     anonymous
  password_port  password_file only: user "ingest" / password "s3cret-pw" (made with mosquitto_passwd -b)
  tls_port       TLS with the trustme server certificate (127.0.0.1, localhost); no client certificate asked
  mtls_port      TLS that requires a client certificate signed by the same CA (mutual TLS)

The broker logs to `mosquitto.log` in its workdir; start() fails the test (never skips) with that log when
mosquitto is missing or does not come up. As root, mosquitto would drop to user `mosquitto` and then could
not read root-owned files (reliability-and-performance.md §1.7), so the config says `user root` instead.

Fixture: `mqtt_broker` (a started Broker in tmp_path, stopped at teardown). Helper: `Subscriber`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import trustme
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0


@dataclass
class BrokerCerts:
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_file: Path  # a CA that did NOT sign the server certificate


def free_port() -> int:
    """A loopback port nobody listens on right now (never the shared broker's 1883)."""
    while True:
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        if port != 1883:
            return port


def port_open(port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout_s):
            return True
    except OSError:
        return False


def make_certs(directory: Path) -> BrokerCerts:
    directory.mkdir(parents=True, exist_ok=True)
    ca, other_ca = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("ingest-client@example.org", common_name="ingest-client")
    certs = BrokerCerts(
        ca_file=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca_file=directory / "other-ca.pem",
    )
    ca.cert_pem.write_to_path(str(certs.ca_file))
    other_ca.cert_pem.write_to_path(str(certs.other_ca_file))
    server.cert_chain_pems[0].write_to_path(str(certs.server_cert))
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(str(certs.server_cert), append=True)
    server.private_key_pem.write_to_path(str(certs.server_key))
    client.cert_chain_pems[0].write_to_path(str(certs.client_cert))
    client.private_key_pem.write_to_path(str(certs.client_key))
    return certs


class Broker:
    """A mosquitto process with its config, password file, certificates and log under `workdir`."""

    username = "ingest"
    password = "s3cret-pw"

    def __init__(self, workdir: Path, persistence: bool = False) -> None:
        self.exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.certs = make_certs(workdir / "certs")
        self.plain_port, self.password_port, self.tls_port, self.mtls_port = self._distinct_ports(4)
        self.log_file = workdir / "mosquitto.log"
        self.stderr_file = workdir / "mosquitto.stderr"
        self.password_file = workdir / "passwd"
        self._make_password_file()
        self.persistence_dir = workdir / "persistence"
        self.persistence = persistence
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(self._config())
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _distinct_ports(n: int) -> list[int]:
        ports: list[int] = []
        while len(ports) < n:
            port = free_port()
            if port not in ports:
                ports.append(port)
        return ports

    def _make_password_file(self) -> None:
        exe = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        if not os.access(exe, os.X_OK):
            pytest.fail("mosquitto_passwd not found; install it with: apt-get install mosquitto")
        done = subprocess.run(
            [exe, "-c", "-b", str(self.password_file), self.username, self.password],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"mosquitto_passwd failed ({done.returncode}): {done.stderr.strip()}")

    def _config(self) -> str:
        c = self.certs
        tls = [f"cafile {c.ca_file}", f"certfile {c.server_cert}", f"keyfile {c.server_key}"]
        lines = [
            "per_listener_settings true",
            f"log_dest file {self.log_file}",
            "log_type all",
            "connection_messages true",
            "log_timestamp_format %H:%M:%S",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # do not drop to user mosquitto, which could not read these files
        if self.persistence:
            self.persistence_dir.mkdir(exist_ok=True)
            lines += ["persistence true", f"persistence_location {self.persistence_dir}/", "autosave_interval 1"]
        else:
            lines.append("persistence false")
        lines += ["", f"listener {self.plain_port} {HOST}", "allow_anonymous true"]
        lines += ["", f"listener {self.password_port} {HOST}", "allow_anonymous false"]
        lines += [f"password_file {self.password_file}"]
        lines += ["", f"listener {self.tls_port} {HOST}", "allow_anonymous true", *tls, "require_certificate false"]
        lines += ["", f"listener {self.mtls_port} {HOST}", "allow_anonymous true", *tls, "require_certificate true"]
        return "\n".join(lines) + "\n"

    @property
    def ports(self) -> tuple[int, int, int, int]:
        return self.plain_port, self.password_port, self.tls_port, self.mtls_port

    def log_text(self) -> str:
        parts = []
        for path in (self.log_file, self.stderr_file):
            if path.exists():
                parts.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-6000:]}")
        return "\n".join(parts) or "(no broker log)"

    def start(self) -> None:
        if self.running():
            return
        if not os.access(self.exe, os.X_OK):
            pytest.fail("mosquitto not found; install it with: apt-get install mosquitto")
        busy = [p for p in self.ports if port_open(p)]
        if busy:
            pytest.fail(f"ports {busy} already in use before starting mosquitto - stale broker?")
        with self.stderr_file.open("ab") as err:
            self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                pytest.fail(f"mosquitto exited with {code} at start-up\n{self.log_text()}")
            if all(port_open(p) for p in self.ports):
                return
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"mosquitto did not open ports {self.ports} within {START_TIMEOUT_S} s\n{self.log_text()}")

    def stop(self) -> None:
        """SIGTERM (mosquitto then saves its persistence file and closes every client) and wait."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: clients see the TCP connection reset, nothing is saved."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: a network black hole; clients notice only through keepalive."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _end(self, sig: signal.Signals) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a paused broker would not act on SIGTERM
            proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh mosquitto in tmp_path/broker, started; stopped at teardown even when the test failed."""
    broker = Broker(tmp_path / "broker")
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


Message = tuple[str, str, bool]  # topic, payload, retain flag


class Subscriber:
    """A real paho client (MQTT v5) subscribed with QoS 1 to one topic filter on the plain listener.

    It subscribes again after every reconnect. With `session_expiry_s` it asks for a persistent session
    (clean_start False), so a broker with persistence queues QoS 1 messages for it while it is away.
    Retain flags are delivered as published (v5 retainAsPublished), so live retained messages show True.
    """

    def __init__(
        self,
        port: int,
        topic_filter: str,
        client_id: str = "test-subscriber",
        session_expiry_s: int | None = None,
    ) -> None:
        self.topic_filter = topic_filter
        self.session_expiry_s = session_expiry_s
        self._messages: list[Message] = []
        self.redelivered = 0  # messages the broker sent again to our session (dropped: see _on_message)
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.port = port
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.suppress_exceptions = True
        self.client.reconnect_delay_set(0.1, 1)  # type: ignore[arg-type]  # paho hints int, uses float seconds
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def start(self, timeout_s: float = 5.0) -> Subscriber:
        props = None
        if self.session_expiry_s is not None:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.session_expiry_s
        self.client.connect_async(
            HOST,
            self.port,
            keepalive=5,
            clean_start=self.session_expiry_s is None,
            properties=props,
        )
        self.client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise AssertionError(f"subscriber did not subscribe to {self.topic_filter} within {timeout_s} s")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Subscriber:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        if not reason.is_failure:
            client.subscribe(self.topic_filter, options=SubscribeOptions(qos=1, retainAsPublished=True))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            message = (msg.topic, msg.payload.decode("utf-8", "replace"), bool(msg.retain))
            if msg.dup and message in self._messages:
                # The broker sending us again what we had not acknowledged when it stopped (our persistent
                # session): a repeat between broker and us. A publisher's repeat never arrives so marked (the
                # MQTT specification has a server never pass a PUBLISH's DUP flag on to its subscribers), so
                # this hides nothing the daemon did.
                self.redelivered += 1
                return
            self._messages.append(message)
            self._cond.notify_all()

    @property
    def messages(self) -> list[Message]:
        with self._cond:
            return list(self._messages)

    def wait_for(self, predicate: Callable[[list[Message]], bool], timeout_s: float = 5.0) -> bool:
        """Wait until predicate(messages so far) is true; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(list(self._messages)), timeout_s)

    def payloads(self, topic: str) -> list[str]:
        return [payload for t, payload, _ in self.messages if t == topic]
