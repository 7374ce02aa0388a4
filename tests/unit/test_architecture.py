"""Layering (STYLE.md §3): each third-party library is imported by one module, and the pure core imports
no I/O library. Checked on the source with the ast module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "ingest"

# library -> the only modules allowed to import it
OWNERS = {
    "requests": {"feeds/transport.py"},
    "urllib3": {"feeds/transport.py"},
    "sqlite_utils": {"store/sqlite_schema.py"},
    "sqlite3": {"store/sqlite.py", "store/sqlite_schema.py"},
    "psycopg": {"store/postgres.py"},
    "psycopg_pool": {"store/postgres.py"},
    "paho": {"alerts/mqtt.py"},
    "pyproj": {"geo.py"},
    "apscheduler": {"scheduler.py"},
    "starlette": {"api.py"},
    "uvicorn": {"api.py"},
    "tqdm": {"commands/__init__.py"},
    "matplotlib": {"mapping.py"},
    "prometheus_client": {"metrics_prometheus.py"},
    "apprise": {"alerts/channels/apprise.py"},
}
PURE = {
    "errors.py", "models.py", "records.py", "timeutil.py", "watchlist.py", "geo.py", "alerts/messages.py",
    "alerts/outbox.py", "alerts/events.py", "alerts/routing.py", "feeds/policy.py", "feeds/readsb.py", "views.py",
    "export.py", "feeds/sbs.py", "openapi.py", "feeds/recorded.py", "metrics.py", "watchlist_edits.py",
} | {str(p.relative_to(PACKAGE)) for p in (PACKAGE / "detect").glob("*.py")}  # fmt: skip


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


MODULES = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_third_party_libraries_have_one_owner(module: str) -> None:
    for name in imports(PACKAGE / module):
        top = name.split(".")[0]
        if top in OWNERS:
            assert module in OWNERS[top], f"{module} imports {name}; only {OWNERS[top]} may"


def test_errors_imports_nothing_from_ingest() -> None:
    assert not {n for n in imports(PACKAGE / "errors.py") if n.startswith("ingest")}


@pytest.mark.parametrize("module", sorted(PURE))
def test_pure_core_does_no_io(module: str) -> None:
    forbidden = {"requests", "sqlite_utils", "sqlite3", "paho", "apscheduler", "socket", "urllib3"}
    assert not {n.split(".")[0] for n in imports(PACKAGE / module)} & forbidden
    assert not {n for n in imports(PACKAGE / module) if n in {"ingest.store", "ingest.pipeline", "ingest.scheduler"}}


# Only the edges that serve metrics know their Prometheus implementation; the core calls metrics.Metrics.
METRICS_IMPLEMENTATION_USERS = {"api.py", "commands/daemon.py"}


@pytest.mark.parametrize("module", MODULES)
def test_the_core_counts_through_the_metrics_protocol(module: str) -> None:
    if module in METRICS_IMPLEMENTATION_USERS or module == "metrics_prometheus.py":
        return
    assert "ingest.metrics_prometheus" not in imports(PACKAGE / module)
