"""Configuration: the bundled file covers every key, precedence file < env < flags, and every bad value is a
ConfigError naming the key and where the value came from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingest.app import build_app
from ingest.config import ALERT_KEYS, FEED_KEYS, SECTIONS, describe, env_name, feed_env_name, load
from ingest.errors import ConfigError
from tests.conftest import REPO, SMALL_WATCHLIST, render_config
from tests.unit.conftest import BigWatchlist

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
    alerts = text.split("# Alert channels")[1]
    for key in ALERT_KEYS:  # every [[alerts]] key on a commented example, with its variable
        shown = f"{key.name}_file" if key.env_only else key.name
        assert re.search(rf"^# {shown} = ", alerts, re.M), f"alerts.{key.name} missing from the bundled config"
        if key.name not in ("name", "kind"):
            assert re.search(rf"INGEST_ALERTS_[A-Z_]+_{key.name.upper()}\b", alerts), f"no variable for {key.name}"
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
    ("[retention]\npolls_days = -1", "retention.polls_days", "between 0"),
    ("[retention]\npolls_days = 1\n[sorties]\nmax_blind_s = 172800.0", "retention.polls_days", "max_blind_s"),
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


# -- the database's URL and password -----------------------------------------------------------------


def test_database_password_from_env_or_file_never_from_the_file_or_url(tmp_path: Path) -> None:
    url = "postgresql://ingest@db.example:5432/ingest"
    s = load(minimal(tmp_path, f'[database]\nurl = "{url}"'), environ={"INGEST_DATABASE_PASSWORD": "hunter2"})
    assert (s.database.url, s.database.password, s.database.where()) == (url, "hunter2", url)
    assert "hunter2" not in repr(s) and "hunter2" not in describe(s)
    assert 'password = "***"  # INGEST_DATABASE_PASSWORD' in describe(s)
    secret = tmp_path / "db-secret"
    secret.write_text("from-a-file\n")
    s = load(minimal(tmp_path, f'[database]\nurl = "{url}"\npassword_file = "{secret}"'), environ={})
    assert s.database.password == "from-a-file" and "from-a-file" not in describe(s)
    with pytest.raises(ConfigError, match="never put it in the file") as info:
        load(minimal(tmp_path, '[database]\npassword = "hunter2"'), environ={})
    assert "hunter2" not in str(info.value)
    for bad in ("postgresql://ingest:hunter2@db.example/ingest", "postgresql://db.example/ingest?password=hunter2"):
        with pytest.raises(ConfigError, match="must not hold the password") as info:
            load(minimal(tmp_path, f'[database]\nurl = "{bad}"'), environ={})
        assert info.value.key == "database.url" and "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "reason"),
    [("mysql://x@h/db", "must be sqlite:///path or postgresql://"), ("sqlite://relative.db", "must be sqlite:///")],
)
def test_a_database_url_of_another_kind_is_refused(tmp_path: Path, url: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as info:
        load(minimal(tmp_path, f'[database]\nurl = "{url}"'), environ={})
    assert info.value.key == "database.url"


def test_a_sqlite_url_is_the_path_and_relative_to_the_config_file(tmp_path: Path) -> None:
    s = load(minimal(tmp_path, '[database]\nurl = "sqlite:///sub/x.db"'), environ={})
    assert s.database.url == ""
    assert s.database.path == tmp_path / "sub" / "x.db"


def test_a_database_password_never_reaches_a_message(tmp_path: Path) -> None:
    """A server that cannot be reached: the error names the URL without the password."""
    from ingest.errors import StoreError
    from ingest.store import open_store

    with pytest.raises(StoreError) as info:
        open_store("postgresql://ingest@127.0.0.1:9/ingest", password="hunter2-s3cr3t")
    assert "postgresql://ingest@127.0.0.1:9/ingest" in str(info.value)
    assert "hunter2" not in str(info.value) and "hunter2" not in repr(info.value.__cause__)


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


# -- hostile files and flags: one line, exit 2, never a traceback ------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    from ingest.cli import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err


def assert_one_line(err: str) -> None:
    assert err.startswith("ingest: error: ") and err.count("\n") == 1, err[:500]
    assert "Traceback" not in err and len(err) < 1_000


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(b"x = " + b"[" * 10_000 + b"]" * 10_000, "nested too deep", id="array-10000-deep"),
        pytest.param(b"x = " + b"{a = " * 10_000 + b"1" + b"}" * 10_000, "nested too deep", id="table-10000-deep"),
        pytest.param(b'[area]\nname = "Fuerza A\xe9rea"\n', "not UTF-8 text (line 2", id="latin-1"),
        pytest.param(b"\xff\xfe[area]\n", "not UTF-8 text (line 1", id="utf-16-bom"),
        pytest.param(b"[mqtt]\nport = " + b"9" * 5_000, "not valid TOML", id="int-5000-digits"),
        pytest.param(b"# big\n" * 200_000, "larger than 1 MiB", id="over-1-mib"),
    ],
)
def test_an_unreadable_config_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, reason: str
) -> None:
    """A TOML nested 10,000 deep and a file that is not UTF-8 were tracebacks with exit 1."""
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    code, err = run_cli(capsys, "check-config", "--config", str(path))
    assert code == 2
    assert_one_line(err)
    assert err.startswith(f"ingest: error: {path}: (file): ") and reason in err


@pytest.mark.parametrize(
    ("extra", "key", "reason"),
    [
        pytest.param(
            '[area]\ncrs = "' + '{\\"a\\":' * 3_000 + '"', "area.crs", "nested too deep", id="crs-projjson-deep"
        ),
        pytest.param("[area]\ncrs" + ".a" * 5_000 + " = 1", "area.crs", "must be a string", id="dotted-key-deep"),
        pytest.param('[mqtt]\nca_file = "a\\u0000b"', "mqtt.ca_file", "NUL", id="nul-in-a-path"),
        pytest.param(f'[mqtt]\nca_file = "{"x" * 100_000}"', "mqtt.ca_file", "no such file", id="path-100k-long"),
        pytest.param("[sorties]\ngap_s = 1e300", "sorties.gap_s", "at most", id="gap-1e300"),
        pytest.param("[sorties]\ngap_s = inf", "sorties.gap_s", "must be a number", id="gap-inf"),
        pytest.param("[mqtt]\nkeepalive_s = 70000", "mqtt.keepalive_s", "65535", id="keepalive-over-16-bit"),
        pytest.param(
            "[area]\nname = " + "[1, " * 200 + "1" + "]" * 200, "area.name", "must be a string", id="deep-list"
        ),
    ],
)
def test_hostile_values_are_one_line_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, key: str, reason: str
) -> None:
    path = minimal(tmp_path, extra)
    code, err = run_cli(capsys, "check-config", "--config", str(path))
    assert code == 2
    assert_one_line(err)
    assert f": {key}: " in err and reason in err


@pytest.mark.parametrize(
    ("flag", "hint"),
    [
        ("mqtt.password", "set INGEST_MQTT_PASSWORD or mqtt.password_file"),
        ("database.password", "set INGEST_DATABASE_PASSWORD or database.password_file"),
        ("feeds.adsb.lol.api_key", "set INGEST_FEEDS_ADSB_LOL_API_KEY or feeds.adsb.lol.api_key_file"),
        ("feeds.sky.client_secret", "set INGEST_FEEDS_SKY_CLIENT_SECRET or feeds.sky.client_secret_file"),
        ("feeds.nosuchfeed.api_key", "set INGEST_FEEDS_NOSUCHFEED_API_KEY or feeds.nosuchfeed.api_key_file"),
    ],
)
def test_a_secret_on_the_command_line_is_refused_without_echoing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, hint: str
) -> None:
    """`--set mqtt.password=...` was accepted, though `ps` shows every command line to every user."""
    feeds = (
        '[[feeds]]\nname = "adsb.lol"\nkind = "readsb-v2"\nbase_url = "https://api.adsb.lol"\n'
        '[[feeds]]\nname = "sky"\nkind = "opensky"\nclient_id = "me"\n'
    )
    path = minimal(tmp_path, feeds=feeds)
    code, err = run_cli(capsys, "check-config", "--config", str(path), "--set", f"{flag}=hunter2-s3cr3t")
    assert code == 2
    assert_one_line(err)
    assert f"--set {flag}: {flag}: a secret is never taken from the command line" in err and hint in err
    assert "hunter2" not in err and "s3cr3t" not in err


def test_secrets_still_come_from_the_environment_with_other_flags(tmp_path: Path) -> None:
    s = load(minimal(tmp_path), environ={"INGEST_MQTT_PASSWORD": "pw"}, overrides={"mqtt.username": "me"})
    assert (s.mqtt.username, s.mqtt.password) == ("me", "pw")


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"INGEST_AREA_CRS": "\udcff"}, "area.crs"),  # os.environ's surrogateescape for a byte that is not UTF-8
        ({"INGEST_WATCHLIST_PATH": "a\x00b"}, "watchlist.path"),
        ({"INGEST_MQTT_PORT": "9" * 5_000}, "mqtt.port"),
    ],
)
def test_hostile_environment_values_name_the_variable(tmp_path: Path, environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(minimal(tmp_path), environ=environ)
    assert info.value.key == key and len(str(info.value)) < 300


def test_a_secret_file_over_64_kib_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"x" * (65 << 10))
    with pytest.raises(ConfigError, match="over 64 KiB: not a secret"):
        load(minimal(tmp_path, f'[mqtt]\npassword_file = "{secret}"'), environ={})


# -- a big watchlist: the refusals stay one clear line -----------------------------------------------


CAP_MESSAGE = "more than 50,000 aircraft rows: the cap is 50,000"


def test_a_watchlist_over_the_cap_is_one_line_naming_the_file_and_the_cap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "big.csv"
    big.write_text("ICAO,Registration\n" + "".join(f"{i:06x},R-{i}\n" for i in range(50_001)))
    code, err = run_cli(capsys, "check-config", "--config", str(minimal(tmp_path)), "--set", f"watchlist.path={big}")
    assert code == 2
    assert_one_line(err)
    assert err == f"ingest: error: --set watchlist.path: watchlist.path: {big}: {CAP_MESSAGE}\n"


def test_a_big_watchlist_makes_a_too_short_interval_a_clear_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], big_watchlist: BigWatchlist
) -> None:
    """17,000 hexes and their registrations are 34 requests of 1,000 at adsb.lol's 1 request/s."""
    wl = big_watchlist(17_000)
    feeds = '[[feeds]]\nname = "adsb.lol"\nkind = "readsb-v2"\nbase_url = "https://api.adsb.lol"\ninterval_s = 10\n'
    path = write(tmp_path, f'[watchlist]\npath = "{wl}"\n[replay]\non_start = []\n{feeds}')
    code, err = run_cli(capsys, "check-config", "--config", str(path))
    assert code == 2
    assert_one_line(err)
    found = re.search(
        r"feeds\[0\]\.interval_s: 10 s is too short: (\d+) requests per tick at 1 s apart need at least (\d+) s", err
    )
    assert found and found.group(1) == found.group(2) and int(found.group(1)) >= 17
    sky = '[[feeds]]\nname = "sky"\nkind = "opensky"\nqueries = ["hex"]\ninterval_s = 60\n'
    path = write(tmp_path, f'[watchlist]\npath = "{wl}"\n[replay]\non_start = []\n{sky}')
    code, err = run_cli(capsys, "check-config", "--config", str(path))
    assert code == 2
    assert_one_line(err)
    assert "for 17,000 watched hexes" in err and "use at least" in err


