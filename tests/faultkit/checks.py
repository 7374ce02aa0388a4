"""The promises, checked against a session's evidence. Each broken promise is a Finding, attributed to the
episode it followed (the latest episode that had started by then) or, when it came before any episode or
concerns the whole run, to the session.

- integrity: `PRAGMA integrity_check` says ok.
- stored exactly once: every (hex, position second) inside the area that a good answer carried is in
  `sightings` (the key makes "at most once" structural), and nothing else is. Required are the positions
  of fully written good answers, and of the good records of an answer with one poisoned record. Not
  required, but allowed, are those of an answer served in the KILL_AT_RISK_S before a kill -9 (its commit
  may not have happened), of an answer served from DISK_MARGIN_S before the disk filled until it was freed,
  and of an answer whose envelope lies (`now` in year 10000 or an hour ahead; its true second ±1).
- sorties: per aircraft, exactly one sortie per flight the world flew, ended with the world's reason. A
  second sortie within one flight is a split; an end other than the world's is an end by our failure.
- alerts: every outbox event reached the recorder and was acknowledged; no event_id twice, except a second
  copy that follows a kill -9 which came at most DUP_WINDOW_S after the first copy (the PUBACK window).
- log: no "Traceback"; at most one WARNING/ERROR line per fault (a kill-9 episode has one fault per kill),
  and at least one for a fault the daemon can see (a feed outage, the broker away, a full disk).
- backoff: during a feed outage no more polls than doubling waits allow (0, 1, 3, 7 ... intervals; +1).
- memory: VmRSS never above the profile's rss_limit_mb.
- the episode did what it should (the feed was silent longer than gap_s, the full disk stopped commits, an
  alert was raised while the broker was down), and the daemon recovered; it never died by itself and
  stopped on SIGTERM with exit 0.
"""

from __future__ import annotations

import calendar
import itertools
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.faultkit.daemon import WARNING_LEVELS, Traceback, parse_logs
from tests.faultkit.server import feed_faults
from tests.faultkit.session import Episode, Evidence
from tests.faultkit.world import FAULT, POISON_ENVELOPE, Flight

KILL_AT_RISK_S = 1.5  # a poll fetched this long before a kill -9 may not have been committed
DISK_MARGIN_S = 1.0  # an answer served this long before the disk filled may be committed after it
DUP_WINDOW_S = 3.0  # the documented duplicate: first copy at most this long before a kill -9
EXAMPLES = 5
OUTAGES = frozenset(name for name, fault in feed_faults(1.0, 1.0, 1.0).items() if fault.outage)
LOGGED = frozenset({"broker-outage", "disk-full"})  # faults the daemon sees and must say so, once
POSITION_LAG_S = 1.6  # an answer's positions are 0.5-1.5 s old (tests/faultkit/world.py)


@dataclass
class Finding:
    kind: str
    message: str
    at: float | None = None
    episode: str | None = None  # None: the session as a whole
    evidence: list[str] = field(default_factory=list)


@dataclass
class EpisodeResult:
    id: str
    scenario: str
    run: int
    findings: list[Finding] = field(default_factory=list)
    lost: int = 0  # required positions not stored
    duplicates: int = 0  # extra copies of alerts (tolerated ones included)
    tolerated_duplicates: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.findings


