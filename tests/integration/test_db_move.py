"""Moving over to PostgreSQL: `ingest db migrate` on either backend (an older schema upgraded, a new database
made) and `ingest db copy --to URL` from a real SQLite file into a real PostgreSQL database: the same answers
afterwards, a stopped copy resumed without a row twice, rows the target held kept, counts verified."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ingest.cli import main
from ingest.errors import StoreError
from ingest.store import postgres_schema, transfer
from ingest.store.postgres import PostgresStore, apply_migrations, close_pool
from tests.conftest import REPO, ConfigWriter
from tests.pg import database_name, drop_database, fresh_database, require_server, server_url

pytestmark = pytest.mark.integration

DEMO = REPO / "config" / "demo" / "synthetic-tora23-replay.ndjson.gz"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def sqlite_demo(write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]) -> Path:
    """A SQLite database holding the demo's two sorties; returns its config."""
    config = write_config([])
    assert main(["replay", "--config", str(config), str(DEMO)]) == 0
    capsys.readouterr()
    return config


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def answers(capsys: pytest.CaptureFixture[str], config: Path, *database: str) -> list[Any]:
    """What a user sees: the sorties, a tail's sightings, by callsign too."""
    got = []
    for argv in (["sorties"], ["sightings", "62-4125", "--limit", "0"], ["sightings", "ROKN621", "--limit", "0"]):
        code, out, err = run(capsys, *argv, "--config", str(config), *database, "--format", "json")
        assert code == 0, err
        got.append(json.loads(out))
    return got


def test_copy_gives_the_same_answers_and_verifies_the_counts(
    sqlite_demo: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "db", "copy", "--config", str(sqlite_demo), "--to", pg_url)
    assert code == 0, err
    assert "verified: every table's rows are in the target" in out
    assert "  sightings                344 ->          344" in out
    assert answers(capsys, sqlite_demo) == answers(capsys, sqlite_demo, "--database", pg_url)
    # Copied ids are followed by new ones: the target's sequences moved past them.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        copied = conn.execute("SELECT max(id) FROM aircraft").fetchone()
        new = conn.execute("INSERT INTO aircraft (key) VALUES ('NEW-1') RETURNING id").fetchone()
        assert copied is not None and new is not None and new[0] > copied[0]
    # Copying again finds everything there: nothing new, still verified.
    code, out, err = run(capsys, "db", "copy", "--config", str(sqlite_demo), "--to", pg_url)
    assert code == 0 and "verified" in out and "MISSING" not in out, out + err


def test_a_stopped_copy_resumes_where_it_was(
    sqlite_demo: Path, pg_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "CHUNK_ROWS", 50)
    real = PostgresStore.copy_in
    calls = {"n": 0}

    def failing(self: PostgresStore, table: str, columns: Any, rows: Any) -> int:
        calls["n"] += table == "sightings"
        if calls["n"] > 3:  # the connection drops in the middle of the sightings
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return real(self, table, columns, rows)

    monkeypatch.setattr(PostgresStore, "copy_in", failing)
    code, _, err = run(capsys, "db", "copy", "--config", str(sqlite_demo), "--to", pg_url)
    assert code == 1 and "server closed the connection" in err and "Traceback" not in err
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM sightings").fetchone()
        partial = row[0] if row else 0
        mark = conn.execute("SELECT value FROM meta WHERE key LIKE 'copy:%:sightings'").fetchone()
    assert 0 < partial < 344 and mark is not None
    monkeypatch.setattr(PostgresStore, "copy_in", real)
    seen: list[int] = []
    monkeypatch.setattr(transfer, "_copy_table", _spy(transfer._copy_table, seen))
    code, out, err = run(capsys, "db", "copy", "--config", str(sqlite_demo), "--to", pg_url)
    assert code == 0 and "verified" in out, out + err
    assert sum(seen) == 344 - partial  # the second run read only what the first had not written
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT (hex, ts)) FROM sightings").fetchone()
    assert row == (344, 344)


