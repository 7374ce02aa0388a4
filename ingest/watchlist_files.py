"""The watchlist on disk: which files make it, reading them into the list the daemon watches, and changing
them safely. The parsing, combining and comparing are pure (watchlist.py, watchlist_edits.py).

Three files make the list:

- the bundled list, `[watchlist] path` (config/watchlist.csv): the default, replaced by each release;
- your imported list, `<user folder>/watchlist.csv`, written by `ingest watchlist import` and `update`;
  once it exists it is used instead of the bundled list (delete it to go back);
- your edits, `<user folder>/watchlist-edits.csv`, written by `add` and `remove`, applied on top of
  whichever of the two is used, so they survive imports, updates and upgrades.

The user folder is `[watchlist] user_dir`, else the SQLite database's folder (the data directory). With a
PostgreSQL database there is no such folder: `user_dir` must be set before anything is imported or
edited, and until then the bundled list is used alone.

Writes are atomic (a temporary file beside the target, flushed to disk, renamed over it) and made under an
exclusive lock on `<user folder>/.watchlist.lock`, so two commands never lose each other's change. A list
is checked whole before anything is written: a bad file changes nothing.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ingest import fileio
from ingest.errors import ConfigError, WatchlistError
from ingest.watchlist import Watchlist, load_watchlist, read_watchlist
from ingest.watchlist_edits import Combined, Edits, combine, format_edits, parse_edits

if TYPE_CHECKING:
    from ingest.config import Settings

IMPORTED_NAME = "watchlist.csv"
EDITS_NAME = "watchlist-edits.csv"
LOCK_NAME = ".watchlist.lock"
# The largest list import/update accept: plane-alert-db's whole list (about 17,000 rows) is about 2.5 MB,
# and 50,000 rows (watchlist.MAX_ROWS) of its longest lines would be 13 MB.
MAX_LIST_BYTES = 16 << 20
_NOTE = "# ingest: "  # the comment line an imported list starts with: where it came from, and when


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the watchlist's files are (module docstring)."""

    bundled: Path
    folder: Path | None  # the user folder; None with PostgreSQL and no [watchlist] user_dir
    folder_source: str  # where `folder` came from, for messages: [watchlist] user_dir's source

    @property
    def imported(self) -> Path | None:
        return None if self.folder is None else self.folder / IMPORTED_NAME

    @property
    def edits(self) -> Path | None:
        return None if self.folder is None else self.folder / EDITS_NAME

    def base(self) -> tuple[Path, str]:
        """The list the edits apply to, and its origin: your imported list when there is one, else the bundled."""
        imported = self.imported
        if imported is not None and _is_file(imported):
            return imported, "imported"
        return self.bundled, "bundled"

    def signature(self) -> tuple[tuple[int, int, int] | None, ...]:
        """What the daemon compares to notice a change: each file's inode, size and modification time."""
        return tuple(_stat(p) for p in (self.bundled, self.imported, self.edits))


def sources(settings: Settings) -> Sources:
    """The watchlist's files for these settings."""
    w = settings.watchlist
    if w.user_dir:
        return Sources(w.path, Path(w.user_dir), settings.source_of("watchlist.user_dir"))
    if not settings.database.url:
        return Sources(w.path, settings.database.path.parent, settings.source_of("watchlist.user_dir"))
    return Sources(w.path, None, "")