@dataclass(repr=False)
class SessionResult:
    name: str
    profile: str
    workdir: str
    episodes: list[EpisodeResult]
    findings: list[Finding]  # the session's own: they fail every episode of it
    stats: dict[str, Any]
    duration_s: float

    @property
    def passed(self) -> bool:
        return not self.findings and all(e.passed for e in self.episodes)

    def __repr__(self) -> str:  # pytest shows fixture values: keep it to one line
        return f"<SessionResult {self.name}: {'passed' if self.passed else 'FAILED'}, {self.workdir}>"

    def episode(self, scenario: str) -> list[EpisodeResult]:
        return [e for e in self.episodes if e.scenario == scenario]

    def verdict(self, scenario: str) -> tuple[bool, str]:
        """(passed, report) for one scenario's episodes, session findings included."""
        episodes = self.episode(scenario)
        ok = bool(episodes) and not self.findings and all(e.passed for e in episodes)
        return ok, self.report([e.id for e in episodes])

    def report(self, only: Iterable[str] | None = None) -> str:
        wanted = set(only) if only is not None else None
        lines = [f"session {self.name} ({self.profile} profile, {self.duration_s:.0f} s, {self.workdir})"]
        lines.append("  " + ", ".join(f"{k} {v}" for k, v in self.stats.items()))
        lines += _grouped(self.findings, "  SESSION ")
        for e in self.episodes:
            if wanted is not None and e.id not in wanted:
                continue
            extra = f", {e.lost} lost, {e.duplicates} duplicate alerts" if e.lost or e.duplicates else ""
            lines.append(f"  {'PASS' if e.passed else 'FAIL'} {e.id}{extra}" + "".join(f"; {n}" for n in e.notes))
            lines += _grouped(e.findings, "    ")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        return data


def _grouped(findings: list[Finding], indent: str) -> list[str]:
    """Findings of one kind together: the first in full, the others as one line each."""
    lines: list[str] = []
    kinds = list(dict.fromkeys(f.kind for f in findings))
    for kind in kinds:
        same = [f for f in findings if f.kind == kind]
        lines += _finding_lines(same[0], indent)
        lines += [f"{indent}[{kind}] {f.message}" for f in same[1:EXAMPLES]]
        if len(same) > EXAMPLES:
            lines.append(f"{indent}[{kind}] ... {len(same) - EXAMPLES} more")
    return lines


def _finding_lines(f: Finding, indent: str) -> list[str]:
    when = f" at {_hms(f.at)}" if f.at else ""
    lines = [f"{indent}[{f.kind}]{when} {f.message}"]
    for ev in f.evidence[:EXAMPLES]:
        lines += [f"{indent}    | {line}" for line in ev.splitlines()[:16]]
    return lines


def _hms(t: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t)) + f".{int(t * 10) % 10}Z"


def _epoch(iso: str) -> float:
    base, _, frac = iso.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + (float("0." + frac) if frac else 0.0)


class _Attribution:
    """Which episode a time belongs to: the latest one started by then (1 s of slack for the log's
    whole seconds). A time far in the future is mapped back through a lying envelope's shift."""

    def __init__(self, ev: Evidence) -> None:
        self.starts = sorted((ep.start, ep.id) for ep in ev.episodes if ep.windows)
        self.begin, self.end = ev.started_at, ev.ended_at
        self.shifts = sorted({s.now_shift_s for s in ev.served if s.kind == POISON_ENVELOPE and s.delivered})

    def __call__(self, t: float | None) -> str | None:
        if t is None:
            return None
        if t > self.end + 60:  # only a lying `now` puts a time there
            for shift in self.shifts:
                if self.begin - 60 <= t - shift <= self.end + 60:
                    return self._at(t - shift)
        return self._at(t)

    def _at(self, t: float) -> str | None:
        best = None
        for start, ep_id in self.starts:
            if start <= t + 1.0:
                best = ep_id
        return best


