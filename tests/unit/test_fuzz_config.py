"""Fuzz: `config.load` on generated TOML files, environment variables and `--set` flags.

The files hold every known section and key (and unknown ones) with values of any TOML type: huge integers,
inf and nan, strings with escapes and NUL, deep arrays and inline tables, dates; some are then cut, get
bytes that are not UTF-8 or a deep nest spliced in. Allowed: Settings, or one ConfigError whose message is
one line and never holds a secret's value.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from ingest.config import FEED_KEYS, SECTIONS, Settings, load
from ingest.errors import ConfigError
from tests.conftest import SMALL_WATCHLIST
from tests.unit.conftest import check_text, deep, fuzz

SECRET = "hunter2-fuzz-secret"
SECRET_FLAGS = ["mqtt.password", "feeds.adsb.lol.api_key", "feeds.sky.client_secret", "feeds.x.api_key"]

scalars = st.one_of(
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63, -(2**63) - 1, 10**30, 0, -1, 1, 65_535, 65_536]),
    st.floats(),  # inf and nan included: TOML has them
    st.sampled_from([1e300, -0.0, 0.5, 3.05, 1e-300]),
    st.text(max_size=20),
    st.sampled_from(["", " ", "EPSG:5179", "EPSG:4326", "UTC", "hex", "area", "mil", "\x00", "\x7f"]),
    st.integers(4_000, 6_000).map(lambda n: "x" * n),
    st.sampled_from(["1979-05-27T07:32:00Z", "1979-05-27", "07:32:00"]).map(lambda s: _Raw(s)),
)
toml_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8,
)


class _Raw(str):
    """A value written into the TOML text as it is (dates and times)."""


def toml(value: Any) -> str:
    if isinstance(value, _Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + "}"


def known_value(key_kind: str) -> st.SearchStrategy[Any]:
    good = {
        "str": st.sampled_from(["x", "adsb.lol", "readsb-v2", "opensky", "127.0.0.1", "EPSG:5179", ""]),
        "int": st.integers(-10, 70_000),
        "float": st.floats(-10, 1e6),
        "bool": st.booleans(),
        "path": st.just(str(SMALL_WATCHLIST)),
        "paths": st.just([]),
        "strs": st.sampled_from([["hex"], ["hex", "area"], ["mil", "mil"], []]),
    }[key_kind]
    return st.one_of(good, good, toml_values)


@st.composite
def document(draw: st.DrawFn) -> str:
    lines = []
    for name in draw(st.lists(st.sampled_from([*SECTIONS, "nosuch"]), unique=True)):
        keys = SECTIONS.get(name, ())
        lines.append(f"[{name}]")
        for key in draw(st.lists(st.sampled_from(keys), unique_by=lambda k: k.name)) if keys else ():
            lines.append(f"{key.name} = {toml(draw(known_value(key.kind)))}")
        if draw(st.integers(0, 5)) == 0:
            lines.append(f"{json.dumps(draw(st.text(max_size=8)))} = {toml(draw(toml_values))}")
    if "[watchlist]" not in lines and draw(st.booleans()):
        lines += ["[watchlist]", f"path = {json.dumps(str(SMALL_WATCHLIST))}"]
    if "[replay]" not in lines and draw(st.booleans()):
        lines += ["[replay]", "on_start = []"]
    for _ in range(draw(st.integers(0, 2))):
        lines.append("[[feeds]]")
        for key in draw(
            st.lists(st.sampled_from([k for k in FEED_KEYS if not k.env_only]), unique_by=lambda k: k.name)
        ):
            lines.append(f"{key.name} = {toml(draw(known_value(key.kind)))}")
    return "\n".join(lines) + "\n"


BROKEN_PIECES = [
    b"", b"\xff", b"\xed\xa0\x80", b"\x00", b"x = " + deep(3_000) + b"\n", b"y = " + b"{a = " * 300 + b"1" + b"}" * 300,
    b"[", b"=", b'"', b"\n[area]\nsouth = 50\n",
]  # fmt: skip


@st.composite
def broken(draw: st.DrawFn) -> bytes:
    raw = draw(document()).encode("utf-8", "surrogatepass")
    at = draw(st.integers(0, len(raw)))
    piece = draw(st.sampled_from(BROKEN_PIECES))
    return draw(st.sampled_from([raw, raw[:at], raw[:at] + piece + raw[at:]]))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-config")


def load_any(path: Path, environ: dict[str, str], overrides: dict[str, str]) -> Settings | ConfigError:
    try:
        settings = load(path, environ=environ, overrides=overrides)
    except ConfigError as exc:
        event(f"ConfigError {exc.key.split('.')[0].split('[')[0]}")
        message = str(exc)
        assert "\n" not in message and len(message) < 2_000, message[:300]
        assert SECRET not in message
        check_text(message)
        return exc
    event("Settings")
    return settings


@given(document())
@fuzz(60)
def test_a_generated_config_is_settings_or_one_config_error(folder: Path, text: str) -> None:
    path = folder / "ingest.toml"
    path.write_text(text, encoding="utf-8")
    load_any(path, {}, {})


@given(broken())
@fuzz(60)
def test_a_broken_config_file_is_settings_or_one_config_error(folder: Path, raw: bytes) -> None:
    path = folder / "ingest.toml"
    path.write_bytes(raw)
    load_any(path, {}, {})


env_values = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["\udcff", "a\x00b", "9" * 5_000, "nan", "inf", "1e300", "true", "", "hex,area"]),
)


ENV_NAMES = [
    "INGEST_MQTT_PORT", "INGEST_SORTIES_GAP_S", "INGEST_AREA_CRS", "INGEST_WATCHLIST_PATH", "INGEST_MQTT_PASSWORD",
    "INGEST_NOSUCH",
]  # fmt: skip
FLAGS = [*SECRET_FLAGS, "mqtt.port", "sorties.gap_s", "area.crs", "nosuch.key", "feeds.adsb.lol.interval_s"]


@given(
    st.dictionaries(st.sampled_from(ENV_NAMES), env_values, max_size=3),
    st.dictionaries(st.sampled_from(FLAGS), env_values, max_size=3),
)
@fuzz(60)
def test_environment_and_flags_are_settings_or_one_config_error(
    folder: Path, environ: dict[str, str], overrides: dict[str, str]
) -> None:
    path = folder / "base.toml"
    if not path.exists():
        feeds = '[[feeds]]\nname = "adsb.lol"\nkind = "readsb-v2"\nbase_url = "https://api.adsb.lol"\n'
        path.write_text(f"[watchlist]\npath = {json.dumps(str(SMALL_WATCHLIST))}\n[replay]\non_start = []\n{feeds}")
    flags = {k: SECRET if k in SECRET_FLAGS else v for k, v in overrides.items()}
    environ = {k: SECRET if k == "INGEST_MQTT_PASSWORD" else v for k, v in environ.items()}
    result = load_any(path, environ, flags)
    if any(k in SECRET_FLAGS for k in flags):
        assert isinstance(result, ConfigError) and "a secret is never taken from the command line" in str(result)
