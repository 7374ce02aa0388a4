"""`ingest map` through `main()` on a SQLite file holding the demo replay: the picture's size and pixels,
the TAIL --since form, and the errors."""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from ingest import mapping
from ingest.cli import main
from tests.conftest import SMALL_WATCHLIST, ConfigWriter, render_config, two_sorties_recording

pytestmark = pytest.mark.integration

DEMO = Path(__file__).parents[2] / "config" / "demo" / "synthetic-tora23-replay.ndjson.gz"
TORA = "ae01d2-20261120T225558Z"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A config whose database holds the demo replay (built once: map only reads)."""
    base = tmp_path_factory.mktemp("map")
    path = base / "ingest.toml"
    path.write_text(
        render_config(
            {"database": {"path": str(base / "ingest.db")}, "watchlist": {"path": str(SMALL_WATCHLIST)},
             "replay": {"on_start": []}, "daemon": {"log_level": "WARNING"}},
            [],
        )
    )  # fmt: skip
    assert main(["replay", "--config", str(path), str(DEMO)]) == 0
    yield path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rgb(path: Path) -> np.ndarray:
    image = Image.open(path)
    assert image.format == "PNG" and image.size == (1600, 1200)
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def share_near(pixels: np.ndarray, colour: tuple[float, float, float], tolerance: float = 6.0) -> float:
    target = np.asarray(colour[:3]) * 255
    return float((np.abs(pixels - target).max(axis=-1) <= tolerance).mean())


def test_tora23_sortie_as_png(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "tora23.png"
    code, out, err = run(capsys, "map", TORA, "--config", str(config), "-o", str(target))
    assert (code, err) == (0, "") and out == f"{target}: png, 1 sortie, 170 sightings\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tora23.png"]  # no temporary file left behind
    pixels = rgb(target)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
    assert (pixels == 255).all(axis=-1).mean() < 0.35
    assert share_near(pixels, to_rgb(mapping.SEA), 2) > 0.2 and share_near(pixels, to_rgb(mapping.LAND), 2) > 0.1
    # 31,000 ft on a scale to 35,000 ft, the whole way: far more of that colour than the colorbar holds
    track = matplotlib.colormaps[mapping.CMAP](31_000 / 35_000)
    assert share_near(pixels, track) > 0.003
    assert share_near(pixels, to_rgb(mapping.START), 3) > 0.00005 and share_near(pixels, to_rgb(mapping.END), 3) > 0


def test_svg_and_suffix_case(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "tora23.SVG"
    code, out, _ = run(capsys, "map", TORA.upper(), "--config", str(config), "-o", str(target))
    assert code == 0 and out == f"{target}: svg, 1 sortie, 170 sightings\n"
    text = " ".join(ET.parse(target).getroot().itertext())
    assert "62-4125 · USAF · Boeing RC-135W · TORA23" in text  # the watchlist's operator and type
    assert "2026-11-20 22:55:58 \N{EN DASH} 2026-11-21 01:54:56 UTC · 2 h 58 min · ended: left area" in text
    assert f"sortie {TORA} · 170 sightings · max 31,000 ft" in text


def test_tail_since(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "p8.png"
    code, out, _ = run(capsys, "map", "230921", "--since", "2026-11-20T00:00:00Z", "--config", str(config),
                       "-o", str(target))  # fmt: skip
    assert code == 0 and out == f"{target}: png, 1 sortie, 165 sightings\n"
    rgb(target)
    # started before --since: a map of the area alone, and that is not an error
    target = tmp_path / "none.svg"
    code, out, err = run(capsys, "map", "62-4125", "--since", "2026-11-20T23:00:00Z", "--config", str(config),
                         "-o", str(target))  # fmt: skip
    assert code == 0 and "0 sorties" in out and "no sorties of 62-4125" in err
    assert "no sorties to draw" in " ".join(ET.parse(target).getroot().itertext())


def test_tail_with_two_sorties(write_config: ConfigWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recording = two_sorties_recording(tmp_path)
    config = write_config([])
    assert main(["replay", "--config", str(config), str(recording)]) == 0
    target = tmp_path / "two.svg"
    code, out, _ = run(capsys, "map", "62-4134", "--since", "2026-11-01", "--config", str(config), "-o", str(target))
    assert code == 0 and out == f"{target}: svg, 2 sorties, 5 sightings\n"
    text = " ".join(ET.parse(target).getroot().itertext())
    assert "2 sorties (ae01ce-20261120T225958Z, ae01ce-20261120T230258Z)" in text
    assert "start 22:59Z" in text and "end 23:00Z" in text and "start 23:02Z" in text and "end 23:04Z" in text
    assert "62-4134 · USAF · Boeing RC-135W · SNOOP01" in text


def test_synthetic_sortie_says_so_in_the_title(
    write_config: ConfigWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sortie marked synthetic in the store (as the demo's will be) is drawn under "SYNTHETIC demo data"."""
    config = write_config([])
    assert main(["replay", "--config", str(config), str(DEMO)]) == 0
    with sqlite3.connect(tmp_path / "ingest.db") as db:
        db.execute("UPDATE sorties SET synthetic = (sortie_id = ?)", (TORA,))  # TORA23 only
    db.close()
    target = tmp_path / "fake.svg"
    code, _, _ = run(capsys, "map", TORA, "--config", str(config), "-o", str(target))
    assert code == 0
    text = " ".join(ET.parse(target).getroot().itertext())
    assert f"SYNTHETIC demo data · sortie {TORA} · 170 sightings" in text
    code, _, _ = run(capsys, "map", "230921", "--since", "2026-11-20", "--config", str(config), "-o", str(target))
    assert code == 0 and "SYNTHETIC" not in " ".join(ET.parse(target).getroot().itertext())


def test_unknown_and_misused(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = str(tmp_path / "x.png")
    code, out, err = run(capsys, "map", "ae01d2-20991231T000000Z", "--config", str(config), "-o", png)
    assert (code, out) == (1, "") and "no sortie 'ae01d2-20991231T000000Z'" in err
    code, out, err = run(capsys, "map", "N12345", "--since", "7d", "--config", str(config), "-o", png)
    assert (code, out) == (1, "") and "unknown tail 'N12345'" in err
    for bad in ("x.jpg", "x.pdf", "x"):
        code, out, err = run(capsys, "map", TORA, "--config", str(config), "-o", str(tmp_path / bad))
        assert (code, out) == (2, "") and "must end in .png or .svg" in err
    code, _, err = run(capsys, "map", "62-4125", "--config", str(config), "-o", png)
    assert code == 2 and "needs --since" in err
    code, _, err = run(capsys, "map", TORA, "--since", "7d", "--config", str(config), "-o", png)
    assert code == 2 and "--since goes with a TAIL" in err
    code, _, err = run(capsys, "map", TORA, "--config", str(config))
    assert code == 2 and "-o/--output" in err
    code, _, err = run(capsys, "map", TORA, "--config", str(config), "-o", str(tmp_path / "no" / "x.png"))
    assert code == 1 and "cannot write" in err
    assert list(tmp_path.iterdir()) == []
