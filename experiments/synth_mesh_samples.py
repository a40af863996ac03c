"""A 4×4 sheet of mesh-generated faces (seed 0), each above its depth map.

Usage::

    .venv/bin/python experiments/synth_mesh_samples.py [--size 64] [--out PATH]

Writes ``experiments/results/synth_mesh_samples.png``: rows of 4 images, each row followed by
the 4 depth maps (each stretched over its own foreground range: near is bright, the
background 1.1 is black), tiles enlarged ``--zoom`` times, and prints the render time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from unsup3d_cli.pngio import write_png
from unsup3d_cli.synth_mesh import MeshSynthConfig, synthesize_mesh

RESULTS = Path(__file__).resolve().parent / "results"


def stretch(depth: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) depth → (B, 3, S, S) grey in [0, 1]: foreground 0.25 (far) … 1 (near)."""
    fg = depth < 1.1
    far = torch.where(fg, depth, -torch.inf).amax((1, 2, 3), keepdim=True)
    near = torch.where(fg, depth, torch.inf).amin((1, 2, 3), keepdim=True)
    grey = 0.25 + 0.75 * (far - depth) / (far - near).clamp(min=1e-6)
    return torch.where(fg, grey, 0.0).expand(-1, 3, -1, -1)


def sheet(image: torch.Tensor, depth: torch.Tensor, columns: int = 4, zoom: int = 2) -> np.ndarray:
    """(B, 3, S, S) images and (B, 1, S, S) depths → uint8 (H, W, 3) grid with white gutters."""
    image = image.repeat_interleave(zoom, -1).repeat_interleave(zoom, -2)
    near = stretch(depth).repeat_interleave(zoom, -1).repeat_interleave(zoom, -2)
    rows = []
    for start in range(0, len(image), columns):
        for tiles in (image[start : start + columns], near[start : start + columns]):
            padded = torch.nn.functional.pad(tiles, (1, 1, 1, 1), value=1.0)
            rows.append(torch.cat(list(padded), dim=2))  # (3, S + 2, columns·(S + 2))
    grid = torch.cat(rows, dim=1).permute(1, 2, 0)
    return np.rint(grid.numpy() * 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--zoom", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "synth_mesh_samples.png")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one thread beats two contended ones on these small tensors
    start = time.perf_counter()
    batch = synthesize_mesh(range(16), args.seed, MeshSynthConfig(image_size=args.size))
    seconds = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_png(args.out, sheet(batch.image, batch.depth, zoom=args.zoom))
    fractions = ", ".join(f"{f:.2f}" for f in batch.face_fraction.tolist())
    print(f"16 samples in {seconds:.2f} s ({seconds / 16 * 1000:.0f} ms each) → {args.out}")
    print(f"face fractions: {fractions}")


if __name__ == "__main__":
    main()
