"""Screenshot a reconstruction gallery (``index.html``) in headless Chromium.

    python experiments/gallery_screenshot.py runs/demo/reconstructions/photos/index.html \
        experiments/results/gallery_astronaut.png

Needs a Chromium binary (Debian's ``chromium``; ``--chromium`` names another). The browser runs
with a fresh profile and no network services, so the page shows only the local files.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, help="the gallery's index.html")
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("--size", default="1280,1400", help="window WIDTH,HEIGHT in pixels")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    if not args.page.is_file():
        sys.exit(f"error: no gallery page at {args.page}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        command = [
            args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
            f"--window-size={args.size}", f"--screenshot={args.out.resolve()}",
            args.page.resolve().as_uri(),
        ]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    if not args.out.is_file():
        sys.exit(f"error: chromium wrote no screenshot to {args.out}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
