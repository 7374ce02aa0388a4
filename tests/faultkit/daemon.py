"""`ingest run --config CONFIG` as a real child process: started, killed (-9), stopped (SIGTERM), with one
log file per process, its log lines parsed, and its resident memory sampled from /proc/<pid>/status."""

from __future__ import annotations

import calendar
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# cli.py's format: "%(asctime)s %(levelname)s %(name)s: %(message)s", asctime "%Y-%m-%dT%H:%M:%SZ" in UTC.
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+): (.*)$")
WARNING_LEVELS = frozenset({"WARNING", "ERROR", "CRITICAL"})


@dataclass(slots=True)
class Run:
    """One daemon process."""

    log: Path
    pid: int
    started_at: float
    ended_at: float | None = None
    how: str = "running"  # running, killed (-9), terminated (SIGTERM), died (exited by itself)
    code: int | None = None
    stop_s: float | None = None  # SIGTERM to exit


@dataclass(frozen=True, slots=True)
class LogLine:
    at: float  # whole seconds (the log's resolution)
    level: str
    logger: str
    text: str
    log: str  # the log file's name


@dataclass(frozen=True, slots=True)
class Traceback:
    at: float  # the last timestamped line before it
    log: str
    excerpt: str


class Daemon:
    """The daemon under test, restartable; each process logs to its own file in `workdir`."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.runs: list[Run] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}

    def start(self) -> Run:
        assert not self.alive(), "the daemon is already running"
        log = self.workdir / f"daemon-{len(self.runs) + 1:02d}.log"
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ingest", "run", "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=self.env, cwd=self.workdir,
            )  # fmt: skip
        run = Run(log, self.proc.pid, time.time())
        self.runs.append(run)
        return run

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.alive() and self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> Run | None:
        """The last run if it ended by itself (a crash), recorded as such; None while it runs."""
        if self.proc is None or self.proc.poll() is None:
            return None
        run = self.runs[-1]
        if run.how == "running":
            run.how, run.code, run.ended_at = "died", self.proc.returncode, time.time()
            return run
        return None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        run = self.runs[-1]
        run.how, run.code, run.ended_at = "killed", self.proc.returncode, time.time()

    def terminate(self, timeout_s: float = 15.0) -> Run:
        """SIGTERM and wait; a daemon that does not stop in time is killed (and recorded so)."""
        assert self.proc is not None
        run = self.runs[-1]
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            run.code = self.proc.wait(timeout_s)
            run.how = "terminated"
        except subprocess.TimeoutExpired:
            self.proc.kill()
            run.code = self.proc.wait(10)
            run.how = "hung on SIGTERM, killed"
        run.stop_s = time.monotonic() - t0
        run.ended_at = time.time()
        return run

    def close(self) -> None:
        if self.alive():
            self.terminate()


def parse_logs(runs: list[Run]) -> tuple[list[LogLine], list[Traceback]]:
    """Every timestamped line of every run, and every traceback with the time of the line before it."""
    lines: list[LogLine] = []
    tracebacks: list[Traceback] = []
    for run in runs:
        if not run.log.exists():
            continue
        last_at, last_line = run.started_at, ""
        text = run.log.read_text(errors="replace").splitlines()
        for i, raw in enumerate(text):
            m = LOG_LINE.match(raw)
            if m:
                last_at = float(calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%SZ")))
                last_line = raw
                lines.append(LogLine(last_at, m.group(2), m.group(3), m.group(4), run.log.name))
            elif raw.startswith("Traceback"):
                end = next((j for j in range(i + 1, len(text)) if LOG_LINE.match(text[j])), len(text))
                block = text[i:end]
                where = [b.strip() for b in block if b.strip().startswith("File ")][-1:]
                excerpt = "\n".join([last_line[:300], *where, *block[-1:]])
                tracebacks.append(Traceback(last_at, run.log.name, excerpt))
    return lines, tracebacks


class RssSampler(threading.Thread):
    """Samples VmRSS of whatever process `pid()` names, every `period_s`."""

    def __init__(self, pid: Callable[[], int | None], period_s: float = 0.5) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid = pid
        self.period_s = period_s
        self.samples: list[tuple[float, int, int]] = []  # (time, pid, VmRSS kB)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.period_s):
            pid = self.pid()
            kb = vm_rss_kb(pid) if pid else None
            if pid and kb is not None:
                self.samples.append((time.time(), pid, kb))

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    @property
    def max_mb(self) -> float:
        return max((kb for _, _, kb in self.samples), default=0) / 1024


def vm_rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
