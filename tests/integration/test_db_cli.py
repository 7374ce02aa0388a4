"""`ingest db stats` and `ingest db vacuum` on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ingest.cli import main
from ingest.models import Alert, PollRecord, Sighting
from ingest.store import Tracking, open_store
from tests.conftest import ConfigWriter, observation

pytestmark = pytest.mark.integration

T0 = datetime(2026, 10, 30, 12, 0, tzinfo=UTC)
RECORD = PollRecord("a", T0, 5, 1, 200, 1, 1, 1, 0, 0, None)


def sighting(hex_icao: str, at: datetime) -> Sighting:
    return Sighting(observation(hex_icao, position_at=at, feed="a"), None, "R135", 1.0, 2.0)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def filled(database: str, rows: int) -> None:
    """`rows` sightings of two aircraft, a minute apart from T0 on (across October and November 2026), and
    one alert in the outbox."""
    store = open_store(database)
    hexes = ("ae01d2", "ae01ce")
    at = [T0 + timedelta(minutes=2 * i) for i in range(rows // 2)]
    store.save_poll(RECORD, [sighting(h, t) for t in at for h in hexes], record_poll=False)
    store.save_tracking(Tracking(alerts=[Alert("x/start", "ingest/x", "{}")]))
    store.close()


def test_db_stats_counts_rows_and_sizes(
    database: str, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config([]))
    filled(database, 4000)  # 2,000 a hex, two minutes apart: 66.6 hours, into November
    code, out, err = run(capsys, "db", "stats", "--config", config, "--database", database, "--format", "json")
    assert code == 0, err
    stats: dict[str, Any] = json.loads(out)
    assert stats["backend"] == ("postgresql" if database.startswith("postgresql") else "sqlite")
    assert stats["tables"]["sightings"] == 4000 == stats["sightings"]["rows"]
    assert stats["tables"]["outbox"] == 1 and stats["tables"]["sorties"] == 0 and stats["tables"]["aircraft"] == 2
    assert stats["sightings"]["oldest"] == "2026-10-30T12:00:00Z"
    assert stats["sightings"]["newest"] == "2026-11-02T06:38:00Z"
    assert stats["size_bytes"] > 0
    if stats["backend"] == "sqlite":
        assert stats["wal_bytes"] is not None and stats["partitions"] == []
    else:
        assert stats["wal_bytes"] is None
        months = {p["name"]: p["rows"] for p in stats["partitions"]}
        assert months == {"sightings_y2026m10": 2 * 1080, "sightings_y2026m11": 4000 - 2 * 1080}  # 36 h in October
        assert all(p["size_bytes"] > 0 for p in stats["partitions"])
    code, out, _ = run(capsys, "db", "stats", "--config", config, "--database", database)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("database: ") and "password" not in out
    assert "sightings: 4,000 from 2026-10-30T12:00:00Z to 2026-11-02T06:38:00Z" in lines
    assert any(line.split() == ["sightings", "4,000"] for line in lines)
    if stats["backend"] == "postgresql":
        assert any(line.startswith("sightings_y2026m10  2,160") for line in lines), out


def test_db_vacuum_gives_space_back(
    database: str, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config([]))
    filled(database, 20_000)
    store = open_store(database)
    before = store.stats()
    assert store.prune_sightings(T0 + timedelta(days=30), "", 30_000, 10) == (20_000, None)  # every one
    store.close()
    code, out, err = run(capsys, "db", "vacuum", "--config", config, "--database", database)
    assert code == 0, err
    assert out.startswith(f"{before.where}: VACUUM") and " before, " in out
    store = open_store(database)
    after = store.stats()
    store.close()
    if after.backend == "sqlite":
        assert after.free_bytes == 0 and after.size_bytes < before.size_bytes / 2
        assert after.wal_bytes == 0  # the WAL VACUUM filled is emptied
    else:
        assert last_analyze(database) is not None


def last_analyze(url: str) -> datetime | None:
    """When PostgreSQL last analysed `sightings`' first month by hand (its statistics arrive within a second)."""
    deadline = time.monotonic() + 5
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'sightings_y2026m10'"
            ).fetchone()
            if (row and row[0]) or time.monotonic() > deadline:
                return row[0] if row else None
            time.sleep(0.2)


def test_db_needs_an_action_and_an_existing_database(
    write_config: ConfigWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config([]))
    assert run(capsys, "db", "--config", config)[0] == 2
    code, _, err = run(capsys, "db", "stats", "--config", config, "--database", str(tmp_path / "nope.db"))
    assert code == 1 and err.startswith("ingest: error: no database at ") and len(err.splitlines()) == 1
    assert not (tmp_path / "nope.db").exists()
    code, _, err = run(capsys, "db", "vacuum", "--config", config, "--database", str(tmp_path / "nope.db"))
    assert code == 1 and "Traceback" not in err
