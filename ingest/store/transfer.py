"""Moving a database: `ingest db copy --to URL` copies what one database holds (the SQLite file, typically)
into a PostgreSQL database, table by table, in chunks.

- Each chunk is read in its table's key order and written in one target transaction together with the
  place it reached (`meta` key `copy:<source>:<table>`), so a copy that was stopped (Ctrl-C, a lost
  connection) resumes where it was, and never writes a row twice; rows the target already holds are kept
  (`ON CONFLICT DO NOTHING`), so copying into a database that daemons already write to loses nothing.
- Identity columns are copied as they are, and their sequences moved past the copied ids afterwards.
- At the end every table's rows are counted on both sides: the target must hold at least as many.

What stays behind: the poll stream and the leader (`reports`, `leader`: a shared database's own, made anew by
its daemons) and SQLite's migration records (the target has its own).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ingest.errors import StoreError
from ingest.store.sql import SqlStore

# Parents before children (aircraft_hex refers to aircraft); each with the key its chunks are read in.
TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("aircraft", ("id",)),
    ("aircraft_hex", ("hex",)),
    ("feed_polls", ("id",)),
    ("feed_state", ("feed",)),
    ("sorties", ("sortie_id",)),
    ("aircraft_state", ("key",)),
    ("happenings", ("event_id",)),
    ("outbox", ("id",)),
    ("daemons", ("daemon",)),
    ("meta", ("key",)),
    ("sightings", ("hex", "ts")),
)
IDENTITIES = ("aircraft", "feed_polls", "outbox")  # their `id` sequences follow the copied ids
CHUNK_ROWS = 10_000
_MARK = "copy:"


@dataclass(frozen=True, slots=True)
class Counted:
    table: str
    source: int
    target: int

    @property
    def ok(self) -> bool:
        return self.target >= self.source


def marker(source: SqlStore, table: str) -> str:
    return f"{_MARK}{source.describe()}:{table}"


def copy_database(
    source: SqlStore, target: SqlStore, on_rows: Callable[[int], object] = lambda _: None
) -> list[Counted]:
    """Copy every table of `source` into `target` (resuming a copy that stopped); returns the row counts of
    both sides, table by table."""
    if target.backend != "postgresql":
        raise StoreError("ingest db copy writes into PostgreSQL: give --to postgresql://user@host/db")
    if source.describe() == target.describe():
        raise StoreError("the source and the target are the same database")
    for table, key in TABLES:
        columns = _common_columns(source, target, table)
        _copy_table(source, target, table, key, columns, on_rows)
    for table in IDENTITIES:
        target._exec(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"GREATEST((SELECT coalesce(max(id), 0) FROM {table}), 1))"
        )
    return count_both(source, target)


def count_both(source: SqlStore, target: SqlStore) -> list[Counted]:
    counted = []
    for table, _ in TABLES:
        where = f" WHERE key NOT LIKE '{_MARK}%'" if table == "meta" else ""
        counted.append(Counted(table, _count(source, table, where), _count(target, table, where)))
    return counted


def source_rows(source: SqlStore) -> int:
    """How many rows a copy reads in all (for a progress bar)."""
    return sum(_count(source, table, "") for table, _ in TABLES)


def _count(store: SqlStore, table: str, where: str) -> int:
    return int(store._rows(f"SELECT count(*) FROM {table}{where}")[0][0])


def _columns(store: SqlStore, table: str) -> list[str]:
    if store.backend == "sqlite":
        return [row[1] for row in store._rows(f"PRAGMA table_info({table})")]
    return [
        row[0]
        for row in store._rows(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = "
            "current_schema() ORDER BY ordinal_position",
            (table,),
        )
    ]


def _common_columns(source: SqlStore, target: SqlStore, table: str) -> list[str]:
    """The columns the copy moves: the source's, which the target (same migrations, or newer) must have."""
    theirs = set(_columns(target, table))
    ours = _columns(source, table)
    missing = [c for c in ours if c not in theirs]
    if missing:
        raise StoreError(
            f"the target's {table} has no column {', '.join(missing)}: run `ingest db migrate` on both first"
        )
    return ours


def _copy_table(
    source: SqlStore,
    target: SqlStore,
    table: str,
    key: tuple[str, ...],
    columns: Sequence[str],
    on_rows: Callable[[int], object],
) -> None:
    mark = marker(source, table)
    found = target._rows("SELECT value FROM meta WHERE key = ?", (mark,))
    after: list[Any] | None = json.loads(found[0][0]) if found else None
    cols = ", ".join(columns)
    order = ", ".join(key)
    at = [columns.index(k) for k in key]
    while True:
        where, params = ("", []) if after is None else _after(key, after)
        if table == "meta":
            where = f"{where} {'AND' if where else 'WHERE'} key NOT LIKE '{_MARK}%'"
        rows = source._rows(
            f"SELECT {cols} FROM {table}{where} ORDER BY {order} LIMIT ?",
            [*params, CHUNK_ROWS],
        )
        if not rows:
            return
        after = [rows[-1][i] for i in at]
        with target._writing(f"copy {table}"), target.atomic():
            target.copy_in(table, columns, rows)
            target._exec(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (mark, json.dumps(after)),
            )
        on_rows(len(rows))
        if len(rows) < CHUNK_ROWS:
            return


def _after(key: tuple[str, ...], last: Sequence[Any]) -> tuple[str, list[Any]]:
    """Rows past `last` in key order (a row-value comparison, which both SQLite and PostgreSQL speak)."""
    if len(key) == 1:
        return f" WHERE {key[0]} > ?", [last[0]]
    return f" WHERE ({', '.join(key)}) > ({', '.join('?' for _ in key)})", list(last)
