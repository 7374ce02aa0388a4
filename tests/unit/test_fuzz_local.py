"""Fuzz: a receiver's `aircraft.json` through AircraftJsonFeed.parse (feeds/local.py).

readsb and dump1090-fa write `{"now": <s>, "messages": n, "aircraft": [...]}`; old dump1090 builds use
`altitude` and `speed` and mark MLAT fields in `mlat`/`tisb` lists. The recorded samples are fuzzed by
mutation, and hostile records are spliced among their real ones: the real ones are all kept, or the
body is one FeedFormatError when its envelope itself was broken.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ingest.config import FEED_KEYS, FeedSettings
from ingest.errors import FeedFormatError
from ingest.feeds.base import FeedContext
from ingest.feeds.local import AircraftJsonFeed
from ingest.feeds.readsb import parse_readsb
from ingest.geo import Area
from ingest.models import ParseResult
from ingest.watchlist import WatchEntry, Watchlist
from tests.unit.conftest import check_result, fuzz, hostile_values, mutate

FEED = "receiver"
SOURCE = "/run/readsb/aircraft.json"
RECEIVED = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
SAMPLES = Path(__file__).parents[1] / "fixtures" / "samples"
RECEIVER_FILES = [
    "readsb_aircraft_json__ernesttan1976_adsb-lol__aircraft.json",
    "dump1090fa_aircraft_json__r00b_roob1090__aircraft__EXCERPT.json",
    "legacy_dump1090_aircraft_json__esin_dump1090-exporter__aircraft.json",
    "readsb_globe_aircraft_json__ANG13T_ADSB-Spoof-Detector__excerpt.json",
]


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return doc


DOCS = {name: load(name) for name in RECEIVER_FILES}
# Every sample record's observation, as the parser reads the untouched file; the watchlist of each test
# lists their hexes (a non-ICAO address matches by registration only, so those are left out).
EXPECTED = {
    name: [
        obs
        for obs in parse_readsb(json.dumps(doc).encode(), feed=FEED, received_at=RECEIVED, source=SOURCE).observations
        if not obs.non_icao
    ]
    for name, doc in DOCS.items()
}


def feed_for(hexes: set[str]) -> AircraftJsonFeed:
    entries = [WatchEntry(None, (h,), "", "", "", "", (), "") for h in sorted(hexes)]
    context = FeedContext(Watchlist(entries), Area("box", -90, -180, 90, 180))
    values = {k.name: k.default for k in FEED_KEYS} | {"name": FEED, "kind": "aircraft-json", "source": SOURCE}
    return AircraftJsonFeed(FeedSettings(**values), context)


@st.composite
def spliced(draw: st.DrawFn) -> tuple[str, bytes]:
    """A sample with hostile records and envelope keys spliced in; its own records untouched."""
    name = draw(st.sampled_from(RECEIVER_FILES))
    doc = DOCS[name]
    records = [json.dumps(r).encode() for r in doc["aircraft"]]
    for value in draw(st.lists(hostile_values, max_size=5)):
        records.insert(draw(st.integers(0, len(records))), value)
    head = {k: v for k, v in doc.items() if k != "aircraft"}
    extra = b"".join(b',"junk%d":' % i + v for i, v in enumerate(draw(st.lists(hostile_values, max_size=2))))
    body = json.dumps(head).encode()[:-1] + b',"aircraft":[' + b",".join(records) + b"]" + extra + b"}"
    return name, body


@given(spliced())
@fuzz(40)
def test_a_receivers_records_are_all_kept_among_hostile_ones(case: tuple[str, bytes]) -> None:
    name, body = case
    expected = EXPECTED[name]
    result = feed_for({o.hex_icao for o in expected}).parse(body, RECEIVED, SOURCE)
    check_result(result, FEED)
    assert set(expected) <= set(result.observations)


@given(spliced(), st.data())
@fuzz(60)
def test_a_broken_aircraft_json_is_a_result_or_one_feed_format_error(
    case: tuple[str, bytes], data: st.DataObject
) -> None:
    name, body = case
    feed = feed_for({o.hex_icao for o in EXPECTED[name]})
    try:
        result = feed.parse(mutate(body, data), RECEIVED, SOURCE)
    except FeedFormatError as exc:
        assert exc.feed == FEED
        return
    assert isinstance(result, ParseResult)
    check_result(result, FEED)