def evaluate(ev: Evidence) -> SessionResult:
    attribute = _Attribution(ev)
    findings: list[Finding] = []
    results = {ep.id: EpisodeResult(ep.id, ep.scenario, ep.run, notes=list(ep.notes)) for ep in ev.episodes}
    kills = [k for ep in ev.episodes for k in ep.kills] + [
        r.ended_at for r in ev.runs if r.how == "died" and r.ended_at
    ]

    findings += _integrity(ev)
    lost_by_episode, sighting_findings, counts = _sightings(ev, kills, attribute)
    findings += sighting_findings
    findings += _sorties(ev)
    alert_findings, dups = _alerts(ev, kills, attribute)
    findings += alert_findings
    findings += _logs(ev, attribute)
    findings += _processes(ev)
    findings += _episodes(ev)
    findings += [Finding("harness", e) for e in ev.errors]
    max_rss_mb = max((kb for _, _, kb in ev.rss), default=0) / 1024
    if max_rss_mb > ev.profile.rss_limit_mb:
        findings.append(Finding("rss", f"VmRSS reached {max_rss_mb:.0f} MB, over {ev.profile.rss_limit_mb:.0f} MB"))

    session: list[Finding] = []
    for f in findings:
        if f.episode is None and f.kind not in ("integrity", "rss", "harness", "stop"):
            f.episode = attribute(f.at)
        (results[f.episode].findings if f.episode in results else session).append(f)
    for ep_id, n in lost_by_episode.items():
        if ep_id in results:
            results[ep_id].lost = n
    for ep_id, (n, tolerated) in dups.items():
        if ep_id in results:
            results[ep_id].duplicates, results[ep_id].tolerated_duplicates = n, tolerated
    stats = {
        **counts,
        "lost": sum(lost_by_episode.values()),
        "sorties": len(ev.db["sorties"]),
        "flights": len(ev.flights),
        "alerts": len(ev.db["outbox"]),
        "duplicates": sum(n for n, _ in dups.values()),
        "max_rss_mb": round(max_rss_mb, 1),
        "daemon_processes": len(ev.runs),
    }
    return SessionResult(
        ev.name, ev.profile.name, str(ev.workdir), list(results.values()), session, stats, ev.ended_at - ev.started_at
    )


def _integrity(ev: Evidence) -> list[Finding]:
    if ev.db["integrity"] == ["ok"]:
        return []
    return [Finding("integrity", "PRAGMA integrity_check: " + "; ".join(ev.db["integrity"][:5]))]


def _sightings(
    ev: Evidence, kills: list[float], attribute: _Attribution
) -> tuple[dict[str | None, int], list[Finding], dict[str, int]]:
    stored = {(h, int(ts)) for h, ts in ev.db["sightings"]}
    disks = [(filled - DISK_MARGIN_S, freed) for ep in ev.episodes if ep.disk for filled, freed in [ep.disk]]
    required: dict[tuple[str, int], float] = {}
    allowed: set[tuple[str, int]] = set()
    for s in ev.served:
        at_risk = (
            s.kind == POISON_ENVELOPE
            or any(k - KILL_AT_RISK_S <= s.at <= k for k in kills)
            or any(lo <= s.at <= hi for lo, hi in disks)
        )
        for p in s.carried:
            if not p.inside:
                continue
            if at_risk:
                allowed.update((p.hex_icao, p.second + d) for d in (-1, 0, 1) if s.kind == POISON_ENVELOPE or d == 0)
            else:
                required.setdefault((p.hex_icao, p.second), s.at)
    missing = sorted(((at, key) for key, at in required.items() if key not in stored))
    phantoms = sorted(stored - required.keys() - allowed, key=lambda k: k[1])
    lost: dict[str | None, list[tuple[float, tuple[str, int]]]] = defaultdict(list)
    for at, key in missing:
        lost[attribute(at)].append((at, key))
    findings = []
    for ep_id, items in lost.items():
        examples = ", ".join(f"{h}@{_hms(sec)} (answer {_hms(at)})" for at, (h, sec) in items[:EXAMPLES])
        findings.append(Finding("lost", f"{len(items)} carried positions not stored: {examples}", items[0][0], ep_id))
    by_episode: dict[str | None, list[tuple[str, int]]] = defaultdict(list)
    for key in phantoms:
        by_episode[attribute(float(key[1]))].append(key)
    for ep_id, keys in by_episode.items():
        examples = ", ".join(f"{h}@{_stamp(sec)}" for h, sec in keys[:EXAMPLES])
        what = "stored positions no good answer carried (a lie, a poisoned record or an outside position)"
        findings.append(Finding("phantom", f"{len(keys)} {what}: {examples}", float(keys[0][1]), ep_id))
    counts = {"required": len(required), "stored": len(stored), "phantoms": len(phantoms)}
    return {k: len(v) for k, v in lost.items()}, findings, counts


def _stamp(sec: int) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sec))
    except (OverflowError, OSError, ValueError):
        return str(sec)


