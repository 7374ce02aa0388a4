"""The daemon's log lines on stderr: human text by default, JSON lines with `[daemon] log_format = "json"`
(INGEST_DAEMON_LOG_FORMAT, `--log-format json`) for a log collector (Docker, journald, Loki).

A JSON line is one object: `time` (UTC, ISO 8601 with milliseconds and `Z`), `level`, `logger`, `message`
(the text line's message, word for word), then the structured fields the call site passed with `extra=`
(`feed`, `sortie_id`, `hex`, `reason`, ...; see FIELDS), and `exc` (the traceback, as one string) when
there is one. Call sites log state changes (a feed fails or recovers, a sortie starts or ends, the broker
connects), never each poll. No secret is ever passed to a log call, so none can reach either format.

In JSON mode everything else that would write to stderr goes through the same handler too: Python
warnings, uncaught exceptions in threads, and the CLI's last error line (`error_line`), so every line of a
daemon's stderr parses.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any, TextIO

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The structured fields call sites pass with `extra=`, in the order a JSON line shows them. Anything else
# in `extra` is left out, so a log line can never grow a field nobody reviewed.
FIELDS = (
    "event", "feed", "sortie_id", "hex", "registration", "callsign", "end_reason", "kind", "n", "reason", "status",
    "failures", "next_try_s", "broker", "daemon", "path",
)  # fmt: skip

_state = {"json": False}


class TextFormatter(logging.Formatter):
    """`2026-11-21T03:34:59Z INFO ingest.tracker: sortie ... started: ...`, in UTC."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, "%Y-%m-%dT%H:%M:%SZ")
        self.converter = time.gmtime  # UTC everywhere


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback is a field, its newlines escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _iso_ms(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _iso_ms(created: float) -> str:
    return datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def setup(level: str, log_format: str = "text", stream: TextIO | None = None) -> None:
    """Log to `stream` (stderr) at `level` in `log_format` (text or json); replaces the handler an earlier
    call added."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_ingest", False):
            root.removeHandler(old)
    handler._ingest = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # APScheduler warns on every tick a slow poll makes it skip, and on missed runs; the daemon's own job
    # listener reports those (scheduler.py), and the feed's failure is what the user needs to see.
    logging.getLogger("apscheduler").setLevel(max(logging.ERROR, root.level))
    _state["json"] = log_format == "json"
    if log_format == "json":
        logging.captureWarnings(True)  # `py.warnings` records instead of bare lines on stderr
        threading.excepthook = _thread_exception


def _thread_exception(args: threading.ExceptHookArgs) -> None:
    """An exception nothing caught in a thread: one JSON line, not a bare traceback."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    exc_info = (args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)
    logging.getLogger("ingest").error("uncaught exception in thread %s", name, exc_info=exc_info)


def json_enabled() -> bool:
    return _state["json"]


def error_line(message: str) -> None:
    """The CLI's last word (`ingest: error: ...`) as a log line, so a JSON log stays all JSON."""
    logging.getLogger("ingest.cli").error(message)
