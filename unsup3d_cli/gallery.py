"""The offline HTML gallery of a ``reconstruct`` output folder.

``<out>/index.html`` shows one row per image folder (those holding a ``result.json``), its maps
side by side. Everything is relative links to files in the folder: no scripts, styles or fonts
from elsewhere, so the folder can be zipped, moved and opened without a network. Long runs are
split into pages of :data:`ROWS_PER_PAGE` rows (``index.html``, ``index-2.html``, ...). A
small inline script counts the maps on the page and those that failed to load, and shows both
at the top (and in ``data-total`` and ``data-broken`` of ``#status``, which the tests read).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from urllib.parse import quote

ROWS_PER_PAGE = 100
"""Image rows per gallery page."""
THUMB_SIDE = 128
"""Displayed side of every map, in CSS pixels (the 64×64 maps are scaled up, pixelated)."""
COLUMNS = (
    ("input.png", "input"),
    ("reconstruction.png", "reconstruction"),
    ("canonical_image.png", "canonical image"),
    ("canonical_albedo.png", "albedo"),
    ("canonical_shading.png", "diffuse shading"),
    ("canonical_depth.png", "depth"),
    ("canonical_normal.png", "normals"),
    ("confidence.png", "confidence"),
    ("relit_left.png", "lit from the left"),
    ("relit_right.png", "lit from the right"),
    ("relit_above.png", "lit from above"),
    ("turntable.gif", "turntable"),
)
"""(file, heading) of the gallery's columns, in order; absent files leave an empty cell."""

_STYLE = f"""
body {{ font-family: sans-serif; margin: 1em; background: #fafafa; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 4px; text-align: center; vertical-align: top; font-size: 12px; }}
th {{ position: sticky; top: 0; background: #eee; }}
tr:nth-child(even) td {{ background: #f0f0f0; }}
td.name {{ text-align: left; max-width: 14em; word-break: break-all; }}
img {{ width: {THUMB_SIDE}px; height: {THUMB_SIDE}px; image-rendering: pixelated;
       display: block; }}
img.broken {{ outline: 3px solid red; }}
#status.bad {{ color: #b00; font-weight: bold; }}
nav a {{ margin-right: 0.5em; }}
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (img) { return !img.complete || img.naturalWidth === 0; });
  broken.forEach(function (img) { img.classList.add("broken"); });
  var status = document.getElementById("status");
  status.dataset.total = images.length;
  status.dataset.broken = broken.length;
  status.textContent = images.length + " maps shown" +
    (broken.length ? ", " + broken.length + " failed to load (outlined in red)" : "");
  if (broken.length) { status.className = "bad"; }
});
"""


def gallery_entries(out_dir: Path) -> list[Path]:
    """The image folders of an output folder (those with a result.json), sorted by name."""
    return sorted(
        (p.parent for p in out_dir.glob("*/result.json") if not p.parent.name.startswith(".")),
        key=lambda p: p.name.lower(),
    )


def page_name(page: int) -> str:
    """File name of gallery page ``page`` (1-based): index.html, index-2.html, ..."""
    return "index.html" if page == 1 else f"index-{page}.html"


def _caption(folder: Path) -> str:
    """Name, source file, crop and photometric error of one image, as HTML."""
    try:
        result = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        result = {}
    parts = [f"<b>{html.escape(folder.name)}</b>"]
    source = result.get("source")
    if source:
        parts.append(html.escape(Path(source).name))
    crop = result.get("crop", {}).get("method")
    if crop:
        parts.append(f"crop: {html.escape(str(crop))}")
    error = result.get("photometric_error", {})
    if isinstance(error.get("before"), int | float):
        text = f"error {error['before']:.4f}"
        if isinstance(error.get("after"), int | float):
            text += f" → {error['after']:.4f}"
        parts.append(text)
    return "<br>".join(parts)


def _row(folder: Path) -> str:
    cells = [f'<td class="name">{_caption(folder)}</td>']
    for file, heading in COLUMNS:
        if (folder / file).is_file():
            src = f"{quote(folder.name)}/{quote(file)}"
            cells.append(f'<td><img src="{src}" alt="{html.escape(heading)}"></td>')
        else:
            cells.append("<td></td>")
    return "<tr>" + "".join(cells) + "</tr>"


def _nav(page: int, pages: int) -> str:
    if pages <= 1:
        return ""
    links = [
        f"<b>{n}</b>" if n == page else f'<a href="{page_name(n)}">{n}</a>'
        for n in range(1, pages + 1)
    ]
    return "<nav>pages: " + " ".join(links) + "</nav>"


def _page(rows: list[str], page: int, pages: int, total: int, title: str) -> str:
    header = "".join(f"<th>{html.escape(h)}</th>" for h in ("image", *(h for _, h in COLUMNS)))
    body = "\n".join(rows) if rows else '<tr><td colspan="13">No reconstructions yet.</td></tr>'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>{total} reconstructed images · page {page} of {pages} ·
<a href="summary.json">summary.json</a> (skipped files and why)</p>
<p id="status">loading…</p>
{_nav(page, pages)}
<table>
<thead><tr>{header}</tr></thead>
<tbody>
{body}
</tbody>
</table>
{_nav(page, pages)}
<script>{_SCRIPT}</script>
</body>
</html>
"""


def write_gallery(out_dir: Path | str, title: str = "unsup3d reconstructions") -> Path:
    """Write the gallery pages of an output folder; stale extra pages are removed.

    Args:
        out_dir: a ``reconstruct`` output folder.
        title: page heading.

    Returns:
        The path of ``index.html``.
    """
    out_dir = Path(out_dir)
    entries = gallery_entries(out_dir)
    pages = max(1, -(-len(entries) // ROWS_PER_PAGE))
    for page in range(1, pages + 1):
        chunk = entries[(page - 1) * ROWS_PER_PAGE : page * ROWS_PER_PAGE]
        text = _page([_row(f) for f in chunk], page, pages, len(entries), title)
        (out_dir / page_name(page)).write_text(text, encoding="utf-8")
    for stale in out_dir.glob("index-*.html"):
        number = stale.stem.removeprefix("index-")
        if number.isdigit() and int(number) > pages:
            stale.unlink()
    return out_dir / "index.html"
