"""What `ingest feeds` and /api/feeds say of a feed (views.feed_row, feed_state, next_try_text) and how a
feed's pacing takes up a failing episode recorded by an earlier run (policy.Pacing.resume). Pure."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from ingest.config import load
from ingest.feeds.policy import Pacing
from ingest.timeutil import iso_z
from ingest.views import feed_row, feed_state, feeds_table, next_try_text
from tests.conftest import T0, ConfigWriter


def feeds(write_config: ConfigWriter) -> Any:
    config: Path = write_config(
        [{"name": "a", "kind": "readsb-v2", "base_url": "http://127.0.0.1:9"},
         {"name": "off", "kind": "readsb-v2", "base_url": "http://127.0.0.1:9", "enabled": False}]
    )  # fmt: skip
    return load(config, environ={}).feeds


def failing(**more: Any) -> dict[str, Any]:
    return {"state": "degraded", "failures": 3, "reason": "HTTP 500", "next_try_at": iso_z(T0 + timedelta(seconds=250)),
            **more}  # fmt: skip


def test_state_says_never_succeeded_until_a_first_success(write_config: ConfigWriter) -> None:
    a, off = feeds(write_config)
    assert feed_state(a, {}) == "never polled" and feed_state(off, failing()) == "disabled"
    assert feed_state(a, failing()) == "never succeeded"
    assert feed_state(a, failing(last_success_at=iso_z(T0))) == "degraded"
    assert feed_state(a, failing(state="parked")) == "parked"  # parked says more: it will not be tried for long
    assert feed_state(a, {"state": "ok", "failures": 0, "last_success_at": iso_z(T0)}) == "ok"


def test_next_try_is_only_ever_a_time_to_come(write_config: ConfigWriter) -> None:
    a, _ = feeds(write_config)
    soon = feed_row(a, failing(), T0, running=True)
    assert soon["next_try"] == iso_z(T0 + timedelta(seconds=250))
    assert next_try_text(soon, T0, True) == "in 4m10s"
    late = feed_row(a, failing(), T0 + timedelta(minutes=10), running=True)
    assert late["next_try"] is None and next_try_text(late, T0 + timedelta(minutes=10), True) == "due"
    stopped = feed_row(a, failing(), T0, running=False)
    assert stopped["next_try"] is None and next_try_text(stopped, T0, False) == "-"
    fine = feed_row(a, {"state": "ok", "failures": 0, "next_try_at": iso_z(T0 + timedelta(hours=1))}, T0)
    assert fine["next_try"] is None and next_try_text(fine, T0, True) == "-"
    table = feeds_table([soon], T0, True).splitlines()
    assert "next try" in table[0] and " in 4m10s " in table[1]


def test_pacing_takes_up_a_recorded_episode_once() -> None:
    pacing = Pacing(10.0)
    pacing.resume(5, T0, "HTTP 500")
    assert (pacing.failures, pacing.degraded_since, pacing.last_reason) == (5, T0, "HTTP 500")
    assert pacing.ready(T0)  # a restart tries at once
    pacing.on_failure(T0, "HTTP 500", 500, None)
    assert pacing.failures == 6 and not pacing.new_episode
    pacing.resume(1, T0 + timedelta(hours=1), "other")  # its own count wins once it has one
    assert pacing.failures == 6
    assert pacing.on_success() == 6
    fresh = Pacing(10.0)
    fresh.resume(0, None, None)
    assert fresh.failures == 0 and fresh.degraded_since is None
