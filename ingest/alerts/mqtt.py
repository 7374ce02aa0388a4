"""MQTT publishing for alerts; the only module that imports paho-mqtt.

Owns one paho client (MQTT v5, QoS 1) and its network thread: TLS and password set-up, the retained
`<prefix>/status` topic ("online" on connect, "offline" as last will and on stop), reconnecting with
backoff, and logging each outage once. It does not decide what was delivered: publish() returns paho's
mid and take_acks() reports each PUBACK with its v5 reason code, so the outbox marks rows sent
(alerts/outbox.py). It keeps nothing on disk: messages queued while disconnected die with the process.

Threading: paho runs the callbacks below on its own thread. They only set flags, put on a queue and log;
they never raise (an exception would kill paho's thread silently) and never take a lock, so a
caller holding its own lock around publish() cannot deadlock with on_publish. Call publish()
and take_acks() from one thread.
"""

from __future__ import annotations

import functools
import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from ingest.errors import AlertError

log = logging.getLogger("ingest.alerts.mqtt")

P = ParamSpec("P")

MAX_INFLIGHT = 100  # v5 QoS 1 on loopback: 13.3 k msg/s at 100 in flight, slower at 1000
PROBE_TIMEOUT_S = 3.0  # the once-per-outage diagnostic connection (see _probe)
PROBE_READ_TIMEOUT_S = 1.0  # long enough for a TLS 1.3 alert on loopback or a LAN
_QUEUED = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)


@dataclass(frozen=True)
class MqttOptions:
    host: str
    port: int
    topic_prefix: str
    client_id: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never logged, never in an error
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = 30
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0


def _guarded(callback: Callable[P, None]) -> Callable[P, None]:
    """Run a paho callback so that no exception reaches paho's thread."""

    @functools.wraps(callback)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            callback(*args, **kwargs)
        except Exception:
            log.exception("mqtt callback %s failed", callback.__name__)

    return run


