"""`ingest alerts status` (each channel: queued, delivered, last delivery, last error, backing off or parked)
and `ingest alerts test NAME` (a clearly marked test event through the real channel).

`status` reads the database only (as the read commands do, it never creates one) and names the configured
channels the database has not heard of yet. `test` sends at once, not through the outbox; a success
un-parks the channel (a running daemon notices within alerts/outbox.py's PARK_CHECK_S).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any

from ingest.commands import fail, open_store, settings
from ingest.config import AlertSettings, Settings, check_channel_urls
from ingest.models import ChannelState
from ingest.timeutil import iso_z

TEST_TIMEOUT_S = 10.0


def cmd_alerts(args: argparse.Namespace) -> int:
    if args.action == "status":
        return _status(args)
    return _test(args)


# -- status ---------------------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    s = settings(args, log=False)
    store = open_store(s, create=False)
    try:
        states = {st.channel: st for st in store.channel_states()}
    finally:
        store.close()
    rows = [_row(c.name, c.kind, states.pop(c.name, None), configured=True) for c in s.channels()]
    rows += [_row(name, st.kind, st, configured=False) for name, st in sorted(states.items())]
    if args.format == "json":
        print(json.dumps({"channels": rows}, indent=2))
        return 0
    if not rows:
        print("no alert channels: set [mqtt] enabled = true or add [[alerts]] tables (README: Alerts)")
        return 0
    width = max(7, *(len(r["channel"]) for r in rows))
    print(f"{'channel':<{width}}  {'kind':<13}  {'queued':>6}  {'delivered':>9}  {'last delivered':<20}  state")
    for r in rows:
        print(
            f"{r['channel']:<{width}}  {r['kind']:<13}  {r['queued']:>6}  {r['delivered']:>9}  "
            f"{r['last_delivered'] or '-':<20}  {_state_words(r)}"
        )
    return 0


def _row(name: str, kind: str, st: ChannelState | None, configured: bool) -> dict[str, Any]:
    now = datetime.now(UTC)
    parked = st.parked_until if st is not None and st.parked_until and st.parked_until > now else None
    retry = st.next_try_at if st is not None and st.next_try_at and st.next_try_at > now else None
    return {
        "channel": name, "kind": kind or (st.kind if st else ""), "configured": configured,
        "queued": st.queued if st else 0, "delivered": st.delivered if st else 0,
        "last_delivered": _iso(st.last_delivered_at if st else None),
        "last_error": st.last_error if st else None, "last_error_at": _iso(st.last_error_at if st else None),
        "failures": st.failures if st else 0, "retrying_at": _iso(retry), "parked_until": _iso(parked),
    }  # fmt: skip


def _state_words(r: dict[str, Any]) -> str:
    if not r["configured"]:
        return "not configured: its queued events wait for a channel of that name"
    if r["parked_until"]:
        return f"PARKED until {r['parked_until']}: {r['last_error']}"
    if r["retrying_at"]:
        return f"retrying at {r['retrying_at']} ({r['failures']} failures): {r['last_error']}"
    if r["last_error"] and r["failures"]:
        return f"failing: {r['last_error']}"
    return "ok"


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if at is not None else None


# -- test -----------------------------------------------------------------------------------------------


def _test(args: argparse.Namespace) -> int:
    s = settings(args)
    check_channel_urls(s)
    channel = _find(s, args.channel)
    if channel is None:
        known = ", ".join(c.name for c in (*s.channels(), *s.alerts) if c.enabled) or "none"
        return fail(f"no enabled alert channel {args.channel!r} (configured: {known})", 2)
    from ingest.alerts.delivery import utc_now
    from ingest.commands import locked_access
    from ingest.store import open_configured

    store = open_configured(s.database, create=True, shared=True)
    try:
        access = locked_access(store)
        t0 = time.monotonic()
        problem = _send_test(s, channel, access)
        took_ms = (time.monotonic() - t0) * 1000
        if problem is not None:
            return fail(f"alerts channel {channel.name} ({channel.kind}): the test failed: {problem}")
        store.note_channel(channel.name, channel.kind, utc_now(), None)  # works: no longer parked
    finally:
        store.close()
    print(f"alerts channel {channel.name} ({channel.kind}): test event delivered in {took_ms:.0f} ms")
    return 0


def _find(s: Settings, name: str) -> AlertSettings | None:
    return next((c for c in s.channels() if c.name == name), None)


def _send_test(s: Settings, channel: AlertSettings, access: Any) -> str | None:
    """None when the channel took the test event, else why not (one line)."""
    from ingest.alerts.delivery import Delivery, utc_now
    from ingest.alerts.events import TEST, Event
    from ingest.alerts.outbox import SequentialChannel
    from ingest.alerts.routing import AircraftFacts

    now = utc_now()
    text = f"This is a test alert from ingest for channel {channel.name} ({channel.kind}); no aircraft is involved."
    payload = {
        "schema_version": 1, "event_id": f"test/{channel.name}/{now:%Y%m%dT%H%M%SZ}", "event": TEST, "test": True,
        "channel": channel.name, "time": iso_z(now), "text": text,
    }  # fmt: skip
    prefix = channel.topic_prefix or s.mqtt.topic_prefix
    event = Event(0, str(payload["event_id"]), TEST, f"{prefix}/test", payload, AircraftFacts("", None, "", None))
    delivery = Delivery(s, access, maps=lambda sortie_id: None)
    built = delivery._build(channel)
    if isinstance(built, SequentialChannel) and channel.kind in ("webhook", "apprise"):
        failure = built.send(event)
        built.close()
        return None if failure is None else failure.reason
    hub = delivery.hub
    assert hub is not None
    hub.start()
    try:
        if not hub.wait_connected(TEST_TIMEOUT_S):
            return f"cannot connect to the mqtt broker {s.mqtt.host}:{s.mqtt.port} within {TEST_TIMEOUT_S:g} s"
        if channel.kind == "homeassistant":
            from ingest.alerts.channels.homeassistant import HomeAssistantChannel

            assert isinstance(built, HomeAssistantChannel)
            built.sync("test")
            mid = hub.publish(built.name, f"{prefix}/test", json.dumps(payload, separators=(",", ":")))
        else:
            mid = hub.publish(channel.name, event.topic, json.dumps(payload, separators=(",", ":")))
        return _await_ack(hub, channel.name, mid)
    finally:
        hub.stop()


def _await_ack(hub: Any, channel: str, mid: int | None) -> str | None:
    if mid is None:
        return "paho did not queue the message"
    deadline = time.monotonic() + TEST_TIMEOUT_S
    while time.monotonic() < deadline:
        for got, ok, reason in hub.take_acks(channel):
            if got == mid:
                return None if ok else f"the broker refused it: {reason}"
        time.sleep(0.05)
    return f"no PUBACK within {TEST_TIMEOUT_S:g} s"
