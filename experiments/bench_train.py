"""Training-step benchmark: img/s, its split into networks / renderer / VGG, and GFLOP/s.

Measures, in one run on one device:

* the fp32 ``torch.mm`` throughput of the machine (GFLOP/s, best of repeated square products,
  taken before and after the training measurements; the higher is the reference peak);
* the median wall time of a full training step (``engine.trainer.train_step``: forward,
  reconstruction, loss, backward, Adam step) at the paper recipe, hence images per second;
* the time of each component, forward + backward, timed in isolation on representative inputs:
  the five networks (``Unsup3D.forward``, gradients to the parameters), the renderer
  (``Unsup3D.reconstruct`` on detached factors, gradients of the reconstructed image back to the
  factors) and the VGG16 relu3_3 extractor (on the 3B perceptual batch, gradients to its input,
  as in training); the rest of the step (losses, optimizer, glue) is reported as ``other``.
  Each timed round runs the step and then each component once, so load changes on a shared
  machine hit all of them alike; every figure is the median over the rounds;
* matmul/convolution FLOPs of the step and of each component (``torch.utils.flop_counter``),
  hence the achieved GFLOP/s and its share of the measured matmul peak.

Targets (reported, not asserted): renderer ≤ 15 % of the step; step ≥ 40 % of the matmul peak.

Usage::

    .venv/bin/python experiments/bench_train.py            # batch 64, 2 warm-up + 5 timed rounds
    .venv/bin/python experiments/bench_train.py --quick    # smoke check: batch 8, 1 + 1 rounds
    .venv/bin/python experiments/bench_train.py --device cuda --steps 20

Writes ``experiments/results/bench_train_<device>.json`` and a markdown table next to it
(``..._quick`` for ``--quick`` runs, so a smoke check never overwrites a real result).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from unsup3d_cli.api import build_model, load_perceptual, resolve_device, seed_everything
from unsup3d_cli.config import ConfigError, ExperimentConfig, load_config
from unsup3d_cli.engine.trainer import Progress, TrainingSetup, build_optimizer, train_step
from unsup3d_cli.model import Decomposition, Unsup3D
from unsup3d_cli.synthetic import synthetic_sample

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RENDERER_TARGET = 0.15
"""Largest acceptable share of the step's time spent in the renderer."""
MATMUL_SHARE_TARGET = 0.40
"""Smallest acceptable achieved GFLOP/s of the step, as a share of the matmul peak."""
NETWORK_OUTPUTS = (
    "depth", "albedo", "ambient", "diffuse", "light_direction", "view_angles",
    "view_translation", "confidence", "perceptual_confidence",
)  # fmt: skip
"""Decomposition fields the loss and the renderer consume (they receive gradients in training)."""
RENDERER_INPUTS = (
    "depth", "albedo", "ambient", "diffuse", "light_direction", "view_angles", "view_translation",
)  # fmt: skip
"""Decomposition fields ``Unsup3D.reconstruct`` reads."""
COMPONENTS = ("networks", "renderer", "vgg")
NOTE = """

Components are timed in isolation (forward + backward), round-robin with the step; `other` is
the step minus their sum (losses, Adam, glue). FLOPs count matmuls and convolutions only
(`torch.utils.flop_counter`): the renderer's gathers, scatters and elementwise work count as 0.
"""
OTHER_CORES_LIMIT = 0.2
"""CPU cores other processes may use on average during the run before the timings are flagged."""