def _sorties(ev: Evidence) -> list[Finding]:
    """Match each stored sortie to the world's flight of that aircraft during which it started: the latest
    to take off before its first sighting. A position is 0.5-1.5 s older than the answer that carries it,
    so a sortie's first fix may be up to POSITION_LAG_S older than the takeoff that made it."""
    findings: list[Finding] = []
    assigned: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for row in ev.db["sorties"]:
        sortie_id, hex_icao, first_at, _, reason = row
        started = [
            i for i, f in enumerate(ev.flights) if f.hex_icao == hex_icao and f.takeoff_at - POSITION_LAG_S <= first_at
        ]
        flight = ev.flights[started[-1]] if started else None
        if flight is not None and (flight.end_at is None or first_at <= flight.end_at):
            assigned[started[-1]].append(row)
        else:
            message = f"sortie {sortie_id} ({reason}) matches no flight the world flew"
            findings.append(Finding("sortie", message, first_at))
    for i, flight in enumerate(ev.flights):
        findings += _flight(flight, assigned.get(i, []), ev.profile.gap_s)
    return findings


def _flight(f: Flight, mine: list[tuple[Any, ...]], gap_s: float) -> list[Finding]:
    """One flight: exactly one sortie, ended as the world's flight ended."""
    if not mine:
        return [Finding("sortie", f"{f.hex_icao}: the flight that took off at {_hms(f.takeoff_at)} has no sortie",
                        f.takeoff_at)]  # fmt: skip
    findings = []
    for prev, extra in itertools.pairwise(mine):
        message = (
            f"{f.hex_icao}: one flight, two sorties: {prev[0]} ended {prev[4]} (last sighting {_hms(prev[3])}), "
            f"then {extra[0]} started at {_hms(extra[2])}"
        )
        findings.append(Finding("split", message, extra[2]))
    last = mine[-1]
    if last[4] is None:
        message = f"{f.hex_icao}: sortie {last[0]} still open at the end (last sighting {_stamp(int(last[3]))})"
        findings.append(Finding("sortie", message, last[3]))
    elif f.end_reason is not None and last[4] != f.end_reason:
        message = (
            f"{f.hex_icao}: sortie {last[0]} ended {last[4]}; the world's flight ended {f.end_reason} "
            f"at {_hms(f.end_at or 0)}"
        )
        findings.append(Finding("end", message, last[3] + gap_s))
    return findings


def _alerts(
    ev: Evidence, kills: list[float], attribute: _Attribution
) -> tuple[list[Finding], dict[str | None, tuple[int, int]]]:
    findings: list[Finding] = []
    arrivals: dict[str, list[float]] = defaultdict(list)
    for a in ev.arrivals:
        if a.event_id:
            arrivals[a.event_id].append(a.at)
    outbox = {event_id: (topic, _epoch(created), sent) for event_id, topic, created, sent in ev.db["outbox"]}
    dups: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])
    for event_id, (topic, created, sent) in outbox.items():
        times = sorted(arrivals.get(event_id, []))
        if not times:
            findings.append(Finding("alert-missing", f"{event_id} ({topic}) never reached the subscriber", created))
        if not sent:
            findings.append(Finding("alert-unacked", f"{event_id} still unsent in the outbox at the end", created))
        for prev, this in itertools.pairwise(times):
            tolerated = any(k - DUP_WINDOW_S <= prev <= k + 0.5 < this for k in kills)
            counter = dups[attribute(this)]
            counter[0] += 1
            counter[1] += tolerated
            if not tolerated:
                message = f"{event_id} delivered again at {_hms(this)} (first at {_hms(times[0])}), outside the "
                findings.append(Finding("duplicate", message + "kill -9 PUBACK window", this))
    for event_id, times in arrivals.items():
        if event_id not in outbox:
            findings.append(Finding("alert-phantom", f"{event_id} arrived but the outbox never held it", times[0]))
    return findings, {k: (v[0], v[1]) for k, v in dups.items()}