def _stat(path: Path | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        st = path.stat()
    except (OSError, ValueError):
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


@dataclass(frozen=True, slots=True)
class Loaded:
    """The watchlist as its files make it: the base list, your edits and the two combined."""

    sources: Sources
    base: Watchlist
    base_path: Path
    base_origin: str  # "bundled" or "imported"
    note: str  # an imported list's origin ("imported from ... at ..."), "" for the bundled list
    edits: Edits
    combined: Combined

    @property
    def watchlist(self) -> Watchlist:
        return self.combined.watchlist

    def describe(self) -> str:
        """One line: how many aircraft, from which files."""
        parts = [f"{len(self.watchlist):,} aircraft: the {self.base_origin} list {self.base_path}"]
        if self.note:
            parts[0] += f" ({self.note})"
        if self.edits:
            parts.append(
                f"{len(self.edits.added):,} added and {self.combined.removed:,} removed by you ({self.sources.edits})"
            )
        return "; ".join(parts)


def load(where: Sources) -> Loaded:
    """Read the base list (leniently: the bundled list has always been read so) and your edits (strictly:
    only ingest writes them); WatchlistError naming the file and the line."""
    base_path, origin = where.base()
    base = load_watchlist(base_path)
    note = _read_note(base_path) if origin == "imported" else ""
    edits = Edits()
    if where.edits is not None and _is_file(where.edits):
        edits = parse_edits(_decode(read_capped(where.edits)), str(where.edits))
    return Loaded(where, base, base_path, origin, note, edits, combine(base, edits, origin))


def load_effective(settings: Settings) -> Watchlist:
    """The list the daemon watches; ConfigError naming the key (`watchlist.path`, or `watchlist.user_dir` for
    your files) and where its value came from, when a file cannot be read."""
    where = sources(settings)
    try:
        loaded = load(where)
    except WatchlistError as exc:
        if exc.path == str(where.bundled):
            raise ConfigError("watchlist.path", settings.source_of("watchlist.path"), str(exc)) from exc
        raise ConfigError("watchlist.user_dir", where.folder_source or "default", str(exc)) from exc
    if not len(loaded.watchlist):
        raise ConfigError("watchlist.path", settings.source_of("watchlist.path"), "the watchlist has no aircraft")
    return loaded.watchlist


def _read_note(path: Path) -> str:
    """The origin an imported list's first line records, or ""."""
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            first = fh.readline(1000)
    except OSError:
        return ""
    return first[len(_NOTE) :].strip() if first.startswith(_NOTE) else ""


# -- reading a list to import ----------------------------------------------------------------------------


def read_capped(path: Path, limit: int = MAX_LIST_BYTES) -> bytes:
    """A file's bytes ("-": standard input), refused past `limit` bytes without reading further."""
    try:
        if str(path) == "-":
            import sys

            data = sys.stdin.buffer.read(limit + 1)
        else:
            with path.open("rb") as fh:
                data = fh.read(limit + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise WatchlistError(str(path), getattr(exc, "strerror", None) or type(exc).__name__) from None
    if len(data) > limit:
        raise WatchlistError(str(path), f"larger than {limit >> 20} MiB: not a watchlist")
    return data


def _decode(data: bytes) -> str:
    """UTF-8 text (a BOM dropped); bytes that are not UTF-8 become lone surrogates, which the reader refuses
    with their line number."""
    return data.removeprefix(codecs.BOM_UTF8).decode("utf-8", errors="surrogateescape")


def check_list(data: bytes, label: str) -> Watchlist:
    """A list to import, read strictly (watchlist.py's module docstring): WatchlistError naming `label` and
    the bad lines."""
    return read_watchlist(io.StringIO(_decode(data), newline=None), label, strict=True)


# -- writing ---------------------------------------------------------------------------------------------


def require_folder(settings: Settings) -> Sources:
    """The sources, with a user folder to write to; ConfigError when the database is PostgreSQL and
    `[watchlist] user_dir` is not set."""
    where = sources(settings)
    if where.folder is None:
        raise ConfigError(
            "watchlist.user_dir",
            settings.source_of("watchlist.user_dir"),
            "with a PostgreSQL database, set the folder your own watchlist is kept in "
            "(INGEST_WATCHLIST_USER_DIR, or --set watchlist.user_dir=/var/lib/ingest)",
        )
    return where


@contextlib.contextmanager
def locked(where: Sources) -> Iterator[None]:
    """Hold the user folder's lock (creating the folder): one change at a time, across processes."""
    assert where.folder is not None
    try:
        where.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(where.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    except (OSError, ValueError) as exc:
        raise WatchlistError(str(where.folder), f"cannot make it the watchlist's folder: {_reason(exc)}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def save_edits(where: Sources, edits: Edits) -> None:
    """Write the edits file (removed when there is nothing left in it)."""
    assert where.edits is not None
    if edits:
        write_atomic(where.edits, format_edits(edits).encode("utf-8"))
    else:
        try:
            where.edits.unlink(missing_ok=True)
        except OSError as exc:
            raise WatchlistError(str(where.edits), _reason(exc)) from None


def save_imported(where: Sources, data: bytes, note: str) -> Path:
    """Write an imported list (already checked) as it came, after a comment line that records `note`."""
    assert where.imported is not None
    clean = "".join(c for c in note if c.isprintable() and c not in '"\r\n')[:300]
    write_atomic(where.imported, f"{_NOTE}{clean}\n".encode() + data.removeprefix(codecs.BOM_UTF8))
    return where.imported


def write_atomic(path: Path, data: bytes) -> None:
    """fileio.write_atomic, its failure as a WatchlistError naming the file."""
    try:
        fileio.write_atomic(path, data)
    except OSError as exc:
        raise WatchlistError(str(path), _reason(exc)) from None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__
