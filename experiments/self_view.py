"""Does a viewpoint network taught on the model's own turned reconstructions turn real faces
further? A test on a trained model, no change to training.

    python experiments/self_view.py [--checkpoint CKPT] [--steps 300]

Every factor of a trained model is kept but the viewpoint network. For a batch of training
faces the model predicts its decomposition; its canonical image (albedo × shading, the light
attached to the head) and depth are rendered by our renderer at a random known view Δ (angles
uniform in ±``--ranges`` degrees, translation uniform in ±``--shift``) by
``Unsup3D.render_views``; and the viewpoint network alone is trained to predict Δ from that
image (``losses.self_view_loss``: L1 on the angles in radians plus L1 on the translation in
units of ``model.xy_translation_range``), with Adam.

Near-orthographic views of a symmetric head fix only the product of the turn and the relief,
but a turned head is also foreshortened (its width × cos yaw) whatever its relief: a network
that learns the turn from the model's own renders learns the scale of the turn from
foreshortening and parallax together. Every ``--every`` steps the yaw slope on real validation
faces and the exact heads' SIDE/MAD at the model's view (``probe_recipe.score``) say whether
the views on images our renderer did not make follow. One JSON line per evaluation, on stdout
and in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from probe_recipe import REPO, score, validation_set
from trained import load_eval_model

from unsup3d_cli import api
from unsup3d_cli.config import load_config
from unsup3d_cli.losses import self_view_loss


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the bundle")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "synth_mesh")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--ranges", default="20,60,10", help="pitch, yaw, roll: ± degrees")
    parser.add_argument("--shift", type=float, default=0.01, help="± x/y translation")
    parser.add_argument("--val", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON lines file")
    return parser.parse_args()


def random_views(count: int, ranges: torch.Tensor, shift: float, gen: torch.Generator):
    """Angles (count, 3) uniform in ±ranges (radians) and translations (count, 3), z = 0."""
    angles = (torch.rand(count, 3, generator=gen) * 2 - 1) * ranges
    xy = (torch.rand(count, 2, generator=gen) * 2 - 1) * shift
    return angles, torch.cat([xy, xy.new_zeros(count, 1)], 1)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    model, checkpoint = load_eval_model(args.checkpoint)
    cfg = load_config(REPO / "configs" / "synth_mesh.yaml",
                      ["train.validate=false", f"data.root={args.data}",
                       f"train.batch_size={args.batch}", f"train.seed={args.seed}"])  # fmt: skip
    train_loader, _ = api._loaders(cfg)
    data = validation_set(cfg, args.val)
    ranges = torch.tensor([math.radians(float(x)) for x in args.ranges.split(",")])
    gen = torch.Generator().manual_seed(args.seed)
    shift_unit = model.cfg.xy_translation_range
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    view_parameters = list(model.view_net.parameters())
    for parameter in view_parameters:
        parameter.requires_grad_(True)
    optimizer = torch.optim.Adam(view_parameters, lr=args.lr)
    out = args.out.open("a") if args.out else None

    def report(step: int, loss: float) -> None:
        scores = score(model, *data)  # puts the model back in train mode
        model.eval()
        keys = ("side_1e2", "mad_deg", "pitch_slope", "yaw_slope", "roll_slope", "yaw_corr",
                "exact_head_side_1e2", "exact_head_mad_deg")  # fmt: skip
        record = {"checkpoint": str(checkpoint), "step": step, "self_view_loss": loss,
                  **{k: scores[k] for k in keys}}  # fmt: skip
        line = json.dumps(
            {k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()}
        )
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    step, running = 0, math.nan
    report(0, running)
    while step < args.steps:
        train_loader.sampler.set_epoch(step)
        for batch in train_loader:
            images = batch["image"]
            angles, translation = random_views(len(images), ranges, args.shift, gen)
            with torch.no_grad():
                turned = model.render_views(model(images), angles, translation)
            loss = self_view_loss(*model.predict_view(turned), angles, translation, shift_unit)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            value = float(loss.detach())
            running = value if math.isnan(running) else 0.9 * running + 0.1 * value
            if step % args.every == 0 or step == args.steps:
                report(step, running)
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
