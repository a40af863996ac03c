"""Short training probes of a recipe, scored on validation faces while they train.

    python experiments/probe_recipe.py --steps 1000 --every 250 --threads 1 \
        --set train.lr=2e-4 --label lr2e-4

Trains ``configs/synth_faces.yaml`` (plus ``--set`` overrides) in-process for a number of
steps or minutes and, every ``--every`` steps, scores the model on the first ``--val`` images
of the validation split: SIDE and MAD (reference §7.1), and two diagnostics of the
rotation/relief trade-off that use the generator's ``meta.jsonl``: the least-squares slope of
the predicted yaw and pitch on the true ones (1 is right; < 1 means under-rotated views), and
the median per-image least-squares scale between the true and the predicted log-depth
deviations (1 is right; < 1 means a too-deep relief, or one partly unlike the truth), the
median ratio of their spreads (``relief_ratio_median``: 1 is right, > 1 too deep, whatever
the correlation), and the mean per-image standard
deviation of the canonical depth (0: a flat depth map, whatever the scale says). Whether the
depth follows each head rather than drawing one mean head: the spread across faces of the share
of the canonical depth map nearer than 0.97 (the head area), and its correlation with the
generator's ``face_fraction`` (the truth's spread is ~0.11); and, with
``model.z_translation_range``, how far the heads are moved along the view axis (spread, and
correlation with the face fraction: negative when small faces are put further away), and with
``model.scale_range`` the spread of the predicted log-size and its correlation with the face
fraction (positive when the size follows the face). The batch-mean x/y translation
(``mean_tx``, ``mean_ty``; the data's is 0): a canonical frame sliding sideways shows there
first (``view_gauge.py``). On the default mesh faces, the view's
error alone: the generator's exact canonical head of each face warped to the model's view and
scored like its depth (``exact_head_side_1e2``, ``exact_head_mad_deg``; NaN on other data;
the true pose gives about 0.36 and 7.6°, see ``pose_or_shape.py``). The roll slope
and the share of images whose predicted view sits at the edge of its range (any angle beyond 95% of
``model.rotation_range_deg``) show a collapse early: a degenerate pose saturates there.
Whether the depth range holds the relief back: the median over faces of the nearest canonical
depth (``nearest_depth_median``; the mesh heads' own is about 0.92, ``pose_or_shape.py``) and
the share of canonical pixels within 0.002 of ``model.min_depth`` (``at_near_depth_limit``);
and ``yaw_tx_corr``, the correlation of the predicted x-translation with the true yaw (a head
centred behind the pivot must be shifted back sideways as it turns).
Each evaluation is one JSON line on stdout and in ``--out``; with ``--ema`` each weight
average kept beside the trained weights (``train.ema_decay``) is scored at the same steps.
For choosing a recipe, not for reporting results: ``table2.py`` and ``unsup3d eval`` do that.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from unsup3d_cli import api  # noqa: E402
from unsup3d_cli.config import config_to_dict, load_config  # noqa: E402
from unsup3d_cli.data import PairedDepthDataset  # noqa: E402
from unsup3d_cli.engine.averaging import WeightAverage  # noqa: E402
from unsup3d_cli.engine.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from unsup3d_cli.engine.trainer import (  # noqa: E402
    Progress,
    TrainingSetup,
    build_optimizer,
    learning_rate,
    load_optimizer_state,
    set_learning_rate,
    train_step,
)
from unsup3d_cli.evaluation import predict_view_depth  # noqa: E402
from unsup3d_cli.geometry import euler_to_rotation  # noqa: E402
from unsup3d_cli.metrics import depth_metrics  # noqa: E402
from unsup3d_cli.synth_mesh import (  # noqa: E402
    MeshSynthConfig,
    build_scene,
    render_scene,
    sample_mesh_face,
)

sys.path.insert(0, str(REPO / "experiments"))
from oracle_pose_landscape import canonical_frame  # noqa: E402
from trained import log_relief_fit  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "synth_faces.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long")
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--val", type=int, default=256, help="validation images scored")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--label", default="probe")
    parser.add_argument("--out", type=Path, default=None, help="JSON lines file")
    parser.add_argument("--save", type=Path, default=None, help="checkpoint written at the end")
    parser.add_argument("--ema", default="", help="weight-average decays also scored, e.g. "
                        "0.998,0.999 (each row's label gets '@ema<decay>')")  # fmt: skip
    parser.add_argument("--resume", type=Path, default=None,
                        help="continue from a training checkpoint (weights, optimizer, step); "
                        "--steps is then the step to stop at")  # fmt: skip
    return parser.parse_args()


def validation_set(cfg, count: int) -> tuple[torch.Tensor | None, ...]:
    """First ``count`` validation images, depths, true (pitch, yaw, roll) in radians, the
    share of the frame each face covers (``face_fraction``; NaN where the generator has none)
    and the faces' exact canonical heads (:func:`exact_heads`; None where unavailable)."""
    root = Path(cfg.data.root) / "val"
    dataset = PairedDepthDataset(root, crop=cfg.data.crop)
    meta = {}
    for line in (root / "meta.jsonl").read_text().splitlines():
        record = json.loads(line)
        meta[Path(record["image"]).name] = record
    images, depths, angles, fractions, records = [], [], [], [], []
    for index in range(min(count, len(dataset))):
        item = dataset[index]
        images.append(item["image"])
        depths.append(item["depth"])
        record = meta[Path(item["path"]).name]
        records.append(record)
        angles.append(record["view_angles_rad"][:3])
        fractions.append(record.get("face_fraction", math.nan))
    images = torch.stack(images)
    return (images, torch.stack(depths), torch.tensor(angles), torch.tensor(fractions),
            exact_heads(root.parent, records, images, cfg.data.crop))  # fmt: skip


