"""The database: `open_store()` gives the backend a location names, behind the one `Store` interface
(base.py) that the daemon, the CLI and the API use.

- `sqlite:///path` or a plain path: one SQLite file (sqlite.py), the default;
- `postgresql://user@host/db`: a PostgreSQL server (postgres.py), for several daemons or years of history.

Both run the same queries (sql.py) and give the same answers; only PostgreSQL's driver is heavy, and it
is imported only for a PostgreSQL location.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ingest.store.base import (
    SIGHTING_FIELDS,
    Aircraft,
    DatabaseMissing,
    DatabaseStats,
    Store,
    Tracking,
    sighting_row,
)
from ingest.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from ingest.config import DatabaseSettings

__all__ = [
    "SIGHTING_FIELDS", "Aircraft", "DatabaseMissing", "DatabaseStats", "SqliteStore", "Store", "Tracking",
    "is_postgres", "open_configured", "open_store", "sighting_row",
]  # fmt: skip

_POSTGRES = ("postgresql://", "postgres://")


def is_postgres(where: str | Path) -> bool:
    return isinstance(where, str) and where.startswith(_POSTGRES)


def open_configured(database: DatabaseSettings, *, create: bool = True, shared: bool = False) -> Store:
    """The store [database] names: its url (PostgreSQL) when set, else its SQLite path. `shared`: several
    threads use it, one at a time (a SQLite connection otherwise belongs to the thread that opened it)."""
    if database.url:
        return open_store(database.url, create=create, password=database.password, pool_size=database.pool_size)
    return open_store(database.path, create=create, shared=shared)


def open_store(
    where: str | Path, *, create: bool = True, password: str = "", pool_size: int = 4, shared: bool = False
) -> Store:
    """The database at `where`: a path or `sqlite:///path`, or a `postgresql://` URL (its password, when
    not in ~/.pgpass or PGPASSWORD, given apart so that it never sits in a URL that gets printed)."""
    if is_postgres(where):
        from ingest.store.postgres import PostgresStore

        return PostgresStore(str(where), create=create, password=password, pool_size=pool_size)
    text = str(where)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :] or ":memory:"
    return SqliteStore(Path(text), create=create, shared=shared)
