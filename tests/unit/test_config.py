"""Configuration: the bundled file covers every key, precedence file < env < flags, and every bad value is a
ConfigError naming the key and where the value came from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingest.app import build_app
from ingest.config import FEED_KEYS, SECTIONS, describe, env_name, feed_env_name, load
from ingest.errors import ConfigError
from tests.conftest import REPO, SMALL_WATCHLIST, render_config

BUNDLED = REPO / "config" / "ingest.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def minimal(tmp_path: Path, extra: str = "", feeds: str = "") -> Path:
    return write(tmp_path, f'[watchlist]\npath = "{SMALL_WATCHLIST}"\n[replay]\non_start = []\n{extra}\n{feeds}')


def test_bundled_config_loads_and_shows_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # its relative paths are relative to the working directory
    settings = load(BUNDLED, environ={})
    text = BUNDLED.read_text()
    for section, keys in SECTIONS.items():
        assert f"[{section}]" in text
        for key in keys:
            if key.env_only:  # documented by its variable, never as a key in the file
                assert env_name(section, key.name) in text
                assert not re.search(rf"^{key.name} = ", text, re.M)
                continue
            assert re.search(rf"^#?\s*{key.name} = ", text, re.M), (
                f"{section}.{key.name} missing from the bundled config"
            )
            assert env_name(section, key.name) in text or section == "feeds"
    first_feed = text.split("\n[[feeds]]\n")[1]
    for key in FEED_KEYS:
        if key.env_only:
            assert f"{key.name}_file = " in text and "never here" in text
            continue
        # every key is shown on an active feed or on a commented example of the kind it belongs to
        assert re.search(rf"^(# )?{key.name} = ", text, re.M), f"feeds.{key.name} missing from the bundled config"
    for key in ("name", "kind", "base_url", "interval_s", "max_per_request", "max_age_s"):
        assert re.search(rf"^{key} = ", first_feed, re.M)
    assert [f.name for f in settings.feeds] == ["adsb.lol", "adsb.fi"]
    assert settings.area.crs == "EPSG:5179" and settings.mqtt.enabled is False
    assert (settings.area.south, settings.area.west, settings.area.north, settings.area.east) == (
        33.0,
        124.0,
        43.5,
        132.0,
    )
    build_app(settings)  # the bundled feeds keep to the published limits with the bundled watchlist


def test_precedence_defaults_file_env_flags(tmp_path: Path) -> None:
    path = minimal(tmp_path, '[mqtt]\nport = 1884\nhost = "broker"')
    env = {"INGEST_MQTT_PORT": "1885", "INGEST_SORTIES_GAP_S": "600"}
    s = load(path, environ=env, overrides={"mqtt.port": "1886"})
    assert s.mqtt.port == 1886 and s.source_of("mqtt.port") == "--set mqtt.port"
    assert s.mqtt.host == "broker" and s.source_of("mqtt.host") == str(path)
    assert s.sorties.gap_s == 600.0 and s.source_of("sorties.gap_s") == "INGEST_SORTIES_GAP_S"
    assert s.mqtt.topic_prefix == "ingest" and s.source_of("mqtt.topic_prefix") == "default"


def test_feed_keys_from_env_and_flags(tmp_path: Path) -> None:
    feeds = '[[feeds]]\nname = "adsb.lol"\nkind = "readsb-v2"\nbase_url = "https://api.adsb.lol"\n'
    path = minimal(tmp_path, feeds=feeds)
    assert feed_env_name("adsb.lol", "interval_s") == "INGEST_FEEDS_ADSB_LOL_INTERVAL_S"
    s = load(path, environ={"INGEST_FEEDS_ADSB_LOL_INTERVAL_S": "20"}, overrides={"feeds.adsb.lol.enabled": "false"})
    assert s.feeds[0].interval_s == 20.0 and s.feeds[0].enabled is False


def test_config_path_falls_back_to_env_then_bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = minimal(tmp_path)
    assert load(None, environ={"INGEST_CONFIG": str(path)}).path == path
    monkeypatch.chdir(REPO)
    assert load(None, environ={}).path == Path("config/ingest.toml")


BAD = [
    ("[area]\ncolour = 1", "area.colour", "unknown key"),
    ("[areas]\nsouth = 1", "areas", "unknown section"),
    ('[area]\nsouth = "33"', "area.south", "must be a number"),
    ("[area]\nsouth = 44.0", "area.south", "must be less than area.north"),
    ("[area]\nwest = 133.0", "area.west", "must be less than area.east"),
    ("[area]\nnorth = 95.0", "area.north", "latitude between -90 and 90"),
    ('[area]\ncrs = "EPSG:999999"', "area.crs", "unknown CRS"),
    ('[area]\ncrs = "EPSG:4326"', "area.crs", "not a projected CRS"),
    ("[mqtt]\nport = 70000", "mqtt.port", "TCP port"),
    ('[mqtt]\nenabled = "yes"', "mqtt.enabled", "true or false"),
    ("[mqtt]\nport = 1.5", "mqtt.port", "must be an integer"),
    ('[daemon]\nlog_level = "LOUD"', "daemon.log_level", "must be one of"),
    ("[sorties]\ngap_s = 0", "sorties.gap_s", "greater than 0"),
]


@pytest.mark.parametrize(("text", "key", "reason"), BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_values_name_the_key_and_the_file(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = minimal(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    assert info.value.key == key and info.value.source == str(path)
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{path}: {key}: ")


def test_missing_watchlist_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[watchlist]\npath = "/nonexistent/list.csv"\n[replay]\non_start = []\n')
    with pytest.raises(ConfigError, match=r"watchlist\.path: no such file: /nonexistent/list\.csv") as info:
        load(path, environ={})
    assert info.value.source == str(path)


def test_bad_env_and_flag_values_name_their_source(tmp_path: Path) -> None:
    path = minimal(tmp_path)
    with pytest.raises(ConfigError) as info:
        load(path, environ={"INGEST_MQTT_PORT": "eighty"})
    assert (info.value.key, info.value.source) == ("mqtt.port", "INGEST_MQTT_PORT")
    with pytest.raises(ConfigError) as info:
        load(path, environ={}, overrides={"area.south": "x"})
    assert info.value.source == "--set area.south"
    with pytest.raises(ConfigError, match="unknown setting"):
        load(path, environ={"INGEST_MQTT_PROT": "1883"})
    with pytest.raises(ConfigError, match="unknown key"):
        load(path, environ={}, overrides={"mqtt.prot": "1883"})


def test_missing_file_and_broken_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "absent.toml", environ={})
    broken = write(tmp_path, "[area\nsouth = 1")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load(broken, environ={})
    assert info.value.source == str(broken)


FEED_BAD = [
    ({"kind": "carrier-pigeon"}, "feeds[0].kind", "unknown feed kind"),
    ({"base_url": "api.adsb.lol"}, "feeds[0].base_url", "http(s) URL"),
    ({"base_url": "https://api.adsb.lol/v2"}, "feeds[0].base_url", "must stop before /v2/"),
    ({"base_url": "https://opendata.adsb.fi/api", "interval_s": 1.5}, "feeds[0].interval_s", "too short"),
    ({"interval_s": -1}, "feeds[0].interval_s", "greater than 0"),
    ({"max_per_request": 5000}, "feeds[0].max_per_request", "between 1 and 1000"),
    ({"kind": "aircraft-json", "base_url": ""}, "feeds[0].source", "file path or an http(s) URL"),
]


@pytest.mark.parametrize(("changes", "key", "reason"), FEED_BAD, ids=[f[1] + ":" + f[2] for f in FEED_BAD])
def test_bad_feeds_name_the_key(tmp_path: Path, changes: dict[str, object], key: str, reason: str) -> None:
    feed = {"name": "x", "kind": "readsb-v2", "base_url": "http://127.0.0.1:9", "interval_s": 10.0, **changes}
    path = write(
        tmp_path, render_config({"watchlist": {"path": str(SMALL_WATCHLIST)}, "replay": {"on_start": []}}, [feed])
    )
    with pytest.raises(ConfigError) as info:
        build_app(load(path, environ={}))
    assert info.value.key == key and reason in info.value.reason
    assert info.value.source in {str(path), "default"}


def test_duplicate_feed_names_and_a_loopback_host_has_no_limit(tmp_path: Path) -> None:
    feed = {"name": "x", "kind": "readsb-v2", "base_url": "http://127.0.0.1:9", "interval_s": 0.1}
    sections = {"watchlist": {"path": str(SMALL_WATCHLIST)}, "replay": {"on_start": []}}
    app = build_app(load(write(tmp_path, render_config(sections, [feed])), environ={}))
    assert app.feeds[0].min_request_spacing_s == 0.0
    with pytest.raises(ConfigError, match=r"feeds\[1\]\.name: 'x' is used twice"):
        load(write(tmp_path, render_config(sections, [feed, feed])), environ={})


def test_describe_annotates_every_value(tmp_path: Path) -> None:
    s = load(minimal(tmp_path), environ={"INGEST_AREA_NAME": "Yellow Sea"})
    text = describe(s)
    assert 'name = "Yellow Sea"  # INGEST_AREA_NAME' in text
    assert "gap_s = 1800.0  # default" in text


# -- MQTT secrets ------------------------------------------------------------------------------------


def test_mqtt_password_never_from_the_file(tmp_path: Path) -> None:
    path = minimal(tmp_path, '[mqtt]\npassword = "hunter2"')
    with pytest.raises(ConfigError, match="never put it in the file: set INGEST_MQTT_PASSWORD") as info:
        load(path, environ={})
    assert info.value.key == "mqtt.password" and "hunter2" not in str(info.value)


def test_mqtt_password_from_env_or_file_and_masked(tmp_path: Path) -> None:
    path = minimal(tmp_path)
    s = load(path, environ={"INGEST_MQTT_PASSWORD": "hunter2"})
    assert s.mqtt.password == "hunter2"
    assert "hunter2" not in repr(s) and "hunter2" not in describe(s)
    assert 'password = "***"  # INGEST_MQTT_PASSWORD' in describe(s)
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    s = load(minimal(tmp_path, f'[mqtt]\npassword_file = "{secret}"'), environ={})
    assert s.mqtt.password == "from-a-file" and "from-a-file" not in describe(s)
    with pytest.raises(ConfigError, match="not both"):
        load(minimal(tmp_path, f'[mqtt]\npassword_file = "{secret}"'), environ={"INGEST_MQTT_PASSWORD": "x"})
    with pytest.raises(ConfigError, match=r"mqtt\.password_file: cannot read /nonexistent"):
        load(minimal(tmp_path, '[mqtt]\npassword_file = "/nonexistent"'), environ={})


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('[mqtt]\nca_file = "/nonexistent/ca.pem"', "mqtt.ca_file", "no such file"),
        (f'[mqtt]\ncert_file = "{SMALL_WATCHLIST}"', "mqtt.cert_file", "go together"),
        ('[mqtt]\ntopic_prefix = "a/#"', "mqtt.topic_prefix", "without wildcards"),
    ],
)
def test_mqtt_files_and_topic(tmp_path: Path, text: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(minimal(tmp_path, text), environ={})
    assert info.value.key == key and reason in info.value.reason