def _logs(ev: Evidence, attribute: _Attribution) -> list[Finding]:
    lines, tracebacks = parse_logs(ev.runs)
    findings = []
    by_episode: dict[str | None, list[Traceback]] = defaultdict(list)
    for tb in tracebacks:
        by_episode[attribute(tb.at)].append(tb)
    for ep_id, tbs in by_episode.items():
        kinds = list(dict.fromkeys(tb.excerpt for tb in tbs))  # distinct ones, in order
        errors = "; ".join(dict.fromkeys(tb.excerpt.splitlines()[-1].strip()[:160] for tb in tbs))
        findings.append(Finding("traceback", f"{len(tbs)} tracebacks in the log: {errors}", tbs[0].at, ep_id, kinds))
    limit = {ep.id: max(1, len(ep.windows)) for ep in ev.episodes}
    must_warn = {ep.id for ep in ev.episodes if ep.windows and (ep.scenario in OUTAGES or ep.scenario in LOGGED)}
    warned: dict[str | None, list[str]] = defaultdict(list)
    first_at: dict[str | None, float] = {}
    for line in lines:
        if line.level in WARNING_LEVELS:
            ep_id = attribute(line.at)
            warned[ep_id].append(f"{line.log}: {_stamp(int(line.at))} {line.level} {line.logger}: {line.text[:300]}")
            first_at.setdefault(ep_id, line.at)
    for ep_id in sorted(must_warn - set(warned)):
        findings.append(Finding("silent", "the fault was not logged: no warning line", None, ep_id))
    for ep_id, texts in warned.items():
        if ep_id is None:
            findings.append(
                Finding("warnings", f"{len(texts)} warning lines before any fault", first_at[ep_id], None, texts)
            )
        elif len(texts) > limit[ep_id]:
            message = f"{len(texts)} warning lines for {limit[ep_id]} fault(s)"
            findings.append(Finding("warnings", message, first_at[ep_id], ep_id, texts))
    return findings


def _processes(ev: Evidence) -> list[Finding]:
    findings = []
    final = ev.runs[-1] if ev.runs else None
    for run in ev.runs:
        tail = _tail(run.log)
        if run.how == "died":
            findings.append(
                Finding("crash", f"daemon {run.pid} exited by itself with {run.code}", run.ended_at, None, [tail])
            )
        elif run.how != "killed" and (run.code != 0 or run.how != "terminated"):
            finding = Finding(
                "stop", f"daemon {run.pid} on SIGTERM: {run.how}, exit {run.code}", run.ended_at, None, [tail]
            )
            if run is not final:
                finding.kind = "stop-episode"
            findings.append(finding)
        elif run.how == "terminated" and (run.stop_s or 0) > 10:
            findings.append(
                Finding("stop", f"daemon {run.pid} took {run.stop_s:.1f} s to stop on SIGTERM", run.ended_at)
            )
    return findings


def backoff_attempts(outage_s: float, interval_s: float) -> int:
    """Polls a feed that fails throughout `outage_s` gets when each failure doubles the wait
    (ingest/feeds/policy.py): at 0, 1, 3, 7, ... intervals."""
    attempts, at, wait = 0, 0.0, interval_s
    while at < outage_s:
        attempts += 1
        at += wait
        wait *= 2
    return attempts


def _tail(log: Path, lines: int = 12) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _episodes(ev: Evidence) -> list[Finding]:
    findings = []
    for ep in ev.episodes:
        findings += _episode(ep, ev)
    return findings


def _episode(ep: Episode, ev: Evidence) -> list[Finding]:
    findings = []
    if ep.exercised:
        findings.append(Finding("not-exercised", ep.exercised, ep.start, ep.id))
    if ep.scenario in OUTAGES:
        for w in ep.windows:
            polls = sum(1 for s in ev.served if s.kind == FAULT and "/hex/" in s.path and w.start <= s.at <= w.cleared)
            allowed = backoff_attempts(w.cleared - w.start, ev.profile.interval_s) + 1  # +1: tick jitter
            if polls > allowed:
                message = f"{polls} polls in the {w.cleared - w.start:.1f} s outage; backing off allows {allowed}"
                findings.append(Finding("backoff", message, w.start, ep.id))
    for w in ep.windows:
        if w.recovered is None and w.must_recover:
            timeout = ev.profile.recovery_timeout_s
            findings.append(
                Finding(
                    "recovery",
                    f"not recovered within {timeout:.0f} s after the fault cleared at {_hms(w.cleared)}",
                    w.cleared,
                    ep.id,
                )
            )
    return findings
