"""Reconstruct the real face photos that come with installed packages, and measure the depth.

    python experiments/real_faces.py [--checkpoint CKPT]     # default: the bundled model

Photos: scikit-image's astronaut (``skimage.data.astronaut``, face detection and crop on),
matplotlib's sample portrait (``grace_hopper.jpg``, detection on; only when matplotlib is
installed, which the toolkit does not need) and the first 12 faces of scikit-image's
``lfw_subset`` (25×25 grey face crops, upsampled; detection off).
Each goes through ``unsup3d reconstruct``. From each canonical depth map (``canonical_depth.npy``,
the frontal, mirror-symmetric frame) it measures:

- ``nose_minus_cheeks``: depth of the cheeks (rows 34-38, columns 18-21 and 42-45) minus that of
  the nose (rows 32-38, columns 30-33), world units: positive when the nose is nearer;
- ``asymmetry``: mean |d − mirror(d)| over the central 40×40 pixels, over the depth's standard
  deviation there (0 for a mirror-symmetric depth);
- and over the LFW faces, ``between_faces``: the mean per-pixel standard deviation across the
  faces over the mean within-face one (near 0 when every face gets the same depth).

Writes ``experiments/results/real_faces.json``; the galleries are in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import skimage.data
import skimage.transform

REPO = Path(__file__).resolve().parents[1]
NOSE = (slice(32, 39), slice(30, 34))
CHEEKS = ((slice(34, 39), slice(18, 22)), (slice(34, 39), slice(42, 46)))
CENTRE = (slice(12, 52), slice(12, 52))


def depth_measures(depth: np.ndarray) -> dict[str, float]:
    """The face-shape measures of one canonical depth map (64, 64)."""
    nose = depth[NOSE].mean()
    cheeks = np.mean([depth[c].mean() for c in CHEEKS])
    centre = depth[CENTRE]
    asymmetry = np.abs(centre - centre[:, ::-1]).mean() / max(centre.std(), 1e-12)
    return {
        "nose_minus_cheeks": round(float(cheeks - nose), 5),
        "asymmetry": round(float(asymmetry), 4),
        "relief_std": round(float(centre.std()), 5),
    }


def matplotlib_portrait() -> np.ndarray | None:
    """matplotlib's sample portrait (Grace Hopper, 600×512 RGB), or None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return iio.imread(path) if path.is_file() else None


def reconstruct(photos: Path, out: Path, checkpoint: str | None, detect: bool) -> list[str]:
    command = [sys.executable, "-m", "unsup3d_cli", "reconstruct", str(photos), "--out", str(out),
               "--force", "--detect-faces" if detect else "--no-detect-faces"]  # fmt: skip
    if checkpoint:
        command += ["--checkpoint", checkpoint]
    print("$ " + shlex.join(["unsup3d", *command[3:]]), flush=True)
    subprocess.run(command, check=True, cwd=REPO)
    return command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="default: the bundled model")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "real_faces")
    parser.add_argument("--lfw", type=int, default=12, help="LFW faces to use")
    parser.add_argument("--results", type=Path, default=REPO / "experiments" / "results")
    args = parser.parse_args()
    astronaut, lfw = args.out / "photos" / "astronaut", args.out / "photos" / "lfw"
    for folder in (astronaut, lfw):
        folder.mkdir(parents=True, exist_ok=True)
    iio.imwrite(astronaut / "astronaut.png", skimage.data.astronaut())
    faces = skimage.data.lfw_subset()[: args.lfw]  # (N, 25, 25) grey in [0, 1]; faces first
    for index, face in enumerate(faces):
        big = skimage.transform.resize(face, (64, 64), order=3, anti_aliasing=False)
        rgb = (np.repeat(big[..., None], 3, axis=2).clip(0, 1) * 255).astype(np.uint8)
        iio.imwrite(lfw / f"lfw_{index:02d}.png", rgb)
    jobs = [("astronaut", True), ("lfw", False)]  # (photo folder under photos/, detect faces)
    portrait = matplotlib_portrait()
    if portrait is not None:
        folder = args.out / "photos" / "portrait"
        folder.mkdir(parents=True, exist_ok=True)
        iio.imwrite(folder / "grace_hopper.png", portrait)
        jobs.append(("portrait", True))
    recons = [args.out / f"recon_{name}" for name, _ in jobs]
    commands = [
        reconstruct(args.out / "photos" / name, recon, args.checkpoint, detect=detect)
        for (name, detect), recon in zip(jobs, recons, strict=True)
    ]
    record: dict = {"checkpoint": args.checkpoint or "bundled", "photos": {}}
    if portrait is None:
        record["matplotlib_portrait"] = "not measured: matplotlib is not installed"
    depths = []
    for recon in recons:
        for path in sorted(recon.glob("*/canonical_depth.npy")):
            depth = np.load(path).reshape(64, 64)
            record["photos"][path.parent.name] = depth_measures(depth)
            if recon.name == "recon_lfw":
                depths.append(depth)
    stack = np.stack(depths)  # (N, 64, 64)
    centre = stack[:, CENTRE[0], CENTRE[1]]
    within = centre.reshape(len(stack), -1).std(axis=1).mean()
    record["lfw_between_faces"] = round(float(centre.std(axis=0).mean() / max(within, 1e-12)), 4)
    record["lfw_nose_nearer_share"] = round(
        float(np.mean([m["nose_minus_cheeks"] > 0 for k, m in record["photos"].items()
                       if k.startswith("lfw")])), 3)  # fmt: skip
    record["commands"] = [shlex.join(["unsup3d", *c[3:]]) for c in commands]
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "real_faces.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "commands"}, indent=1))


if __name__ == "__main__":
    main()
