"""Start-up is a feature: the read commands must not import the web, scheduler, projection, plotting, HTTP
or MQTT stacks (each costs tens to hundreds of milliseconds; scripts/bench_cli.py has the figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.store import SqliteStore

pytestmark = pytest.mark.integration

HEAVY = ("starlette", "uvicorn", "apscheduler", "pyproj", "numpy", "matplotlib", "requests", "paho", "sqlite_utils",
         "tqdm", "apprise")  # fmt: skip

PROBE = """
import json, sys
from ingest.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded(*argv: str) -> tuple[int, set[str]]:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60, check=False)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["code"], {m.split(".")[0] for m in result["modules"]}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("imports") / "ingest.db"
    SqliteStore(path).close()
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["sightings", "62-4125", "--limit", "5"],
        ["sorties"],
        ["now"],
        ["feeds"],
        ["alerts", "status"],
        ["db", "stats"],
        ["health"],
        ["watchlist", "list"],
        ["watchlist", "show", "62-4125"],
        ["--help"],
    ],
    ids=lambda a: " ".join(a),
)
def test_read_commands_import_no_heavy_stack(argv: list[str], database: Path) -> None:
    code, modules = loaded(*argv, *([] if argv == ["--help"] else ["--database", str(database)]))
    assert code in (0, 1)
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
