"""Measure how closely our decoding of original Unsup3D weights follows the original forward.

Builds the five original networks from the facts in ``tests/original_reference.py`` (key names,
shapes, layer order) with seeded random weights, writes them as an original training
checkpoint (legacy format, optimizer states, a pickled ``unsup3d.meters.MetricsTrace``), loads
it with ``unsup3d_cli.api.load_model`` for each preset, and prints the largest absolute
difference of every decoded factor against the reference, in float32 and float64.

    python experiments/original_equivalence.py [--seeds 3] [--batch 8] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the reference lives beside the tests that use it

from original_reference import (  # noqa: E402
    OriginalSettings,
    decomposition_errors,
    original_training_checkpoint,
    random_state_dict,
    reference_decomposition,
)

from unsup3d_cli import api  # noqa: E402

SETTINGS = {
    "celeba": OriginalSettings(),
    "cat": OriginalSettings(z_translation_range=0.1),
    "synface": OriginalSettings(),
    "syncar": OriginalSettings(border_depth=1.08, min_diff_light=0.5),
}


def measure(preset: str, seed: int, batch: int, folder: Path) -> dict[str, dict[str, float]]:
    """Largest error per factor for one preset and seed, in float32 and float64."""
    generator = torch.Generator().manual_seed(seed)
    names = ("netD", "netA", "netL", "netV") + (() if preset == "syncar" else ("netC",))
    nets = {name: random_state_dict(name, generator) for name in names}
    path = folder / f"{preset}-{seed}.pth"
    original_training_checkpoint(path, nets)
    model, _ = api.load_model(path, device="cpu", preset=preset)
    images = torch.rand(batch, 3, 64, 64, generator=generator)
    result = {}
    for dtype in (torch.float32, torch.float64):
        with torch.no_grad():
            ours = model.to(dtype)(images.to(dtype))
            typed = {n: {k: v.to(dtype) for k, v in s.items()} for n, s in nets.items()}
            ref = reference_decomposition(typed, images.to(dtype), SETTINGS[preset])
        result[str(dtype).removeprefix("torch.")] = decomposition_errors(ours, ref)
    path.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="random weight sets per preset")
    parser.add_argument("--batch", type=int, default=8, help="images per forward")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    worst: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in SETTINGS:
            for seed in range(args.seeds):
                for dtype, errors in measure(preset, seed, args.batch, Path(tmp)).items():
                    row = worst.setdefault(preset, {}).setdefault(dtype, {})
                    for name, value in errors.items():
                        row[name] = max(row.get(name, 0.0), value)
    for preset, by_dtype in worst.items():
        for dtype, errors in by_dtype.items():
            cells = "  ".join(f"{k} {v:.1e}" for k, v in errors.items())
            print(f"{preset:8s} {dtype:8s} {cells}")
    if args.out is not None:
        args.out.write_text(json.dumps(worst, indent=2) + "\n")


if __name__ == "__main__":
    main()