def exact_heads(root: Path, records: list[dict], images: torch.Tensor, crop) -> torch.Tensor | None:
    """The generator's exact canonical depth of each face (the same head un-rotated, background
    at the pivot, as ``pose_or_shape.py``), for the default mesh faces of ``unsup3d synth``.

    Warped to the model's view and scored like its own depth, it measures the view's error
    alone (the true pose gives SIDE 0.356 ×10⁻², MAD 7.6° on fresh faces). None, with a
    message, for other data: another style, a variant (``variant.json``), a crop, or a set the
    default generator settings do not redraw exactly (the first image is checked).
    """
    info_path = root / "dataset.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    if info.get("style") != "mesh" or (root / "variant.json").exists() or crop is not None:
        return None
    cfg, seed = MeshSynthConfig(), int(info["seed"])
    heads = []
    for number, record in enumerate(records):
        spec = sample_mesh_face(int(record["index"]), seed, cfg)
        scene = build_scene(spec, cfg)
        if number == 0:
            image = render_scene(scene, spec, cfg)[0]
            if float((image - images[0]).abs().max()) > 2 / 255:
                print(f"# {root}: not the default mesh faces; no exact-head scores", flush=True)
                return None
        heads.append(canonical_frame(scene, spec, cfg)[1])
    return torch.stack(heads)


HEAD_DEPTH = 0.97  # canonical depth nearer than this counts as head (the pivot is at 1.0)
NEAR_LIMIT = 0.002  # canonical depth this close to model.min_depth is pressed against the range


def slope(pred: torch.Tensor, true: torch.Tensor) -> float:
    """Least-squares slope of pred on true (through their means)."""
    p, t = pred - pred.mean(), true - true.mean()
    return float((p * t).sum() / t.square().sum())


