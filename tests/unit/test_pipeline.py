"""`ingest.pipeline`: one poll's requests, what a failure costs, and what is refused before the store."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ingest.feeds.base import FeedRequest
from ingest.feeds.transport import Response
from ingest.models import ParseResult
from ingest.pipeline import MAX_AHEAD_S, _fetch_all, _Tally, refuse_future
from tests.conftest import T0, observation


def test_a_parser_bug_costs_its_answer_not_the_poll(caplog: pytest.LogCaptureFixture) -> None:
    """A parser that raises what it never should (a bug): that answer is one unreadable response, logged
    with its traceback once; the tick's other answers are kept."""

    class Buggy:
        name = "buggy"
        min_request_spacing_s = 0.0

        def requests(self) -> list[FeedRequest]:
            return [FeedRequest("buggy", f"http://x/{i}", f"http://x/{i}") for i in range(3)]

        def parse(self, body: bytes, received_at: datetime, source: str) -> ParseResult:
            if source.endswith("/1"):
                raise OverflowError("date value out of range")
            obs = observation("ae01d2", position_at=received_at)
            return ParseResult((obs,), (), 1, 0, received_at)

    tally = _Tally()
    for _ in range(2):
        failure = _fetch_all(Buggy(), lambda req: Response(200, b"{}"), tally, lambda: T0, lambda s: False)  # type: ignore[arg-type]
        assert failure is not None and failure.reason == "unreadable answer (OverflowError)"
    assert len(tally.observations) == 4  # answers 0 and 2, twice
    assert sum("the parser failed" in r.message for r in caplog.records) == 1


def test_positions_ahead_of_our_clock_are_refused_with_a_reason() -> None:
    ok = observation("ae01d2", position_at=T0 + timedelta(seconds=MAX_AHEAD_S))
    ahead = observation("ae01ce", position_at=T0 + timedelta(hours=1))
    kept, refused = refuse_future([ok, ahead], T0)
    assert kept == [ok]
    (r,) = refused
    assert r.field == "position_time" and "3600 s ahead of our clock" in r.reason and r.raw.startswith("ae01ce")
