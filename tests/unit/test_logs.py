"""ingest/logs.py: the text and JSON formats of a log record, and what `setup` routes through them."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator

import pytest

from ingest import logs


def record(msg: str = "feed %s failed: %s", *args: object, **extra: object) -> logging.LogRecord:
    r = logging.LogRecord("ingest.pipeline", logging.WARNING, __file__, 1, msg, args or ("lol", "HTTP 503"), None)
    r.created = 1795733699.5  # 2026-11-26T22:54:59.500Z
    r.__dict__.update(extra)
    return r


def test_json_line_has_time_level_logger_message_and_fields() -> None:
    line = logs.JsonFormatter().format(record(event="feed_failed", feed="lol", status=503, next_try_s=20))
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2026-11-26T22:54:59.500Z", "level": "WARNING", "logger": "ingest.pipeline",
        "message": "feed lol failed: HTTP 503", "event": "feed_failed", "feed": "lol", "status": 503,
        "next_try_s": 20,
    }  # fmt: skip


def test_json_keeps_only_reviewed_fields_and_leaves_out_none() -> None:
    line = json.loads(logs.JsonFormatter().format(record(feed="lol", status=None, password="hunter2", api_key="k")))
    assert line["feed"] == "lol"
    assert "status" not in line and "password" not in line and "api_key" not in line


def test_json_message_is_the_text_lines_message() -> None:
    r = record(feed="lol")
    text = logs.TextFormatter().format(r)
    assert text == "2026-11-26T22:54:59Z WARNING ingest.pipeline: feed lol failed: HTTP 503"
    assert json.loads(logs.JsonFormatter().format(r))["message"] == text.split(": ", 1)[1]


def test_json_traceback_is_one_field_on_one_line() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        r = logging.LogRecord("ingest", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    line = logs.JsonFormatter().format(r)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "boom" and parsed["exc"].startswith("Traceback") and "ValueError: bad" in parsed["exc"]


def test_non_json_values_become_strings() -> None:
    parsed = json.loads(logs.JsonFormatter().format(record(reason=ValueError("x"), feed=b"\xff")))
    assert parsed["reason"] == "x" and parsed["feed"] == "b'\\xff'"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """A stream for setup() to log to; logging, warnings and the thread hook put back afterwards."""
    stream = io.StringIO()
    root = logging.getLogger()
    level, hook = root.level, threading.excepthook
    try:
        yield stream
    finally:
        for handler in [h for h in root.handlers if getattr(h, "_ingest", False)]:
            root.removeHandler(handler)
        root.setLevel(level)
        threading.excepthook = hook
        logging.captureWarnings(False)
        logs._state["json"] = False


def test_setup_json_routes_thread_errors_and_the_cli_error(captured: io.StringIO) -> None:
    logs.setup("INFO", "json", captured)
    assert logs.json_enabled()
    logging.getLogger("ingest.x").info("hello %s", "there", extra={"feed": "lol"})
    logging.getLogger("ingest.x").debug("not at INFO")

    def fail() -> None:
        raise RuntimeError("a thread's bug")

    thread = threading.Thread(target=fail, name="worker")
    thread.start()
    thread.join()
    logs.error_line("ingest: error: the end")
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert [(x["logger"], x["message"]) for x in lines] == [
        ("ingest.x", "hello there"),
        ("ingest", "uncaught exception in thread worker"),
        ("ingest.cli", "ingest: error: the end"),
    ]
    assert lines[0]["feed"] == "lol" and "RuntimeError: a thread's bug" in lines[1]["exc"]


def test_setup_twice_replaces_the_handler(captured: io.StringIO) -> None:
    logs.setup("INFO", "json", captured)
    logs.setup("INFO", "text", captured)
    assert not logs.json_enabled()
    logging.getLogger("ingest.x").warning("once")
    assert captured.getvalue().count("once") == 1
    assert captured.getvalue().endswith(" WARNING ingest.x: once\n")
