"""The API's parameter parsing, cursors and OpenAPI document, without a server."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route

from ingest import api, views
from ingest.api import BadRequest, _encode_cursor, _flag, _limit, _sightings_cursor, _sorties_cursor, _when
from ingest.config import load
from ingest.store import SIGHTING_FIELDS
from tests.conftest import SMALL_WATCHLIST, render_config

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_importing_the_api_warns_about_nothing() -> None:
    code = "import ingest.api, uvicorn.protocols.http.h11_impl, uvicorn.lifespan.off, uvicorn.loops.auto"
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_cursors_round_trip() -> None:
    assert _sightings_cursor(_encode_cursor("s1", "1795215358", "ae01d2")) == (1795215358, "ae01d2")
    assert _sorties_cursor(_encode_cursor("o1", repr(1795215358.702), "ae01d2-20261120T225558Z")) == (
        1795215358.702,
        "ae01d2-20261120T225558Z",
    )
    assert _sightings_cursor(None) is None and _sorties_cursor(None) is None


@pytest.mark.parametrize(
    "text",
    [
        "", "=", "abc", "czE", "s1", "!!!!", "a" * 401, "czEfMTIzHw",
        _encode_cursor("s1", "1", "ae01d2", "extra"), _encode_cursor("o1", "1", "ae01d2"),
        _encode_cursor("s1", "1.5", "ae01d2"), _encode_cursor("s1", str(2**63), "ae01d2"),
        _encode_cursor("s1", "1", ""), _encode_cursor("s1", "1", "x" * 17),
    ],
)  # fmt: skip
def test_malformed_sightings_cursors(text: str) -> None:
    with pytest.raises(BadRequest, match="cursor: malformed"):
        _sightings_cursor(text)


@pytest.mark.parametrize(
    "text",
    [_encode_cursor("o1", "inf", "x"), _encode_cursor("o1", "nan", "x"), _encode_cursor("o1", "one", "x"),
     _encode_cursor("o1", "1", ""), _encode_cursor("s1", "1", "x"), "bzE"],
)  # fmt: skip
def test_malformed_sorties_cursors(text: str) -> None:
    with pytest.raises(BadRequest, match="cursor: malformed"):
        _sorties_cursor(text)


def test_limit() -> None:
    assert _limit(None, 7) == 7
    assert _limit("1", 7) == 1 and _limit(" 10000 ", 7) == 10000
    for bad in ("0", "-1", "10001", "abc", "1.0", "1e3", "²", "9" * 30, "0x10"):
        with pytest.raises(BadRequest, match="limit: "):
            _limit(bad, 7)


def test_flag_and_when() -> None:
    assert not _flag("open", None)
    assert all(_flag("open", t) for t in ("true", "TRUE", "1", "yes", "on"))
    assert not any(_flag("open", t) for t in ("false", "0", "No", "off"))
    with pytest.raises(BadRequest, match="open: 'maybe' is not true or false"):
        _flag("open", "maybe")
    assert _when("since", None, NOW) is None
    assert _when("since", "24h", NOW) == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert _when("until", "2026-11-21T09:00:00+09:00", NOW) == datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
    for bad in ("yesterday", "99999999999999d", "0001-01-01T00:00:00+01:00", "' OR 1=1 --"):
        with pytest.raises(BadRequest, match=r"^since: "):
            _when("since", bad, NOW)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_openapi_document_matches_the_shapes() -> None:
    doc = api.openapi_document()
    assert doc["openapi"] == "3.1.0"
    schemas = doc["components"]["schemas"]
    assert {r.removeprefix("#/components/schemas/") for r in _refs(doc)} <= set(schemas)
    assert tuple(schemas["Sighting"]["properties"]) == SIGHTING_FIELDS
    assert tuple(schemas["Sortie"]["properties"]) == views.SORTIE_FIELDS
    for path, item in doc["paths"].items():
        declared = {p["name"] for p in item["get"].get("parameters", []) if p["in"] == "path"}
        assert declared == {part[1:-1] for part in path.split("/") if part.startswith("{")}, path


def test_every_route_is_documented(tmp_path: Path) -> None:
    config = tmp_path / "ingest.toml"
    sections: dict[str, dict[str, Any]] = {
        "database": {"path": str(tmp_path / "ingest.db")},
        "watchlist": {"path": str(SMALL_WATCHLIST)},
        "replay": {"on_start": []},
    }
    config.write_text(render_config(sections, []))
    app = api.create_app(load(config, environ={}))
    assert {r.path for r in app.routes if isinstance(r, Route)} == set(api.openapi_document()["paths"])
