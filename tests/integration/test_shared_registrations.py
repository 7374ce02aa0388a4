"""A registration that several watched aircraft have (plane-alert-db's short serials, ingest/watchlist.py):
on both backends, each aircraft is stored under its own hex, and naming the registration says which there
are, also in a database written before they were told apart (where one aircraft held all their hexes)."""

from __future__ import annotations

import pytest

from ingest.services import AmbiguousTail, resolve_tail
from ingest.store import open_store
from ingest.watchlist import WatchEntry, Watchlist, parse_watchlist

pytestmark = pytest.mark.integration

ROWS = """$ICAO,$Registration,$Operator,$Type,$ICAO Type
3B75EE,17,French Air Force,Pilatus PC-21,PC21
3B9BD7,17,French Navy,Dassault Atlantique 2,ATLA
AE01D2,62-4125,USAF,Boeing RC-135W,R135
"""


def test_each_is_stored_under_its_hex_and_the_registration_names_them(database: str) -> None:
    store = open_store(database)
    try:
        # As an older ingest stored it: one aircraft `17` with both hexes.
        merged = WatchEntry("17", ("3b75ee", "3b9bd7"), "French Air Force", "Pilatus PC-21", "PC21", "", (), "")
        store.sync_watchlist(Watchlist([merged]))
        assert resolve_tail(store, "17").hexes == ("3b75ee", "3b9bd7")
        store.sync_watchlist(parse_watchlist(ROWS))  # this version's reading of the same rows
        with pytest.raises(AmbiguousTail) as info:
            resolve_tail(store, "17")
        assert info.value.candidates == ("3B75EE", "3B9BD7")  # not the emptied `17`
        assert "'17' is the registration of 2 aircraft: 3B75EE (French Air Force PC21); 3B9BD7" in str(info.value)
        pc21 = resolve_tail(store, "3b75ee")
        assert (pc21.key, pc21.hexes, pc21.label) == ("3B75EE", ("3b75ee",), "17")
        assert resolve_tail(store, "62 4125").key == "62-4125"
    finally:
        store.close()