def test_the_crs_known_good_without_pyproj_is_good_with_it() -> None:
    from ingest.config import KNOWN_GOOD_CRS
    from ingest.geo import crs_problem

    assert all(crs_problem(crs) is None for crs in KNOWN_GOOD_CRS)


def test_relative_paths_in_the_file_are_relative_to_its_folder_and_flags_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "list.csv").write_text(SMALL_WATCHLIST.read_text())
    (folder / "ca.pem").write_text("x")
    config = folder / "ingest.toml"
    config.write_text(
        '[database]\npath = "../var/ingest.db"\n[watchlist]\npath = "list.csv"\n[replay]\non_start = []\n'
        '[mqtt]\nca_file = "ca.pem"\n[[feeds]]\nname = "rx"\nkind = "aircraft-json"\nsource = "http://rx/data.json"\n'
    )
    monkeypatch.chdir(tmp_path)  # started from elsewhere: the file's own paths still resolve
    s = load(config, environ={})
    assert s.database.path == folder / "../var/ingest.db" and s.watchlist.path == folder / "list.csv"
    assert s.mqtt.ca_file == str(folder / "ca.pem") and s.feeds[0].source == "http://rx/data.json"
    flagged = load(config, environ={}, overrides={"database.path": "here.db"})
    assert flagged.database.path == Path("here.db")


@pytest.mark.parametrize(("text", "expected"), [("[]", ()), ('["a.ndjson", "b.json"]', ("a.ndjson", "b.json"))])
def test_a_list_flag_may_be_written_as_in_the_file(text: str, expected: tuple[str, ...], tmp_path: Path) -> None:
    for name in expected:
        (tmp_path / name).write_text("{}")
    config = tmp_path / "ingest.toml"
    config.write_text(f'[watchlist]\npath = "{SMALL_WATCHLIST}"\n')
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        s = load(config, environ={}, overrides={"replay.on_start": text})
    assert s.replay.on_start == tuple(Path(n) for n in expected)
    with pytest.raises(ConfigError, match="must be a list"):
        load(config, environ={}, overrides={"replay.on_start": "[unclosed"})
