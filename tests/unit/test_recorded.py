"""Reading recorded responses back (ingest/feeds/recorded.py): gzip by magic bytes, one response per
line of .ndjson/.jsonl, a cap per response, and a ReplayError naming the file for damage."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import pytest

from ingest.errors import ReplayError
from ingest.feeds.recorded import MAX_RESPONSE_BYTES, Unreadable, read_replay

CAP = 100


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_one_document_is_one_response(tmp_path: Path) -> None:
    doc = b'{"ac": [], "now": 1}\n'
    assert list(read_replay(write(tmp_path / "a.json", doc))) == [doc]


@pytest.mark.parametrize("name", ["a.ndjson", "a.jsonl", "a.ndjson.gz", "a.jsonl.gz"])
def test_lines_are_responses_blank_lines_and_line_ends_dropped(tmp_path: Path, name: str) -> None:
    data = b'{"n":1}\n\n   \n{"n":2}\r\n{"n":3}'  # CRLF, blank lines, no newline at the end
    path = write(tmp_path / name, data, gz=name.endswith(".gz"))
    assert list(read_replay(path)) == [b'{"n":1}', b'{"n":2}', b'{"n":3}']


def test_gzip_is_told_by_its_magic_bytes_not_the_name(tmp_path: Path) -> None:
    assert list(read_replay(write(tmp_path / "a.json", b'{"n":1}', gz=True))) == [b'{"n":1}']
    assert list(read_replay(write(tmp_path / "b.ndjson.gz", b'{"n":1}\n{"n":2}\n'))) == [b'{"n":1}', b'{"n":2}']


def test_the_default_cap_is_the_feeds_default_body_cap() -> None:
    assert MAX_RESPONSE_BYTES == 20 * 1024 * 1024


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_a_line_over_the_cap_is_one_unreadable_response_and_the_next_lines_replay(
    tmp_path: Path, gz: bool, caplog: pytest.LogCaptureFixture
) -> None:
    at_cap = b"[" + b" " * (CAP - 2) + b"]"
    data = b'{"n":1}\n' + b"0" * (CAP * 50) + b"\n" + at_cap + b"\r\n" + b"1" * (CAP + 1) + b"\n" + b'{"n":2}\n'
    path = write(tmp_path / "a.ndjson.gz", data, gz=gz)
    got = list(read_replay(path, max_bytes=CAP))
    assert got == [b'{"n":1}', b"", at_cap, b"", b'{"n":2}']
    assert [type(r) for r in got] == [bytes, Unreadable, bytes, Unreadable, bytes]
    bad = [r for r in got if isinstance(r, Unreadable)]
    assert [str(r.error) for r in bad] == [
        f"{path}: line 2: the response is over the 100 byte cap",
        f"{path}: line 4: the response is over the 100 byte cap",
    ]
    assert [r.getMessage() for r in caplog.records] == [f"{r.error}; skipped" for r in bad]


def test_an_over_cap_last_line_without_newline(tmp_path: Path) -> None:
    got = list(read_replay(write(tmp_path / "a.ndjson", b'{"n":1}\n' + b"0" * (CAP * 3)), max_bytes=CAP))
    assert got == [b'{"n":1}', b""] and isinstance(got[1], Unreadable)


@pytest.mark.parametrize(("gz", "words"), [(False, ""), (True, " once inflated")], ids=["plain", "gzip"])
def test_one_document_over_the_cap_is_a_replay_error(tmp_path: Path, gz: bool, words: str) -> None:
    path = write(tmp_path / "a.json", b"0" * (CAP + 1), gz=gz)
    with pytest.raises(ReplayError, match=f"^{path}: the response is over the 100 byte cap{words}$"):
        list(read_replay(path, max_bytes=CAP))
    assert list(read_replay(write(tmp_path / "b.json", b"0" * CAP, gz=gz), max_bytes=CAP)) == [b"0" * CAP]


def test_a_truncated_gzip_names_the_file_after_the_lines_before_it(tmp_path: Path) -> None:
    whole = gzip.compress(b"".join(b'{"n":%d}\n' % i for i in range(20_000)))
    path = write(tmp_path / "a.ndjson.gz", whole[: len(whole) // 2])
    got: list[bytes] = []
    with pytest.raises(ReplayError) as info:
        got.extend(read_replay(path))
    assert str(info.value) == f"{path}: truncated gzip stream: the file ends before its compressed data does"
    assert got and got[0] == b'{"n":0}'


def test_a_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    whole = bytearray(gzip.compress(b'{"n":1}\n' * 1000))
    whole[-8:-4] = b"\x00\x00\x00\x00"  # the CRC32 of the trailer
    path = write(tmp_path / "a.ndjson.gz", bytes(whole))
    with pytest.raises(ReplayError, match=f"^{path}: corrupt gzip stream \\(CRC check failed"):
        list(read_replay(path))


def test_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match=r"missing\.json: No such file or directory$"):
        list(read_replay(tmp_path / "missing.json"))


def test_lines_are_read_as_they_are_needed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    path = write(tmp_path / "a.ndjson", b'{"n":1}\n' + b"0" * (CAP + 1) + b"\n")
    responses = read_replay(path, max_bytes=CAP)
    assert next(responses) == b'{"n":1}'
    assert not caplog.records  # the second line has not been looked at yet
    assert next(responses) == b""
    assert len(caplog.records) == 1
