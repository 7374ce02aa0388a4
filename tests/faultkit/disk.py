"""The disk-full scenario's disk: a small tmpfs for the database folder, a filler file that takes every
free block, and the WAL truncated first so that the daemon's next commit needs new blocks (a WAL that was
checkpointed is reused from its start without growing, and would not notice a full disk)."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path


class HarnessError(Exception):
    """The harness could not set a scenario up (not a verdict on the daemon)."""


def mount_tmpfs(directory: Path, size_mb: int) -> None:
    """`mount -t tmpfs` on `directory`; HarnessError (the scenario fails, it is never skipped) when it fails."""
    directory.mkdir(parents=True, exist_ok=True)
    cmd = ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(directory)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise HarnessError(f"cannot mount a tmpfs for the disk-full scenario ({' '.join(cmd)}): {exc}") from exc
    if done.returncode != 0:
        raise HarnessError(
            f"cannot mount a tmpfs for the disk-full scenario ({' '.join(cmd)}): exit {done.returncode}: "
            f"{done.stderr.strip()} (it needs root, or CAP_SYS_ADMIN in a container)"
        )


def unmount_tmpfs(directory: Path, db: Path, keep_as: Path) -> None:
    """Copy the database out (for a post-mortem), then unmount (lazily if it is still busy)."""
    with contextlib.suppress(OSError):
        keep_as.write_bytes(db.read_bytes())
    done = subprocess.run(["umount", str(directory)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True, check=False)


def truncate_wal(db: Path) -> bool:
    """PRAGMA wal_checkpoint(TRUNCATE) from a connection of our own, retried while a reader holds it up."""
    for _ in range(20):
        with closing(sqlite3.connect(db, timeout=5)) as conn:
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if not busy:
            return True
        time.sleep(0.1)
    return False


def fill(directory: Path) -> Path:
    """A file that takes every free block of the file system (ENOSPC is the end of it)."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1 << 9, 1):
            chunk = b"\0" * size
            try:
                while True:
                    f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler
