"""Answers that are not a feed's JSON, through real sockets on 127.0.0.1: each one is a single
FeedUnavailable or FeedFormatError with a reason a person can act on, never a traceback, and never the
query string of a URL (ingest/feeds/transport.py)."""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from ingest.cli import main
from ingest.errors import FeedError, FeedFormatError, FeedUnavailable
from ingest.feeds.base import FeedRequest
from ingest.feeds.readsb import parse_readsb
from ingest.feeds.transport import Fetcher
from tests.conftest import ConfigWriter
from tests.integration.drip import StartServer, answer, head, raw_server, settings

__all__ = ["raw_server"]  # the fixture, used by name

pytestmark = pytest.mark.integration

CAP_MB = 1


@dataclass(frozen=True)
class Case:
    raw: bytes  # the whole answer: status line, headers, body
    error: type[FeedError]
    reason: str  # the reason starts with this
    status: int | None = None


def with_body(body: bytes, **headers: str | int) -> bytes:
    return head(Content_Length=len(body), **headers) + body


HTML = b"<!DOCTYPE html><html><body><h1>Checking your browser</h1></body></html>"
BOMB = gzip.compress(b"0" * (30 * 1024 * 1024), compresslevel=9)  # 30 KB that inflate to 30 MB
CASES = {
    "redirect": Case(
        head(
            "301 Moved Permanently", Location="https://api.example.net/v2/hex/ae01d2?api_key=SECRET", Content_Length=0
        ),
        FeedUnavailable,
        "HTTP 301 Moved Permanently: redirects are not followed, set the feed's URL to where it points "
        "(Location: https://api.example.net/…)",
        301,
    ),
    "html with status 200": Case(
        with_body(HTML, Content_Type="text/html"), FeedFormatError, "invalid JSON or envelope: JSON is malformed"
    ),
    "garbage body": Case(
        with_body(b"\x00\x9c\xff\xfe garbage \x01\x02", Content_Type="application/json"),
        FeedFormatError,
        "invalid JSON or envelope: JSON is malformed",
    ),
    "not http at all": Case(
        b"SSH-2.0-OpenSSH_9.6\r\n", FeedUnavailable, "not an HTTP answer (unreadable status line or headers)"
    ),
    "corrupt gzip body": Case(
        with_body(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03this is not deflate data", Content_Encoding="gzip"),
        FeedUnavailable,
        "corrupt compressed body (its Content-Encoding could not be decoded)",
    ),
    "gzip bomb": Case(
        with_body(BOMB, Content_Encoding="gzip"), FeedUnavailable, f"body over the {CAP_MB * 1024 * 1024} byte cap", 200
    ),
    "empty body with status 200": Case(with_body(b""), FeedUnavailable, "HTTP 200 with an empty body", 200),
}


def fetch_and_parse(fetcher: Fetcher, url: str) -> None:
    req = FeedRequest("loopback", url + "/v2/hex/ae01d2?api_key=SECRET", url + "/v2/hex/ae01d2")
    body = fetcher(req).body
    parse_readsb(body, feed=req.feed, received_at=datetime.now(UTC), source=req.safe_url)


@pytest.mark.parametrize("name", CASES, ids=list(CASES))
def test_each_bad_answer_is_one_feed_error_with_a_readable_reason(name: str, raw_server: StartServer) -> None:
    case = CASES[name]
    server = raw_server(answer(case.raw))
    fetcher = Fetcher(settings(max_body_mb=CAP_MB), "ingest-test/1")
    try:
        with pytest.raises(FeedError) as info:
            fetch_and_parse(fetcher, server.url)
    finally:
        fetcher.close()
    exc = info.value
    assert type(exc) is case.error
    assert exc.reason.startswith(case.reason), exc.reason
    assert exc.status == case.status  # type: ignore[attr-defined]
    assert "SECRET" not in str(exc)
    assert len(server.requests) == 1  # nothing followed, nothing retried


@pytest.mark.parametrize("name", CASES, ids=list(CASES))
def test_ingest_poll_prints_the_reason_on_one_line_without_a_traceback(
    name: str,
    raw_server: StartServer,
    write_config: ConfigWriter,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = raw_server(answer(CASES[name].raw))
    config = write_config([{"name": "loopback", "kind": "readsb-v2", "base_url": server.url, "max_body_mb": CAP_MB}])
    caplog.set_level(logging.DEBUG)
    assert main(["poll", "--config", str(config)]) == 1
    out, err = capsys.readouterr()
    [line] = [line for line in out.splitlines() if line.startswith("loopback:")]
    assert "FAILED" in line and CASES[name].reason in line
    assert "Traceback" not in out + err
    assert not [r for r in caplog.records if r.exc_info]