def _spy(copy_table: Any, seen: list[int]) -> Any:
    """_copy_table, counting the sightings it writes."""

    def spied(source: Any, target: Any, table: str, key: Any, columns: Any, on_rows: Any) -> None:
        def count(n: int) -> object:
            if table == "sightings":
                seen.append(n)
            return on_rows(n)

        copy_table(source, target, table, key, columns, count)

    return spied


def test_rows_the_target_held_are_kept(sqlite_demo: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "db", "migrate", "--config", str(sqlite_demo), "--database", pg_url)[0] == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('elsewhere', 'x')")
    code, out, err = run(capsys, "db", "copy", "--config", str(sqlite_demo), "--to", pg_url)
    assert code == 0 and "verified" in out, out + err
    assert "  meta                       0 ->            1 (1 more in the target: rows it held before)" in out


def test_copy_refuses_what_it_cannot_do(sqlite_demo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "db", "copy", "--config", str(sqlite_demo), "--to", str(tmp_path / "x.db"))
    assert code == 2 and "--to must be a postgresql://" in err
    missing = tmp_path / "none.db"
    code, _, err = run(capsys, "db", "copy", "--database", str(missing), "--to", "postgresql://u@127.0.0.1:9/x")
    assert code == 1 and "no database at" in err and not missing.exists()


def test_migrate_makes_a_new_postgresql_database_and_says_so(
    write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    require_server()
    name = database_name()
    url = f"{server_url()}/{name}"
    try:
        code, out, err = run(capsys, "db", "migrate", "--config", str(write_config([])), "--database", url)
        assert code == 0, err
        assert f"applied {', '.join(postgres_schema.names())}" in out
        assert "partitions ready for sightings_y" in out
        code, out, _ = run(capsys, "db", "migrate", "--config", str(write_config([])), "--database", url)
        assert code == 0 and "the schema is up to date" in out
    finally:
        drop_database(name)


def test_an_older_postgresql_schema_is_upgraded_keeping_its_rows(
    pg_url: str, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    first, *later = postgres_schema.MIGRATIONS
    with psycopg.connect(pg_url, autocommit=True) as conn:  # a database an older ingest made
        conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        with conn.transaction():
            for statement in first[1]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (%s, now()::text)", (first[0],))
        conn.execute("INSERT INTO aircraft (key, registration) VALUES ('62-4125', '62-4125')")
    code, out, err = run(capsys, "db", "migrate", "--config", str(write_config([])), "--database", pg_url)
    assert code == 0, err
    assert f"applied {', '.join(name for name, _ in later)}" in out
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert apply_migrations(conn) == []  # nothing left to apply
        assert conn.execute("SELECT registration FROM aircraft").fetchall() == [("62-4125",)]
    close_pool(pg_url)


def test_an_older_sqlite_schema_is_upgraded_keeping_its_rows(
    write_config: ConfigWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ingest.store import sqlite_schema

    db = tmp_path / "old.db"
    with closing(sqlite3.connect(db)) as conn:  # only the first migration, as the first release made it
        sqlite_schema.apply(conn, stop_before=sqlite_schema.names()[1])
        conn.execute("INSERT INTO aircraft (key, registration) VALUES ('62-4125', '62-4125')")
        conn.commit()
    code, out, err = run(capsys, "db", "migrate", "--config", str(write_config([])), "--database", str(db))
    assert code == 0, err
    assert f"applied {', '.join(sqlite_schema.names()[1:])}" in out
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT registration FROM aircraft").fetchall() == [("62-4125",)]


def test_a_read_command_refuses_a_postgresql_database_without_the_schema(
    pg_url: str, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "sorties", "--config", str(write_config([])), "--database", pg_url)
    assert code == 1 and "no ingest schema" in err and "ingest db migrate" in err
    with pytest.raises(StoreError):
        PostgresStore(f"{pg_url}_missing", create=False)