@torch.no_grad()
def score(model, images, depths, angles, fractions, exact=None) -> dict[str, float]:
    model.eval()
    sides, mads, scales, views, reliefs, areas, shifts, sizes = [], [], [], [], [], [], [], []
    nearest, pressed, ratios = [], [], []
    exact_sides, exact_mads = [], []
    for start in range(0, len(images), 64):
        image, gt = images[start : start + 64], depths[start : start + 64]
        prediction = predict_view_depth(model, image)
        scores = depth_metrics(prediction.view_depth, prediction.view_mask, gt, model.renderer)
        sides.append(scores.side)
        mads.append(scores.mad_deg)
        mask = scores.mask
        for pred_d, gt_d, m in zip(prediction.view_depth, gt, mask, strict=True):
            keep = m > 0
            if keep.sum() < 10:
                continue
            scale, ratio = log_relief_fit(pred_d[keep], gt_d[keep])
            scales.append(scale)
            ratios.append(ratio)
        decomp = model(image)
        if exact is not None:  # the exact heads at the model's view
            view_depth, view_mask, _ = model.renderer.warp_depth(
                exact[start : start + 64], euler_to_rotation(decomp.view_angles),
                decomp.view_translation, model.view_depth_range, decomp.view_scale,
            )  # fmt: skip
            exact_scores = depth_metrics(view_depth, view_mask, gt, model.renderer)
            exact_sides.append(exact_scores.side)
            exact_mads.append(exact_scores.mad_deg)
        views.append(decomp.view_angles)
        shifts.append(decomp.view_translation)
        ones = image.new_ones(len(image))
        sizes.append(decomp.view_scale if decomp.view_scale is not None else ones)
        reliefs.append(decomp.depth_unbordered.std(dim=(1, 2, 3)))
        nearest.append(decomp.depth_unbordered.flatten(1).min(1).values)
        pressed.append((decomp.depth_unbordered < model.cfg.min_depth + NEAR_LIMIT).float()
                       .mean(dim=(1, 2, 3)))  # fmt: skip
        areas.append((decomp.depth_unbordered < HEAD_DEPTH).float().mean(dim=(1, 2, 3)))
    model.train()
    area, size = torch.cat(areas), torch.cat(sizes).log()
    translation = torch.cat(shifts)
    shift = translation[:, 2]
    view = torch.cat(views)
    side, mad = torch.cat(sides), torch.cat(mads)
    ok = torch.isfinite(side)
    limit = 0.95 * math.radians(model.cfg.rotation_range_deg)
    nan = side.new_full((1,), math.nan)
    exact_side, exact_mad = torch.cat(exact_sides or [nan]), torch.cat(exact_mads or [nan])
    exact_ok = torch.isfinite(exact_side)
    return {
        "side_1e2": float(side[ok].mean() * 100),
        "mad_deg": float(mad[ok].mean()),
        "pitch_slope": slope(view[:, 0], angles[:, 0]),
        "yaw_slope": slope(view[:, 1], angles[:, 1]),
        "roll_slope": slope(view[:, 2], angles[:, 2]),
        "yaw_corr": float(torch.corrcoef(torch.stack([view[:, 1], angles[:, 1]]))[0, 1]),
        "at_range_limit": float((view.abs() > limit).any(dim=1).float().mean()),
        "relief_scale_median": float(torch.tensor(scales).median()) if scales else math.nan,
        "relief_ratio_median": float(torch.tensor(ratios).median()) if ratios else math.nan,
        "canonical_depth_std": float(torch.cat(reliefs).mean()),
        "head_area_std": float(area.std()),
        "head_area_corr": float(torch.corrcoef(torch.stack([area, fractions]))[0, 1]),
        "z_shift_std": float(shift.std()),
        "z_shift_corr": float(torch.corrcoef(torch.stack([shift, fractions]))[0, 1]),
        "log_scale_std": float(size.std()),
        "log_scale_corr": float(torch.corrcoef(torch.stack([size, fractions]))[0, 1]),
        "mean_pitch_deg": float(view[:, 0].mean().rad2deg()),
        "mean_yaw_deg": float(view[:, 1].mean().rad2deg()),
        "mean_tx": float(translation[:, 0].mean()),
        "mean_ty": float(translation[:, 1].mean()),
        "exact_head_side_1e2": float(exact_side[exact_ok].mean() * 100),
        "exact_head_mad_deg": float(exact_mad[exact_ok].mean()),
        "nearest_depth_median": float(torch.cat(nearest).median()),
        "at_near_depth_limit": float(torch.cat(pressed).mean()),
        "yaw_tx_corr": float(torch.corrcoef(torch.stack([translation[:, 0], angles[:, 1]]))[0, 1]),
    }


