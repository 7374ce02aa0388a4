"""The fault harness: proves the reliability promises against the real `ingest run` process.

A scripted World (world.py) flies watched aircraft on known orbits; a loopback feed server (server.py)
answers from it with `now`/`seen_pos` on the wall clock, misbehaving on demand; a real mosquitto
(tests/mqtt_broker.py) carries the alerts to a recording subscriber; the daemon runs as a child process
(daemon.py); disk.py fills a tmpfs. A Session (session.py) runs fault episodes in the middle of flights and collects the
evidence; checks.py turns it into findings. Used by tests/integration/test_faults.py (short profile)
and scripts/faults.py (either profile), scripts/prove writes docs/reliability.md from the latter.
"""

from __future__ import annotations

from pathlib import Path

from tests.faultkit.checks import EpisodeResult, Finding, SessionResult, evaluate
from tests.faultkit.disk import HarnessError
from tests.faultkit.server import feed_faults
from tests.faultkit.session import LONG, PROCESS_SCENARIOS, PROFILES, SHORT, Profile, Session
from tests.mqtt_broker import Broker

FEED_SCENARIOS = tuple(feed_faults(1.0, 1.0, 1.0))
SCENARIOS = (*FEED_SCENARIOS, *PROCESS_SCENARIOS)

__all__ = [
    "FEED_SCENARIOS", "LONG", "PROFILES", "SCENARIOS", "SHORT", "Broker", "EpisodeResult", "Finding",
    "HarnessError", "Profile", "SessionResult", "run_session",
]  # fmt: skip


def run_session(
    name: str, scenarios: list[str], profile: Profile, workdir: Path, broker: Broker, seed: int = 1
) -> SessionResult:
    """Run `scenarios` in one daemon's life and judge it; the database sits on a tmpfs when one of them
    fills the disk. HarnessError when the session cannot be set up (a tmpfs that will not mount)."""
    session = Session(name, profile, workdir, broker, seed=seed, tmpfs="disk-full" in scenarios)
    return evaluate(session.run(scenarios))
