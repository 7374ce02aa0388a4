"""The human text of each event (alerts/events.py), the channels' filters (alerts/routing.py) and the
[[alerts]] tables of the config (config.py). Pure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ingest.alerts.events import decode, describe
from ingest.alerts.messages import alert, happening_alert
from ingest.alerts.routing import AircraftFacts, Router, wants
from ingest.config import ALERT_KEYS, AlertSettings, check_channel_urls, load
from ingest.config import describe as describe_config
from ingest.detect.base import Happening
from ingest.errors import ConfigError
from ingest.models import Fix, Place, QueuedEvent, Sortie, SortieEvent
from ingest.watchlist import WatchEntry
from tests.conftest import SMALL_WATCHLIST

T0 = datetime(2026, 11, 20, 22, 55, 58, tzinfo=UTC)
RC135 = WatchEntry("62-4125", ("ae01d2",), "USAF", "Boeing RC-135W", "R135", "Oxcart", ("Snoop", "Rivet Joint"), "")


def sortie(end_reason: str | None = None, took_off: Place | None = None, landed: Place | None = None) -> Sortie:
    first = Fix(T0, 33.07518, 124.88988, 31000, "TORA23", "adsb.lol")
    last = Fix(T0 + timedelta(hours=5, minutes=12), 37.09, 127.03, 2000, "TORA23", "adsb.lol")
    return Sortie(
        sortie_id="ae01d2-20261120T225558Z", key="62-4125", hex_icao="ae01d2", registration="62-4125",
        type_icao="R135", first=first, last=last, last_seen_at=last.at, callsigns=("TORA23",),
        max_alt_baro_ft=33000, sightings=300, previous_sortie_end=T0 - timedelta(days=2, hours=3),
        end_reason=end_reason, took_off_from=took_off, landed_at=landed,
    )  # fmt: skip


def event(kind: str, s: Sortie, entry: WatchEntry | None = RC135, happening: Happening | None = None) -> Any:
    router = Router([settings()])
    a = happening_alert("ingest", "Korean Peninsula", s, happening) if happening else alert(
        "ingest", "Korean Peninsula", SortieEvent(kind, s)
    )  # fmt: skip
    routed = router.route(a, kind, s, entry)
    return decode(QueuedEvent(1, routed.event_id, routed.topic, routed.payload, routed.facts))


def settings(**values: Any) -> AlertSettings:
    defaults = {k.name: k.default for k in ALERT_KEYS}
    defaults.update(name="phone", kind="apprise", urls="json://x")
    defaults.update(values)
    return AlertSettings(**defaults)


def test_start_reads_like_the_issue_asks() -> None:
    text = describe(event("start", sortie()))
    assert text.title == "62-4125: sortie started"
    assert text.body == (
        "USAF Boeing RC-135W 62-4125 (TORA23) entered the Korean Peninsula area at 31,000 ft, 2 days after its "
        "previous sortie ended. 22:55 UTC on 20 Nov 2026."
    )


def test_times_in_the_channels_zone_too() -> None:
    text = describe(event("start", sortie()), ZoneInfo("Asia/Seoul"))
    assert text.body.endswith("22:55 UTC on 20 Nov 2026 (07:55 KST on 21 Nov).")


def test_takeoff_and_landing_airports() -> None:
    osan = Place("RKSO", "Osan Air Base")
    start = describe(event("start", sortie(took_off=osan)))
    assert "62-4125 (TORA23) took off from Osan Air Base (RKSO) at 31,000 ft" in start.body
    end = describe(event("end", sortie("landed", landed=osan)))
    assert end.title == "62-4125: sortie ended (landed)"
    assert end.body.startswith("USAF Boeing RC-135W 62-4125 (TORA23) landed at Osan Air Base (RKSO) after 5 h 12 min")
    assert "up to 33,000 ft" in end.body and "04:07 UTC on 21 Nov 2026" in end.body


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("left_area", "left the Korean Peninsula area"),
        ("signal_lost", "fell silent over the Korean Peninsula area"),
        ("no_coverage", "went out of our feeds' coverage"),
    ],
)
def test_end_reasons(reason: str, words: str) -> None:
    assert words in describe(event("end", sortie(reason))).body


def test_without_the_watchlist_the_icao_type_names_it() -> None:
    text = describe(event("start", sortie(), entry=None))
    assert text.body.startswith("R135 62-4125 (TORA23) entered")


def test_orbit_and_emergency() -> None:
    orbit = Happening(
        "orbit", "ae01d2-20261120T225558Z", 2, T0, T0 + timedelta(minutes=50), 36.5, 124.2,
        {"leg_km": 118.4, "orientation_deg": 45.0, "laps": 2.5, "radius_km": 61.0, "direction": "right"},
    )  # fmt: skip
    text = describe(event("orbit", sortie(), happening=orbit))
    assert text.title == "62-4125: orbit 2"
    assert "is flying an orbit centred at 36.50°N 124.20°E (2.5 laps, legs of about 118 km, within 61 km)" in text.body
    emergency = Happening(
        "emergency", "ae01d2-20261120T225558Z", 1, T0, T0 + timedelta(minutes=3), 35.0, 125.0,
        {"squawk": "7700", "emergency": "general", "alt_baro_ft": 24000},
    )  # fmt: skip
    text = describe(event("emergency", sortie(), happening=emergency))
    assert text.title == "62-4125: EMERGENCY 7700"
    assert "squawks 7700 (general emergency) at 35.00°N 125.00°E at 24,000 ft" in text.body


def test_a_payload_that_is_not_json_is_an_empty_event_not_a_crash() -> None:
    e = decode(QueuedEvent(1, "x/start", "t", "{not json", ""))
    assert e.kind == "start" and describe(e).title == "aircraft: sortie started"


def test_filters_globs_any_case_and_every_key_set_must_match() -> None:
    rc = AircraftFacts("62-4125", "62-4125", "ae01d2", "R135", "USAF", "Boeing RC-135W", "Oxcart", ("Snoop",))
    p8 = AircraftFacts("230921", "230921", "71f00d", "P8", "Republic of Korea Navy", "Boeing P-8A", "Other Navies")
    phone = settings(types=("r135", "Q4"))
    assert wants(phone, "start", rc) and not wants(phone, "start", p8)
    assert not wants(settings(types=("R135",), events=("end",)), "start", rc)
    assert wants(settings(registrations=("62-41*",)), "end", rc)
    assert wants(settings(operators=("*korea*",)), "end", p8) and not wants(settings(operators=("*korea*",)), "end", rc)
    assert wants(settings(tags=("snoop",)), "orbit", rc) and not wants(settings(tags=("snoop",)), "orbit", p8)
    assert not wants(settings(types=("R135",), operators=("RAF",)), "start", rc)  # both set: both must match
    router = Router([settings(name="all"), settings(name="rc", types=("R135",))])
    assert router.channels_for("start", rc) == ("all", "rc") and router.channels_for("start", p8) == ("all",)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ingest.toml"
    path.write_text(f'[watchlist]\npath = "{SMALL_WATCHLIST}"\n[replay]\non_start = []\n{text}')
    return path


ENV = {"INGEST_ALERTS_PHONE_URLS": "tgram://123:abc/456 ntfys://secret-topic", "INGEST_ALERTS_HOOK_URL":
       "https://hooks.example/t0ken", "INGEST_ALERTS_HOOK_SECRET": "hmac-key"}  # fmt: skip
TABLES = """
[mqtt]
enabled = true
[[alerts]]
name = "phone"
kind = "apprise"
types = ["R135", "Q4"]
timezone = "Asia/Seoul"
[[alerts]]
name = "hook"
kind = "webhook"
operators = "USAF"
events = ["start", "end"]
"""


def test_alerts_tables_load_and_check_config_masks_the_secrets(tmp_path: Path) -> None:
    s = load(write(tmp_path, TABLES), environ=ENV)
    assert [(c.name, c.kind) for c in s.channels()] == [("mqtt", "mqtt"), ("phone", "apprise"), ("hook", "webhook")]
    phone, hook = s.alerts
    assert phone.types == ("R135", "Q4") and phone.urls.split() == ["tgram://123:abc/456", "ntfys://secret-topic"]
    assert hook.operators == ("USAF",) and hook.events == ("start", "end") and hook.secret == "hmac-key"
    assert s.source_of("alerts[1].url") == "INGEST_ALERTS_HOOK_URL"
    shown = describe_config(s)
    assert "t0ken" not in shown and "secret-topic" not in shown and "hmac-key" not in shown
    assert 'url = "***"  # INGEST_ALERTS_HOOK_URL' in shown and 'types = ["R135", "Q4"]' in shown
    assert "discovery_prefix" not in shown  # another kind's key


def test_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "urls").write_text("json://127.0.0.1:9/a\njson://127.0.0.1:9/b\n")
    s = load(write(tmp_path, '[[alerts]]\nname = "phone"\nkind = "apprise"\nurls_file = "urls"\n'), environ={})
    assert s.alerts[0].urls.split() == ["json://127.0.0.1:9/a", "json://127.0.0.1:9/b"]


@pytest.mark.parametrize(
    ("tables", "environ", "message"),
    [
        ('[[alerts]]\nname = "hook"\nkind = "webhook"\nurl = "https://x/t"\n', {},
         "alerts[0].url: never put it in the file: set INGEST_ALERTS_HOOK_URL or url_file"),
        ('[[alerts]]\nname = "hook"\nkind = "webhook"\n', {},
         "alerts[0].url: a webhook needs its URL: set INGEST_ALERTS_HOOK_URL or url_file"),
        ('[[alerts]]\nname = "p"\nkind = "apprise"\ndiscovery_prefix = "ha"\n', {"INGEST_ALERTS_P_URLS": "json://x"},
         "alerts[0].discovery_prefix: only for kind homeassistant"),
        ('[[alerts]]\nname = "p"\nkind = "pager"\n', {}, "alerts[0].kind: must be one of mqtt, homeassistant"),
        ('[[alerts]]\nname = "p"\nkind = "mqtt"\nevents = ["takeoff"]\n', {}, "alerts[0].events: must list start"),
        ('[[alerts]]\nname = "my phone"\nkind = "mqtt"\n', {}, "alerts[0].name: must be 1-40 letters"),
        ('[mqtt]\nenabled = true\n[[alerts]]\nname = "mqtt"\nkind = "mqtt"\n', {}, "alerts[0].name: `mqtt` names"),
        ('[[alerts]]\nname = "a"\nkind = "mqtt"\n[[alerts]]\nname = "a"\nkind = "mqtt"\n', {},
         "alerts[1].name: 'a' is used twice"),
        ('[[alerts]]\nname = "h"\nkind = "homeassistant"\n[[alerts]]\nname = "i"\nkind = "homeassistant"\n', {},
         "alerts[1].kind: only one homeassistant channel"),
        ('[[alerts]]\nname = "p"\nkind = "webhook"\ntimezone = "Mars/Base"\n', {"INGEST_ALERTS_P_URL": "http://x"},
         "alerts[0].timezone: must be an IANA time zone"),
        ("[alerts]\nname = 1\n", {}, "alerts: must be an array of tables ([[alerts]]), one per channel"),
        ('[[alerts]]\nname = "h"\nkind = "webhook"\n', {"INGEST_ALERTS_H_URL": "ftp://x/t0ken"},
         "INGEST_ALERTS_H_URL: alerts[0].url: must be an http:// or https:// URL with a host"),
        ('[[alerts]]\nname = "p"\nkind = "mqtt"\ncolour = "red"\n', {}, "alerts[0].colour: unknown key"),
        ('[[alerts]]\nname = "h"\nkind = "webhook"\nheaders = "A: b"\n', {"INGEST_ALERTS_H_URL": "http://x"},
         "alerts[0].headers: never put it in the file: set INGEST_ALERTS_H_HEADERS or headers_file"),
        ('[[alerts]]\nname = "h"\nkind = "webhook"\n',
         {"INGEST_ALERTS_H_URL": "http://x", "INGEST_ALERTS_H_HEADERS": "Authorization: Bearer t0ken\nt0ken"},
         "INGEST_ALERTS_H_HEADERS: alerts[0].headers: line 2 is not a `Name: value` header"),
        ('[[alerts]]\nname = "h"\nkind = "webhook"\n',
         {"INGEST_ALERTS_H_URL": "http://x", "INGEST_ALERTS_H_HEADERS": "X-Ingest-Event: t0ken"},
         "alerts[0].headers: line 1: X-Ingest-Event is set by the webhook itself"),
        ('[[alerts]]\nname = "h"\nkind = "webhook"\n',
         {"INGEST_ALERTS_H_URL": "http://x", "INGEST_ALERTS_H_HEADERS": "# mine\n\ncontent-type: text/t0ken"},
         "alerts[0].headers: line 3: content-type is set by the webhook itself"),
        ('[[alerts]]\nname = "h"\nkind = "webhook"\n',
         {"INGEST_ALERTS_H_URL": "http://x", "INGEST_ALERTS_H_HEADERS": "Authorization:"},
         "alerts[0].headers: line 1: Authorization has an empty or unprintable value"),
        ('[[alerts]]\nname = "p"\nkind = "apprise"\nheaders_file = "/x"\n', {"INGEST_ALERTS_P_URLS": "json://x"},
         "alerts[0].headers_file: only for kind webhook"),
    ],
)  # fmt: skip
def test_bad_alerts_tables_name_the_key(tmp_path: Path, tables: str, environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_channel_urls(load(write(tmp_path, tables), environ=environ))
    assert message in str(err.value)
    assert "https://x/t" not in str(err.value) and "t0ken" not in str(err.value)


def test_a_secret_by_set_is_refused_without_echoing_it(tmp_path: Path) -> None:
    config = write(tmp_path, '[[alerts]]\nname = "hook"\nkind = "webhook"\n')
    with pytest.raises(ConfigError) as err:
        load(config, environ={}, overrides={"alerts.hook.url": "https://x/t0ken"})
    assert "set INGEST_ALERTS_HOOK_URL" in str(err.value) and "t0ken" not in str(err.value)


def test_filters_from_the_environment(tmp_path: Path) -> None:
    config = write(tmp_path, '[[alerts]]\nname = "m"\nkind = "mqtt"\n')
    s = load(config, environ={"INGEST_ALERTS_M_TYPES": "R135, Q4", "INGEST_ALERTS_M_TOPIC_PREFIX": "rc"})
    assert s.alerts[0].types == ("R135", "Q4") and s.alerts[0].topic_prefix == "rc"
    assert json.loads(json.dumps(s.alerts[0].events)) == ["start", "end", "orbit", "emergency"]