@dataclass(frozen=True)
class Timing:
    """Wall times (s) of repeated calls and the FLOPs of one call."""

    seconds: list[float]
    flops: int

    @property
    def median(self) -> float:
        """Median wall time in seconds."""
        return statistics.median(self.seconds)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` overrides batch size, warm-up and steps."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (64)")
    parser.add_argument("--steps", type=int, default=5, help="timed rounds (5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds, ≥ 1 (2)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (cpu)")
    parser.add_argument("--config", default=None, help="YAML config (default: paper recipe)")
    parser.add_argument("--perceptual", choices=("random", "none"), default="random",
                        help="VGG16 weights; random init costs the same as ImageNet's")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--matmul-size", type=int, default=None,
                        help="side of the fp32 matmul (2048 on CPU, 8192 on CUDA)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="JSON path (markdown beside it)")
    parser.add_argument("--quick", action="store_true", help="smoke check: batch 8, 1+1 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.warmup, args.steps = 8, 1, 1
    if min(args.batch_size, args.steps, args.warmup) < 1:
        parser.error("--batch-size, --steps and --warmup must be ≥ 1")
    return args


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], device: torch.device, reps: int) -> list[float]:
    """Wall time of each of ``reps`` calls of ``fn``, synchronized around each call."""
    seconds = []
    for _ in range(reps):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def count_flops(fn: Callable[[], object]) -> int:
    """Matmul/convolution FLOPs (forward and backward) of one call of ``fn``."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def measure(
    calls: dict[str, Callable[[], object]], device: torch.device, warmup: int, reps: int
) -> dict[str, Timing]:
    """Warm up, then time every call once per round, round-robin, for ``reps`` rounds.

    The first warm-up call of each counts its FLOPs. Interleaving the calls makes a change in the
    machine's load (it may be shared) hit the step and its components alike.
    """
    flops = {name: count_flops(call) for name, call in calls.items()}
    for _ in range(warmup - 1):
        for call in calls.values():
            call()
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(reps):
        for name, call in calls.items():
            seconds[name] += time_calls(call, device, 1)
    return {name: Timing(seconds[name], flops[name]) for name in calls}


def matmul_gflops(device: torch.device, size: int, min_seconds: float = 1.0) -> dict:
    """fp32 square ``torch.mm`` throughput: best and median GFLOP/s over ≥ 5 timed products."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a, b = (torch.randn(size, size, generator=gen).to(device) for _ in range(2))
    torch.mm(a, b)  # warm-up
    seconds: list[float] = []
    while len(seconds) < 5 or sum(seconds) < min_seconds:
        seconds += time_calls(lambda: torch.mm(a, b), device, 1)
    flop = 2.0 * size**3
    rates = [flop / s / 1e9 for s in seconds]
    best, median = max(rates), statistics.median(rates)
    return {"size": size, "reps": len(rates), "best": best, "median": median}


def make_batch(batch_size: int, seed: int, device: torch.device) -> Tensor:
    """A fixed batch of synthetic faces (B, 3, 64, 64) in [0, 1], made once, outside timing."""
    images = [synthetic_sample(i, seed, 64)[0] for i in range(batch_size)]
    return torch.stack(images).float().to(device)


def load_experiment(args: argparse.Namespace) -> ExperimentConfig:
    """The paper recipe (or ``--config``) with the benchmark's batch size and VGG weights."""
    cfg = load_config(args.config) if args.config else ExperimentConfig()
    return replace(
        cfg,
        train=replace(cfg.train, batch_size=args.batch_size),
        loss=replace(cfg.loss, perceptual_weights=args.perceptual),
    )


def build_setup(cfg: ExperimentConfig, device: torch.device) -> TrainingSetup:
    """Model, feature extractor and optimizer as ``api.train`` builds them (no data loaders)."""
    seed_everything(cfg.train.seed)
    model = build_model(cfg).to(device)
    features = load_perceptual(cfg.loss.perceptual_weights)
    return TrainingSetup(
        model=model,
        features=features.to(device) if features is not None else None,
        optimizer=build_optimizer(model, cfg.train),
        train_loader=None,  # type: ignore[arg-type]  # train_step reads no loader
        val_loader=None,
        train_cfg=cfg.train,
        loss_cfg=cfg.loss,
        device=device,
    )


def projection(outputs: dict[str, Tensor]) -> Callable[[dict[str, Tensor]], Tensor]:
    """Scalar ``Σ ⟨w_k, out_k⟩`` with fixed random ``w_k``: a loss that reaches every output."""
    weights = {k: torch.randn_like(v) for k, v in outputs.items()}
    return lambda out: sum((out[k] * w).sum() for k, w in weights.items())


def networks_call(model: Unsup3D, image: Tensor) -> Callable[[], object]:
    """The five networks, forward + backward to their parameters."""
    params = [p for p in model.parameters() if p.requires_grad]

    def outputs() -> dict[str, Tensor]:
        decomp = model(image)
        return {k: getattr(decomp, k) for k in NETWORK_OUTPUTS if getattr(decomp, k) is not None}

    with torch.no_grad():
        loss_of = projection(outputs())
    return lambda: torch.autograd.grad(loss_of(outputs()), params)


def renderer_call(model: Unsup3D, decomp: Decomposition) -> Callable[[], object]:
    """``Unsup3D.reconstruct``, forward + backward from the reconstructed image to the factors.

    Only ``recon.image`` carries the loss in training, so only its gradient is propagated.
    """
    leaves = {k: getattr(decomp, k).detach().requires_grad_() for k in RENDERER_INPUTS}
    inputs = replace(decomp.detach(), **leaves)
    with torch.no_grad():
        loss_of = projection({"image": model.reconstruct(inputs).image})

    def call() -> object:
        loss = loss_of({"image": model.reconstruct(inputs).image})
        return torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)

    return call


def vgg_call(features: nn.Module, perceptual_batch: Tensor) -> Callable[[], object]:
    """VGG16 relu3_3 on the 3B perceptual batch, forward + backward to its input (frozen)."""
    leaf = perceptual_batch.detach().requires_grad_()
    with torch.no_grad():
        loss_of = projection({"features": features(leaf)})
    # A view, not the leaf itself, goes in: FlopCounterMode's module hooks cannot take a leaf
    # input under autograd.grad (and in training the input is a non-leaf too).
    return lambda: torch.autograd.grad(loss_of({"features": features(leaf.view_as(leaf))}), leaf)


def component_calls(setup: TrainingSetup, image: Tensor) -> dict[str, Callable[[], object]]:
    """Isolated forward + backward calls of each component, on inputs from the current model."""
    model, features = setup.model, setup.features
    with torch.no_grad():
        decomp = model(image)
        recon_image = model.reconstruct(decomp).image  # (2B, 3, H, W)
    calls = {
        "networks": networks_call(model, image),
        "renderer": renderer_call(model, decomp),
    }
    if features is not None and setup.loss_cfg.lam_perc > 0:
        calls["vgg"] = vgg_call(features, torch.cat([recon_image, image]))  # (3B, 3, H, W)
    return calls


def cpu_usage() -> tuple[float, float, float] | None:
    """(wall s, busy CPU-s of the whole machine, CPU-s of this process); None without /proc."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    own = os.times()
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
    return time.perf_counter(), busy, own.user + own.system


def other_cpu_cores(start: tuple | None, end: tuple | None) -> float | None:
    """Average number of CPU cores kept busy by other processes between two ``cpu_usage``."""
    if start is None or end is None:
        return None
    wall, busy, own = (b - a for a, b in zip(start, end, strict=True))
    return max(busy - own, 0.0) / wall


def device_name(device: torch.device) -> str:
    """GPU name, or the CPU model from /proc/cpuinfo (platform string as a fallback)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(args: argparse.Namespace, cfg: ExperimentConfig, device: torch.device) -> dict:
    """All measurements; returns the raw timings and counts."""
    setup = build_setup(cfg, device)
    image = make_batch(args.batch_size, cfg.train.seed, device)
    size = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    log(f"matmul {size}x{size} fp32 ...")
    usage_start = cpu_usage()
    matmul_before = matmul_gflops(device, size)
    progress = Progress()
    calls = {"step": lambda: train_step(setup, image, progress), **component_calls(setup, image)}
    log(
        f"training step (batch {args.batch_size}) and {', '.join(list(calls)[1:])}: "
        f"{args.warmup} warm-up + {args.steps} timed rounds ..."
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timings = measure(calls, device, args.warmup, args.steps)
    peak_bytes = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    matmul_after = matmul_gflops(device, size)
    other_cores = other_cpu_cores(usage_start, cpu_usage())
    params = sum(p.numel() for p in setup.model.parameters() if p.requires_grad)
    return {
        "cfg": cfg,
        "params": params,
        "step": timings.pop("step"),
        "parts": timings,
        "matmul": (matmul_before, matmul_after),
        "other_cores": other_cores,
        "peak_memory_bytes": peak_bytes,
    }


def summarize(args: argparse.Namespace, device: torch.device, raw: dict) -> dict:
    """Every number of the run, as a JSON-ready dict (seconds, GFLOP, fractions)."""
    step, parts = raw["step"], raw["parts"]
    before, after = raw["matmul"]
    peak = max(before["best"], after["best"])
    step_s = step.median
    achieved = step.flops / step_s / 1e9
    breakdown = {name: _part(parts.get(name), step_s, peak) for name in COMPONENTS}
    other = step_s - sum(p["seconds"] for p in breakdown.values())
    breakdown["other"] = {"seconds": other, "fraction": other / step_s}
    renderer_fraction = breakdown["renderer"]["fraction"]
    result = {
        **_environment(args, device, raw["cfg"]),
        "parameters": raw["params"],
        "other_processes_cpu_cores": raw["other_cores"],
        "step_s": step_s,
        "step_s_all": step.seconds,
        "images_per_s": args.batch_size / step_s,
        "peak_gpu_memory_gib": (
            raw["peak_memory_bytes"] / 2**30 if raw["peak_memory_bytes"] is not None else None
        ),
        "matmul": {"before": before, "after": after},
        "matmul_gflops": peak,
        "step_gflop": step.flops / 1e9,
        "achieved_gflops": achieved,
        "share_of_matmul": achieved / peak,
        "breakdown": breakdown,
        "targets": {
            "renderer_fraction_max": RENDERER_TARGET,
            "renderer_fraction": renderer_fraction,
            "renderer_pass": renderer_fraction <= RENDERER_TARGET,
            "share_of_matmul_min": MATMUL_SHARE_TARGET,
            "share_of_matmul": achieved / peak,
            "share_of_matmul_pass": achieved / peak >= MATMUL_SHARE_TARGET,
        },
    }
    return {**result, "warnings": warnings(result)}


def warnings(result: dict) -> list[str]:
    """Reasons to distrust the timings: a busy or changing machine, an inconsistent split."""
    found = []
    other = result["other_processes_cpu_cores"]
    if other is not None and other > OTHER_CORES_LIMIT:
        found.append(f"other processes kept {other:.2f} CPU cores busy during the run")
    before, after = (result["matmul"][k]["best"] for k in ("before", "after"))
    if abs(before - after) > 0.15 * max(before, after):
        found.append(f"matmul GFLOP/s changed during the run ({before:.0f} → {after:.0f})")
    if result["breakdown"]["other"]["seconds"] < 0:
        found.append("the components' isolated times add up to more than the step")
    return found


def _part(timing: Timing | None, step_s: float, peak: float) -> dict:
    """Seconds, share of the step, GFLOP and achieved GFLOP/s of one component (zeros if absent)."""
    if timing is None:
        return dict.fromkeys(("seconds", "fraction", "gflop", "gflops", "share_of_matmul"), 0.0)
    seconds, gflop = timing.median, timing.flops / 1e9
    return {
        "seconds": seconds,
        "seconds_all": timing.seconds,
        "fraction": seconds / step_s,
        "gflop": gflop,
        "gflops": gflop / seconds,
        "share_of_matmul": gflop / seconds / peak,
    }


def _environment(args: argparse.Namespace, device: torch.device, cfg: ExperimentConfig) -> dict:
    """What was measured, where and how."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": device.type,
        "device_name": device_name(device),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "quick": args.quick,
        "batch_size": args.batch_size,
        "image_size": 64,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "config": args.config or "paper recipe (ExperimentConfig defaults)",
        "model_width": cfg.model.width,
        "perceptual": args.perceptual,
    }


def report_lines(result: dict) -> list[str]:
    """Human-readable summary of :func:`summarize`'s result."""
    targets, before, after = result["targets"], *result["matmul"].values()
    lines = [
        f"device     {result['device_name']} ({result['device']}), {result['threads']} threads, "
        f"torch {result['torch_version']}",
        f"step       batch {result['batch_size']}: {result['step_s']:.3f} s (median of "
        f"{result['timed_steps']}) → {result['images_per_s']:.1f} img/s",
        *(
            [f"memory     peak GPU allocation {result['peak_gpu_memory_gib']:.2f} GiB"]
            if result.get("peak_gpu_memory_gib") is not None
            else []
        ),
        f"matmul     fp32 {before['size']}²: {result['matmul_gflops']:.1f} GFLOP/s (best; before "
        f"{before['best']:.1f}, after {after['best']:.1f})",
        f"flops      {result['step_gflop']:.1f} GFLOP/step → {result['achieved_gflops']:.1f} "
        f"GFLOP/s = {100 * result['share_of_matmul']:.1f}% of matmul",
        f"{'component':<10} {'seconds':>8} {'share':>7} {'GFLOP':>8} {'GFLOP/s':>8} {'of mm':>6}",
    ]
    for name, part in _table(result):
        flops = (
            f" {part['gflop']:8.1f} {part['gflops']:8.1f} {100 * part['share_of_matmul']:5.1f}%"
            if "gflop" in part
            else ""
        )
        lines.append(f"{name:<10} {part['seconds']:8.3f} {100 * part['fraction']:6.1f}%{flops}")
    lines += [
        f"target     renderer ≤ {100 * targets['renderer_fraction_max']:.0f}% of the step: "
        f"{100 * targets['renderer_fraction']:.1f}% → {_verdict(targets['renderer_pass'])}",
        f"target     step ≥ {100 * targets['share_of_matmul_min']:.0f}% of matmul GFLOP/s: "
        f"{100 * targets['share_of_matmul']:.1f}% → {_verdict(targets['share_of_matmul_pass'])}",
    ]
    return lines + [f"WARNING    {text}; timings are unreliable" for text in result["warnings"]]


def _table(result: dict) -> list[tuple[str, dict]]:
    """Rows of the breakdown table: the whole step first, then its components and the rest."""
    step = {
        "seconds": result["step_s"],
        "fraction": 1.0,
        "gflop": result["step_gflop"],
        "gflops": result["achieved_gflops"],
        "share_of_matmul": result["share_of_matmul"],
    }
    return [("step", step), *result["breakdown"].items()]


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def markdown(result: dict) -> str:
    """A markdown section: settings, the breakdown table and the two targets."""
    head = (
        f"## Training step on {result['device']} ({result['device_name']})\n\n"
        f"{result['date']}, torch {result['torch_version']}, {result['threads']} threads, "
        f"batch {result['batch_size']}, 64×64, {result['config']}, VGG {result['perceptual']}"
        f"{', QUICK smoke run' if result['quick'] else ''}.\n\n"
        f"- **{result['images_per_s']:.1f} img/s** ({result['step_s']:.3f} s/step, median of "
        f"{result['timed_steps']})\n"
        f"- fp32 matmul: {result['matmul_gflops']:.1f} GFLOP/s; step: {result['step_gflop']:.1f} "
        f"GFLOP → {result['achieved_gflops']:.1f} GFLOP/s = "
        f"**{100 * result['share_of_matmul']:.1f}%** of matmul\n\n"
        "| component | s | share of step | GFLOP | GFLOP/s | % of matmul |\n"
        "|---|---:|---:|---:|---:|---:|\n"
    )
    rows = []
    for name, part in _table(result):
        flops = (
            f"{part['gflop']:.1f} | {part['gflops']:.1f} | {100 * part['share_of_matmul']:.1f}%"
            if "gflop" in part
            else "– | – | –"
        )
        rows.append(f"| {name} | {part['seconds']:.3f} | {100 * part['fraction']:.1f}% | {flops} |")
    lines = [line[11:] for line in report_lines(result) if line.startswith("target")]
    lines += [f"**Warning**: {text}; timings are unreliable." for text in result["warnings"]]
    targets = "".join(f"- {line}\n" for line in lines)
    return f"{head}{chr(10).join(rows)}{NOTE}\nTargets (reported, not asserted):\n\n{targets}"


def log(message: str) -> None:
    """Progress line on stdout, flushed (the full run takes minutes on a laptop CPU)."""
    print(f"[bench] {message}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the report, write the JSON and markdown files."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
        cfg = load_experiment(args)
    except (ConfigError, ValueError) as err:
        print(f"bench_train: error: {err}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    result = summarize(args, device, run(args, cfg, device))
    result["wall_s"] = time.perf_counter() - started
    print("\n".join(report_lines(result)))
    suffix = "_quick" if args.quick else ""
    out = args.out or RESULTS_DIR / f"bench_train_{device.type}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    log(f"wrote {out} and {out.with_suffix('.md')} ({result['wall_s']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
