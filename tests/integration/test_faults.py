"""The reliability promises, proven against the real `ingest run` process (short profile of
tests/faultkit; scripts/faults.py runs the long one).

Two sessions run side by side, each with its own mosquitto, world and daemon:
  feeds    every feed fault once, in the middle of three flights: 429 with and without Retry-After, 500,
           503, a hang past the read timeout, a body cut mid-way, headers and body dripped a byte every
           0.2 s, garbage, a gzip bomb, a 302, HTML with status 200, then the poisoned answers
           (seen_pos 1e300, `now` in year 10000, a record 5,000 levels deep, `now` an hour ahead: last,
           as what it breaks stays broken for an hour)
  process  a full disk (the database on a tmpfs: root only; the test fails, never skips, without it),
           the broker away for 15 s, a burst of kill -9 with restarts, the daemon stopped past gap_s
Each scenario's test fails when a promise is broken during or after its episode (tests/faultkit/checks.py
lists them: integrity, every carried position stored once, exactly the world's sorties, every alert once
outside the kill -9 PUBACK window, no Traceback, one warning line per fault, bounded RSS). A finding of
the session as a whole (integrity, memory) fails every scenario of that session.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faultkit import FEED_SCENARIOS, SHORT, Broker, HarnessError, SessionResult, run_session
from tests.faultkit.session import PROCESS_SCENARIOS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SESSIONS = {"feeds": list(FEED_SCENARIOS), "process": ["disk-full", "broker-outage", "kill-9", "daemon-stopped"]}


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SessionResult | str]]:
    """Both sessions, run in parallel threads (they take turns on the CPU: the daemon idles between polls).
    A session that could not be set up is its error message."""
    results: dict[str, SessionResult | str] = {}
    brokers: list[Broker] = []

    def run(name: str, scenarios: list[str], workdir: Path, broker: Broker) -> None:
        try:
            results[name] = run_session(name, scenarios, SHORT, workdir, broker, seed=7)
        except HarnessError as exc:
            results[name] = str(exc)
        except BaseException as exc:  # pytest.fail() from tests/mqtt_broker.py is a BaseException
            results[name] = f"{type(exc).__name__}: {exc}"

    threads = []
    for name, scenarios in SESSIONS.items():
        workdir = tmp_path_factory.mktemp(f"faults-{name}")
        broker = Broker(workdir / "broker", persistence=True)
        brokers.append(broker)
        broker.start()
        threads.append(threading.Thread(target=run, args=(name, scenarios, workdir / "session", broker)))
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        yield results
    finally:
        for broker in brokers:
            broker.stop()


def _verdict(sessions: dict[str, SessionResult | str], name: str, scenario: str) -> None:
    result = sessions[name]
    if isinstance(result, str):
        pytest.fail(f"session {name} could not run: {result}")
    ok, report = result.verdict(scenario)
    assert ok, report


@pytest.mark.parametrize("scenario", FEED_SCENARIOS)
def test_a_feed_fault_loses_nothing_splits_nothing_and_is_logged_once(
    sessions: dict[str, SessionResult | str], scenario: str
) -> None:
    _verdict(sessions, "feeds", scenario)


@pytest.mark.parametrize("scenario", PROCESS_SCENARIOS)
def test_our_own_failure_is_not_the_aircraft_silence(sessions: dict[str, SessionResult | str], scenario: str) -> None:
    _verdict(sessions, "process", scenario)
