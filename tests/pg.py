"""PostgreSQL for the tests: a throwaway database per test on a real server.

The server is INGEST_TEST_POSTGRES (a URL with a role that may create databases), else the one these machines
run: postgresql://postgres@127.0.0.1:5432 (trust authentication). Each test gets a database of its own,
dropped afterwards (WITH (FORCE): a daemon killed mid-test may leave connections behind).

When no server answers, the PostgreSQL tests skip with one line that says how to run them; under CI=true
they fail instead, so a CI run never passes by skipping them (.ci/run starts a server when none answers).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432"
HOW = (
    "PostgreSQL tests need a server: start one (apt-get install postgresql; pg_ctlcluster 15 main start) "
    "or set INGEST_TEST_POSTGRES=postgresql://role@host:port"
)


def server_url() -> str:
    return os.environ.get("INGEST_TEST_POSTGRES", DEFAULT_SERVER).rstrip("/")


@functools.cache
def _reachable() -> str | None:
    """None when the server answers, else why not."""
    try:
        with psycopg.connect(f"{server_url()}/postgres", connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def require_server() -> None:
    """Skip (fail under CI=true) when there is no PostgreSQL server to test against."""
    why = _reachable()
    if why is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL is required under CI=true and does not answer at {server_url()}: {why}")
    pytest.skip(f"{HOW} ({why})")


@contextmanager
def fresh_database(prefix: str = "ingest_test") -> Iterator[str]:
    """A new, empty database on the test server; yields its URL and drops it afterwards."""
    require_server()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = f"{server_url()}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{server_url()}/{name}"
    try:
        yield url
    finally:
        from ingest.store.postgres import close_pool

        close_pool(url)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_name() -> str:
    """A name for a database that does not exist yet (tests of `create`), dropped by drop_database()."""
    return f"ingest_test_{uuid.uuid4().hex[:12]}"


def drop_database(name: str) -> None:
    from ingest.store.postgres import close_pool

    close_pool(f"{server_url()}/{name}")
    with psycopg.connect(f"{server_url()}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Cluster:
    """A throwaway PostgreSQL server of the test's own (initdb into a temporary folder, a free loopback port,
    trust authentication), to stop and start under a running daemon without touching the shared server.
    Needs Debian's postgresql binaries; as root, the server runs as the `postgres` user (initdb refuses root)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bin = _pg_bin()
        self.folder = Path(tempfile.mkdtemp(prefix="ingest-pg-", dir="/tmp"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self._as: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            shutil.chown(self.folder, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self._as, str(self.bin / tool), *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("PostgreSQL's server binaries are required under CI=true: apt-get install postgresql")
        pytest.skip("a throwaway PostgreSQL server needs Debian's postgresql package (apt-get install postgresql)")
    return found[-1].parent