class MqttPublisher:
    """Publishes QoS 1 messages to one broker; see the module docstring for the threading rules."""

    def __init__(
        self,
        options: MqttOptions,
        on_ack: Callable[[], object] = lambda: None,
        on_connect: Callable[[], object] = lambda: None,
    ) -> None:
        """`on_ack` is called on paho's thread after each PUBACK was queued for take_acks(), `on_connect` after
        each connection: they must only signal (set an Event), never block or take a lock held around publish()."""
        self._options = options
        self._on_ack = on_ack
        self._on_connected = on_connect
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            protocol=mqtt.MQTTv5,  # v5: a PUBACK can say "Not authorized"; 3.1.1 drops such messages silently
        )
        self._client.suppress_exceptions = True  # second line of defence behind _guarded
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._ssl_context: ssl.SSLContext | None = None
        # deque: append and popleft are atomic, with no lock for paho's thread to take per PUBACK
        self._acks: deque[tuple[int, bool, str]] = deque()
        self._status_mids: set[int] = set()  # our own "online"/"offline" publishes: not reported as acks
        self._connected = threading.Event()
        self._started = False
        self._stopped = False
        self._stopping = False
        # Outage bookkeeping, written only on paho's thread.
        self._ever_connected = False
        self._down_since: float | None = None
        self._outage_logged = False
        self._outage_probed = False
        self._refused = False  # the last CONNACK was a refusal (already logged)
        self._subscriptions: dict[str, Callable[[str, bytes], object]] = {}
        self._connections = 0

    @property
    def status_topic(self) -> str:
        return f"{self._options.topic_prefix}/status"

    @property
    def _endpoint(self) -> str:
        return f"{self._options.host}:{self._options.port}"

    def start(self) -> None:
        """Configure the client and start connecting in the background.

        Never raises because the broker is down or refuses us (that is logged and retried); raises
        IngestError for unusable local TLS files or an invalid host/port.
        """
        if self._stopped:
            raise RuntimeError("an MqttPublisher cannot be started again after stop(); make a new one")
        if self._started:
            return
        opts = self._options
        client = self._client
        if opts.tls:
            self._ssl_context = tls_context(opts)
            client.tls_set_context(self._ssl_context)  # verifies the broker's certificate and host name
        if opts.username is not None:
            client.username_pw_set(opts.username, opts.password)
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        # paho's hints say int, but it sleeps float seconds; tests use 0.1 s.
        client.reconnect_delay_set(opts.reconnect_min_s, opts.reconnect_max_s)  # type: ignore[arg-type]
        client.max_inflight_messages_set(MAX_INFLIGHT)
        try:
            client.connect_async(opts.host, opts.port, keepalive=opts.keepalive_s)
        except ValueError as exc:
            raise AlertError(f"mqtt broker {self._endpoint}: {exc}") from exc
        self._started = True
        self._stopping = False
        # connect_async + loop_start: the thread keeps retrying when the broker is down at start.
        client.loop_start()

    def publish(self, topic: str, payload: str, retain: bool = False) -> int | None:
        """Queue one QoS 1 message; its mid, or None when paho did not queue it. Never blocks.

        While disconnected paho answers MQTT_ERR_NO_CONN but keeps the QoS 1 message and sends it after
        reconnecting, so that counts as queued. Delivery is reported by take_acks(). More than MAX_INFLIGHT
        messages may be queued: paho sends them as acknowledgements free the window.
        """
        try:
            info = self._client.publish(topic, payload, qos=1, retain=retain)
        except ValueError as exc:  # wildcard in the topic, payload over 256 MiB
            raise AlertError(f"cannot publish to mqtt topic {topic!r}: {exc}") from exc
        if info.rc in _QUEUED:
            return info.mid
        log.debug("mqtt publish to %s not queued: %s", topic, mqtt.error_string(info.rc))
        return None

    def take_acks(self) -> list[tuple[int, bool, str]]:
        """Drain the PUBACKs seen so far: (mid, ok, reason); ok is False for a failure reason code."""
        acks: list[tuple[int, bool, str]] = []
        while True:
            try:
                mid, ok, reason = self._acks.popleft()
            except IndexError:
                return acks
            if mid in self._status_mids:
                self._status_mids.discard(mid)
                continue
            acks.append((mid, ok, reason))

    def subscribe(self, topic_filter: str, on_message: Callable[[str, bytes], object]) -> None:
        """Subscribe (QoS 1) now and after every reconnect. `on_message(topic, payload)` runs on paho's thread:
        it must only signal, as on_ack does. Call before start()."""
        self._subscriptions[topic_filter] = on_message
        self._client.on_message = self._on_message

    @property
    def connections(self) -> int:
        """How many times the client has connected: a channel that must republish after a reconnect
        (retained discovery configs) compares it with the count it last saw."""
        return self._connections

    def is_connected(self) -> bool:
        return self._connected.is_set() and self._client.is_connected()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s) and self._client.is_connected()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Publish retained "offline" (waiting up to timeout_s for its PUBACK), disconnect, stop the thread.

        If "offline" is not acknowledged in time, the DISCONNECT asks the broker to send the will instead
        (v5 reason 0x04), so the status never stays "online". Unacknowledged messages are dropped.
        """
        if not self._started:
            return
        self._stopping = True
        reason: ReasonCode | None = None
        was_connected = self.is_connected()
        if was_connected:
            info = self._client.publish(self.status_topic, "offline", qos=1, retain=True)
            self._status_mids.add(info.mid)
            acked = False
            if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                try:
                    info.wait_for_publish(timeout_s)
                    acked = info.is_published()
                except (RuntimeError, ValueError):  # the connection dropped meanwhile
                    acked = False
            if not acked:
                reason = ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
        self._client.disconnect(reasoncode=reason)
        # Joins paho's thread; it notices within a second (or after its 5 s connect timeout or our probe).
        self._client.loop_stop()
        self._connected.clear()
        self._started = False
        self._stopped = True
        if was_connected:
            log.info(
                "disconnected from mqtt %s", self._endpoint, extra={"event": "mqtt_stopped", "broker": self._endpoint}
            )
        else:
            log.info("stopped mqtt client for %s (was not connected)", self._endpoint)

    # --- paho callbacks (paho's thread): flags, a queue and log lines only -------------------------

    @_guarded
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            self._connected.clear()
            self._refused = True
            self._mark_down()
            if not self._outage_logged:
                self._outage_logged = True
                user = f" (user {self._options.username!r})" if self._options.username is not None else ""
                log.error(
                    "mqtt broker %s refused the connection%s: %s; retrying with backoff up to %g s",
                    self._endpoint, user, reason, self._options.reconnect_max_s,
                    extra={"event": "mqtt_refused", "broker": self._endpoint, "reason": str(reason)},
                )  # fmt: skip
            return
        info = client.publish(self.status_topic, "online", qos=1, retain=True)
        self._status_mids.add(info.mid)  # before its PUBACK can arrive: that is read on this thread
        for topic_filter in self._subscriptions:
            client.subscribe(topic_filter, qos=1)
        self._connections += 1
        if not self._ever_connected:
            log.info(
                "connected to mqtt %s", self._endpoint, extra={"event": "mqtt_connected", "broker": self._endpoint}
            )
        else:
            outage = time.monotonic() - self._down_since if self._down_since is not None else 0.0
            log.info(
                "reconnected to mqtt %s after %.1f s", self._endpoint, outage,
                extra={"event": "mqtt_connected", "broker": self._endpoint},
            )  # fmt: skip
        self._ever_connected = True
        self._down_since = None
        self._outage_logged = False
        self._outage_probed = False
        self._refused = False
        self._connected.set()
        self._on_connected()

    @_guarded
    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags, reason: ReasonCode, props: Any
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if self._stopping:
            return
        self._mark_down()
        if not was_connected and not self._refused and self._ssl_context is not None:
            # Dropped before any CONNACK: with TLS 1.3 a rejected client certificate shows up only here.
            self._diagnose()
            return
        if self._outage_logged:
            return  # e.g. the broker closing the connection after a refused CONNACK, already logged
        if flags.is_disconnect_packet_from_server:
            why = f"broker sent DISCONNECT: {reason}"
        elif reason == ReasonCode(PacketTypes.DISCONNECT, "Unspecified error"):
            why = "connection lost"  # paho's name for a closed or reset socket
        else:
            why = str(reason)  # e.g. "Keep alive timeout"
        self._warn_unreachable(why)

    @_guarded
    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        if not self._stopping:
            self._mark_down()
            self._diagnose()

    def _diagnose(self) -> None:
        """paho does not say why connecting failed: find out once per outage, so a wrong CA says so."""
        if self._outage_probed:
            return
        self._outage_probed = True
        why, tls_failed = self._probe()
        if tls_failed:
            self._outage_logged = True
            log.error(
                "mqtt broker %s: %s; check ca_file/cert_file/key_file; retrying with backoff up to %g s",
                self._endpoint, why, self._options.reconnect_max_s,
                extra={"event": "mqtt_tls_failed", "broker": self._endpoint, "reason": why},
            )  # fmt: skip
        elif not self._outage_logged:
            self._warn_unreachable(why)

    def _warn_unreachable(self, why: str) -> None:
        self._outage_logged = True
        log.warning(
            "mqtt broker %s unreachable: %s; retrying with backoff up to %g s",
            self._endpoint, why, self._options.reconnect_max_s,
            extra={"event": "mqtt_unreachable", "broker": self._endpoint, "reason": why},
        )  # fmt: skip

    @_guarded
    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        for topic_filter, callback in self._subscriptions.items():
            if mqtt.topic_matches_sub(topic_filter, message.topic):
                callback(message.topic, bytes(message.payload))

    @_guarded
    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any) -> None:
        # "No matching subscribers" (0x10) is a success; "Not authorized" (0x87) is not.
        # str() of a reason code costs a lookup: skipped for the plain success that a drain gets 10,000 of
        self._acks.append((mid, not reason.is_failure, "Success" if reason.value == 0 else str(reason)))
        self._on_ack()

    def _mark_down(self) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()

    def _probe(self) -> tuple[str, bool]:
        """Why connecting fails: (reason, whether TLS failed). Blocks paho's thread for a few seconds at most."""
        try:
            sock = socket.create_connection((self._options.host, self._options.port), PROBE_TIMEOUT_S)
        except OSError as exc:
            return exc.strerror or str(exc) or type(exc).__name__, False
        with sock:
            if self._ssl_context is None:
                return "connection attempt failed", False
            try:
                with self._ssl_context.wrap_socket(sock, server_hostname=self._options.host) as tls:
                    # TLS 1.3 servers reject a client certificate after the client's handshake has
                    # finished: their alert is the first thing to read. A healthy broker sends nothing.
                    tls.settimeout(PROBE_READ_TIMEOUT_S)
                    if tls.recv(1) == b"":
                        return "the broker closed the connection after the TLS handshake", False
                    return "connection attempt failed after a successful TLS handshake", False
            except ssl.SSLCertVerificationError as exc:
                return f"TLS handshake failed: certificate verify failed: {exc.verify_message}", True
            except TimeoutError:
                return "connection attempt failed after a successful TLS handshake", False
            except ssl.SSLError as exc:
                reason = exc.reason.lower().replace("_", " ") if exc.reason else str(exc)
                return f"TLS handshake failed: {reason}", True
            except OSError as exc:
                return f"TLS handshake failed: {exc.strerror or exc}", True


