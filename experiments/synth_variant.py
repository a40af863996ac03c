"""Mesh faces with some of the generator's factors switched off, to find which slow the pose.

Usage::

    .venv/bin/python experiments/synth_variant.py data/synth_mesh_plain --variant plain \
        --num 3750 --seed 0 --workers 2

Writes the same layout as ``unsup3d synth`` (same seed: the same heads, poses, framing and main
light) plus ``variant.json`` with the settings changed. Variants:

- ``plain``: no fill light, no specular highlight, no hair, no neck, no expressions and flat
  backgrounds only (gamma kept);
- ``flat-background``: flat backgrounds only;
- ``bald``: no hair and no neck;
- ``lambertian``: no fill light and no specular highlight;
- ``expressionless``: no expressions;
- ``hair-only``: ``plain`` with the hair and neck kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from unsup3d_cli.synth_dataset import write_dataset
from unsup3d_cli.synth_mesh import MeshSynthConfig

VARIANTS: dict[str, dict] = {
    "plain": {
        "fill_range": (0.0, 0.0),
        "specular_range": (0.0, 0.0),
        "hair_probability": 0.0,
        "neck_probability": 0.0,
        "expression_probability": 0.0,
        "background_kinds": ("flat",),
    },
    "flat-background": {"background_kinds": ("flat",)},
    "bald": {"hair_probability": 0.0, "neck_probability": 0.0},
    "lambertian": {"fill_range": (0.0, 0.0), "specular_range": (0.0, 0.0)},
    "expressionless": {"expression_probability": 0.0},
}
VARIANTS["hair-only"] = {
    k: v for k, v in VARIANTS["plain"].items() if k not in {"hair_probability", "neck_probability"}
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--num", type=int, default=3750)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    changes = VARIANTS[args.variant]
    cfg = dataclasses.replace(MeshSynthConfig(), **changes)
    summary = write_dataset(args.out, args.num, args.seed, generator=cfg, workers=args.workers,
                            force=args.force, style="mesh")  # fmt: skip
    record = {"variant": args.variant, "changes": changes, "seed": args.seed, "num": args.num}
    (args.out / "variant.json").write_text(json.dumps(record, indent=1) + "\n")
    print(summary)


if __name__ == "__main__":
    main()
