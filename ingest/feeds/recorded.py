"""Recorded feed responses read back from a file, for `ingest replay` (pipeline.replay_file): streamed,
never held whole, each response capped. File reading only: no network, no parsing.

- gzip is recognised by its magic bytes (1f 8b), whatever the file is called, and inflated as it is read:
  a 1 MiB file that inflates to 1 GiB costs one capped response of memory, not a gigabyte.
- `*.ndjson` and `*.jsonl` (`.gz` or not) hold one response per line, read a line at a time; blank lines
  are skipped. Any other file is one response.
- Each response is capped at `max_bytes` (MAX_RESPONSE_BYTES by default: the feeds' own default body
  cap, `max_body_mb` in config.py). A line over the cap is one unreadable response and the lines after it
  still replay; it is yielded as an empty `Unreadable` (which every feed parser refuses as a
  FeedFormatError, so replay_file counts it as one bad response) and logged once with the real reason.
  A one-response file over the cap is a ReplayError.
- A file that cannot be opened, or a gzip stream that is truncated or corrupt, is a ReplayError naming
  the file; the responses before the damage have been yielded by then.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path

from ingest.errors import ReplayError

MAX_RESPONSE_BYTES = 20 * 1024 * 1024  # config.py's default max_body_mb (20), as the live feeds are capped
LINE_SUFFIXES = (".ndjson", ".jsonl")  # one response per line
_GZIP_MAGIC = b"\x1f\x8b"
_SKIP_BYTES = 1 << 20  # read size while skipping the rest of a line over the cap

log = logging.getLogger(__name__)


class Unreadable(bytes):
    """Stands in for a response that could not be read (over the cap). Its bytes are empty, so a feed
    parser refuses it as a FeedFormatError; `error` says what was wrong."""

    error: ReplayError

    def __new__(cls, error: ReplayError) -> Unreadable:
        self = super().__new__(cls, b"")
        self.error = error
        return self


def read_replay(path: Path, max_bytes: int = MAX_RESPONSE_BYTES) -> Iterator[bytes]:
    """The responses in a replay file, in file order: one per non-blank line of an .ndjson/.jsonl file,
    else the whole file; gzip or not. ReplayError when the file cannot be read."""
    try:
        with _opened(path) as (stream, gzipped):
            if path.name.removesuffix(".gz").endswith(LINE_SUFFIXES):
                yield from _lines(path, stream, max_bytes)
            else:
                yield _document(path, stream, max_bytes, gzipped)
    except EOFError as exc:  # gzip: "Compressed file ended before the end-of-stream marker was reached"
        raise ReplayError(str(path), "truncated gzip stream: the file ends before its compressed data does") from exc
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise ReplayError(str(path), f"corrupt gzip stream ({exc})") from exc
    except OSError as exc:
        raise ReplayError(str(path), exc.strerror or str(exc) or type(exc).__name__) from exc


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[tuple[io.BufferedIOBase, bool]]:
    """The file as a binary stream, inflated when it starts with the gzip magic bytes."""
    with path.open("rb") as raw:
        if raw.peek(len(_GZIP_MAGIC))[: len(_GZIP_MAGIC)] != _GZIP_MAGIC:  # peek: a pipe cannot seek back
            yield raw, False
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as inflated:
            yield inflated, True


def _document(path: Path, stream: io.BufferedIOBase, max_bytes: int, gzipped: bool) -> bytes:
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        inflated = " once inflated" if gzipped else ""
        raise ReplayError(str(path), f"the response is over the {max_bytes} byte cap{inflated}")
    return data


def _lines(path: Path, stream: io.BufferedIOBase, max_bytes: int) -> Iterator[bytes]:
    limit = max_bytes + 2  # room for the cap and a CRLF
    number = 0
    while line := stream.readline(limit):
        number += 1
        whole = line.endswith(b"\n") or len(line) < limit  # else the line goes on past the cap
        if not whole:
            while (rest := stream.readline(_SKIP_BYTES)) and not rest.endswith(b"\n"):
                pass
        body = line.rstrip(b"\r\n") if whole else line
        if len(body) > max_bytes:
            error = ReplayError(str(path), f"line {number}: the response is over the {max_bytes} byte cap")
            log.warning("%s; skipped", error)
            yield Unreadable(error)
        elif body.strip():
            yield body