def tls_context(opts: MqttOptions) -> ssl.SSLContext:
    """The client's TLS context: verify the broker against ca_file (or the system CAs), TLS ≥ 1.2,
    and present cert_file/key_file when given. IngestError names the unusable file."""
    files = (("CA file", opts.ca_file), ("client certificate", opts.cert_file), ("client key", opts.key_file))
    for role, path in files:
        if path is not None:
            _check_readable(role, path)
    if opts.key_file is not None and opts.cert_file is None:
        raise AlertError(f"mqtt TLS client key {opts.key_file} is set but no client certificate (cert_file)")
    try:
        ctx = ssl.create_default_context(cafile=str(opts.ca_file) if opts.ca_file is not None else None)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise AlertError(f"mqtt TLS CA file {opts.ca_file}: {_ssl_reason(exc)}") from exc
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.sslsocket_class = _ClosingSSLSocket
    if opts.cert_file is not None:
        key = opts.key_file if opts.key_file is not None else opts.cert_file
        try:
            ctx.load_cert_chain(opts.cert_file, opts.key_file, password=_no_key_password)
        except (OSError, ValueError) as exc:
            raise AlertError(f"mqtt TLS client certificate {opts.cert_file} / key {key}: {_ssl_reason(exc)}") from exc
    return ctx


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when the handshake fails: paho 2.2.0 drops the socket unclosed after a failed
    do_handshake() (a wrong CA), leaking it until garbage collection with a ResourceWarning each retry."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


class _EncryptedKey(ValueError):
    pass


def _no_key_password() -> bytes:
    # Without a callback, OpenSSL would prompt on the terminal for an encrypted key's pass phrase.
    raise _EncryptedKey("the private key is encrypted; give an unencrypted key")


def _check_readable(role: str, path: Path) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise AlertError(f"mqtt TLS {role} {path}: {exc.strerror or exc}") from exc


def _ssl_reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"not a usable PEM file ({exc.reason or exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
