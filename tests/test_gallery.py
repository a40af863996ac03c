"""The offline gallery: rows, relative links only, pages, and every image loading in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from PIL import Image

from unsup3d_cli import gallery
from unsup3d_cli.gallery import COLUMNS, write_gallery

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None
)


class _Links(HTMLParser):
    """Collects every src/href and counts table rows of the body."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.rows = 0
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.links += [v for k, v in attrs if k in ("src", "href") and v]
        if tag == "tbody":
            self._in_body = True
        if tag == "tr" and self._in_body:
            self.rows += 1
        assert tag not in ("link", "iframe", "object", "embed"), tag
        assert not (tag == "script" and "src" in values), "external script"


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _fake_output(root: Path, names: list[str]) -> Path:
    """An output folder with one image folder per name (every gallery file present)."""
    rng = np.random.default_rng(0)
    for name in names:
        folder = root / name
        folder.mkdir(parents=True)
        for file, _ in COLUMNS:
            pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / file)
        result = {"source": f"/photos/{name}.jpg", "crop": {"method": "face", "box": [0, 0, 9, 9]},
                  "photometric_error": {"before": 0.25, "after": 0.125}}  # fmt: skip
        (folder / "result.json").write_text(json.dumps(result))
    (root / "summary.json").write_text("{}")
    return root


def test_gallery_has_one_row_per_image_and_only_relative_links(tmp_path: Path) -> None:
    out = _fake_output(tmp_path / "out", ["b face", "a#1"])  # names needing URL quoting
    (out / "not_an_output").mkdir()  # no result.json: not a row
    (out / "a#1" / "confidence.png").unlink()  # a missing map leaves an empty cell
    page = write_gallery(out)
    assert page == out / "index.html"
    parsed = _parse(page)
    assert parsed.rows == 2
    text = page.read_text()
    assert text.index("a#1") < text.index("b face")  # sorted by name
    assert "0.2500 → 0.1250" in text
    for link in parsed.links:
        assert not urlparse(link).scheme and not link.startswith("/"), link
        assert (out / unquote(link)).is_file(), link
    assert len([link for link in parsed.links if link.endswith((".png", ".gif"))]) == 23


def test_gallery_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gallery, "ROWS_PER_PAGE", 2)
    out = _fake_output(tmp_path / "out", ["a", "b", "c", "d", "e"])
    (out / "index-7.html").write_text("stale")
    write_gallery(out)
    assert sorted(p.name for p in out.glob("index*.html")) == [
        "index-2.html", "index-3.html", "index.html"
    ]  # fmt: skip
    assert [_parse(out / f"index{s}.html").rows for s in ("", "-2", "-3")] == [2, 2, 1]
    assert 'href="index-2.html"' in (out / "index.html").read_text()


def test_empty_gallery(tmp_path: Path) -> None:
    page = write_gallery(tmp_path)
    assert "No reconstructions yet" in page.read_text()


def _chromium_status(page: Path, profile: Path) -> dict[str, int | str]:
    """Open a page in headless Chromium; return the gallery script's map counts and line."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}",
        "--virtual-time-budget=10000", "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    match = re.search(r'<p id="status"[^>]*>([^<]*)</p>', done.stdout)
    assert match, f"no status in Chromium's DOM (exit {done.returncode}): {done.stderr[-2000:]}"
    counts = dict(re.findall(r'data-(total|broken)="(\d+)"', match.group(0)))
    assert set(counts) == {"total", "broken"}, match.group(0)
    return {**{k: int(v) for k, v in counts.items()}, "text": match.group(1)}


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_every_image_loads_in_chromium(
    tiny_checkpoint: Path, tmp_path: Path, tiny_image_folder: Path
) -> None:
    from unsup3d_cli import api

    photos = sorted((tiny_image_folder / "test").glob("*.png"))[:2]
    out = tmp_path / "out"
    summary = api.reconstruct(tiny_checkpoint, photos, out, device="cpu")
    per_row = sum(1 for f, _ in COLUMNS if (out / photos[0].stem / f).is_file())
    assert per_row == len(COLUMNS) - 1  # everything but the turntable (no --animate)
    status = _chromium_status(summary.gallery, tmp_path / "profile")
    total = 2 * per_row  # maps, not reconstructed images
    assert status == {"total": total, "broken": 0, "text": f"{total} maps shown"}
    (out / photos[0].stem / "canonical_depth.png").write_bytes(b"broken")  # the check can fail
    status = _chromium_status(summary.gallery, tmp_path / "profile")
    assert status["broken"] == 1
    assert status["text"] == f"{total} maps shown, 1 failed to load (outlined in red)"