class _Several:
    """Several weight averages updated together after each step."""

    def __init__(self, averages: list[WeightAverage]) -> None:
        self.averages = averages

    def update(self) -> None:
        for average in self.averages:
            average.update()


class _Reporter:
    """Scores the trained weights and each average; one JSON line each, on stdout and --out."""

    def __init__(self, args: argparse.Namespace, cfg, model, averages: dict) -> None:
        self.label, self.model, self.averages = args.label, model, averages
        self.data = validation_set(cfg, args.val)
        self.out = args.out.open("a") if args.out else None

    def __call__(self, step: int, train_s: float) -> None:
        for label, average in [(self.label, None), *self.averages.items()]:
            if average is None:
                scores = score(self.model, *self.data)
            else:
                with average.applied():
                    scores = score(self.model, *self.data)
            record = {"label": label, "step": step, "train_min": train_s / 60, **scores}
            line = json.dumps({k: round(v, 4) if isinstance(v, float) else v
                               for k, v in record.items()})  # fmt: skip
            print(line, flush=True)
            if self.out:
                self.out.write(line + "\n")
                self.out.flush()


def build(args: argparse.Namespace, cfg) -> tuple[TrainingSetup, Progress, dict]:
    """The training setup (resumed from --resume), where it starts and the weight averages."""
    train_loader, _ = api._loaders(cfg)
    model = api.build_model(cfg)
    precision = api.resolve_precision(cfg.train.precision, torch.device("cpu"))
    model.set_precision(precision)
    features = api.load_perceptual(cfg.loss.perceptual_weights)
    if features is not None:
        features.set_precision(precision)
    setup = TrainingSetup(model, features, build_optimizer(model, cfg.train), train_loader, None,
                          cfg.train, cfg.loss, torch.device("cpu"))  # fmt: skip
    progress = Progress()
    if args.resume is not None:
        state = load_checkpoint(args.resume)
        model.load_state_dict(state["model"])
        load_optimizer_state(setup.optimizer, state["optimizer"], cfg.train)
        progress.step = state["step"]
    averages = {f"{args.label}@ema{d}": WeightAverage(model, float(d))
                for d in args.ema.split(",") if d}  # fmt: skip
    for average in averages.values():
        average.updates = progress.step  # a resumed run is past the averages' warm-up
    setup.average = _Several(list(averages.values()))
    return setup, progress, averages


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, ["train.validate=false", *args.overrides])
    api.seed_everything(cfg.train.seed)
    setup, progress, averages = build(args, cfg)
    report = _Reporter(args, cfg, setup.model, averages)
    started, train_s = time.perf_counter(), 0.0
    while progress.step < args.steps:
        setup.train_loader.sampler.set_epoch(progress.epoch)
        for batch in setup.train_loader:
            if batch is None:
                continue
            lr = learning_rate(cfg.train, progress.step / args.steps)  # the run is --steps long
            set_learning_rate(setup.optimizer, lr)
            tick = time.perf_counter()
            train_step(setup, batch["image"], progress, batch.get("depth"))
            train_s += time.perf_counter() - tick
            progress.step += 1
            if progress.step % args.every == 0:
                report(progress.step, train_s)
            if progress.step >= args.steps or (
                args.minutes is not None and train_s >= 60 * args.minutes
            ):
                break
        else:
            progress.epoch += 1
            continue
        break
    if progress.step % args.every:
        report(progress.step, train_s)
    if args.save is not None:
        state = {"model": setup.model.state_dict(), "config": config_to_dict(cfg),
                 "step": progress.step}  # fmt: skip
        save_checkpoint(args.save, state)
    print(f"# {args.label}: {progress.step} steps, {time.perf_counter() - started:.0f} s wall",
          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
