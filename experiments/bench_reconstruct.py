"""``unsup3d reconstruct`` benchmark: images per second and memory over a long streamed run.

Measures, on the CPU by default, with a randomly initialised model of the chosen width (the
weights do not change the cost) and 64×64 PNG inputs (synthetic faces, hard-linked many times
into a generated folder, so the files are real but cheap to make):

* the per-image cost of each stage at the run's batch size, in isolation: the five networks
  (``Unsup3D.forward``), the renderer (``Unsup3D.reconstruct`` of the un-flipped branch, as
  ``reconstruct`` renders it) and the maps
  (relighting and tensor → uint8 conversion), with the networks' FLOPs; the networks' FLOPs
  against the machine's fp32 matmul throughput give the ceiling no pipeline can beat;
* throughput: ``api.reconstruct`` end to end (discovery, loader workers, face-free crops,
  model, renderer, 16 files per image, gallery) on ``--throughput-images`` images, without
  ``--animate`` → images/s as the command reports it;
* memory: ``api.reconstruct`` on ``--images`` images while a thread samples the memory (PSS) of
  this process plus its loader workers every half second; flat means the second half of the
  run shows no upward trend: its fitted slope times the number of images is at most
  :data:`FLAT_MB` (a leak grows; a negative slope is the noise of transient allocations).

Usage::

    .venv/bin/python experiments/bench_reconstruct.py                   # paper width, 10,000
    .venv/bin/python experiments/bench_reconstruct.py --width tiny --images 10000
    .venv/bin/python experiments/bench_reconstruct.py --quick           # smoke check

Writes ``experiments/results/bench_reconstruct_<width>.json`` and ``.md`` (``..._quick`` for
``--quick``). Target (reported, not asserted): ≥ 100 images/s without ``--animate``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from unsup3d_cli import api
from unsup3d_cli.config import ExperimentConfig, apply_overrides, config_to_dict
from unsup3d_cli.engine.checkpoint import save_checkpoint
from unsup3d_cli.reconstruct import ReconstructOptions, output_maps
from unsup3d_cli.synthetic import synthetic_sample

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET_IMAGES_PER_S = 100.0
"""The issue's throughput target without --animate, on the 2-core CPU."""
FLAT_MB = 50.0
"""Largest trend of the memory (PSS) over a run (second-half slope × images) called flat."""
SOURCE_IMAGES = 16
"""Distinct synthetic faces behind the hard links."""
WIDTHS = {
    "paper": (),
    "synth_faces": ("model.width=32", "model.encoder_width=32"),  # configs/synth_faces.yaml
    "tiny": (
        "model.width=16", "model.encoder_width=16", "model.depth_zdim=32",
        "model.confidence_zdim=16",
    ),
}  # fmt: skip
"""Model overrides per ``--width``: the paper's networks, our synthetic-faces recipe's (half
width), or the narrow test model."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", choices=sorted(WIDTHS), default="paper")
    parser.add_argument("--images", type=int, default=10_000, help="images of the memory run")
    parser.add_argument("--throughput-images", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs; best is kept")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="model threads (reconstruct's)")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp folder")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="a trained checkpoint instead of a random-init model of --width (its predicted "
        "views are varied, as on real data; random weights predict near-identity views); "
        "results are named after --label",
    )
    parser.add_argument("--label", default="trained", help="name of the --checkpoint results")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="the networks' arithmetic (reconstruct --precision)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="128 + 64 images, batch 16")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.throughput_images, args.batch_size, args.repeats = 128, 64, 16, 1
    args.precision = api.resolve_precision(args.precision, torch.device(args.device))
    return args


def write_checkpoint(path: Path, width: str) -> None:
    cfg = apply_overrides(ExperimentConfig(name=f"bench-{width}"), list(WIDTHS[width]))
    torch.manual_seed(0)
    model = api.build_model(cfg)
    save_checkpoint(path, {"model": model.state_dict(), "config": config_to_dict(cfg)})


def make_inputs(folder: Path, count: int, sources: list[Path]) -> Path:
    """``count`` PNG files in ``folder``, hard links to the source faces (copies if needed)."""
    folder.mkdir(parents=True)
    for index in range(count):
        target = folder / f"img_{index:05d}.png"
        try:
            os.link(sources[index % len(sources)], target)
        except OSError:
            shutil.copyfile(sources[index % len(sources)], target)
    return folder


def write_sources(folder: Path) -> list[Path]:
    from torchvision.utils import save_image

    folder.mkdir(parents=True)
    paths = []
    for index in range(SOURCE_IMAGES):
        image, _ = synthetic_sample(index, 2, 64)
        paths.append(folder / f"face_{index:02d}.png")
        save_image(image.float(), paths[-1])
    return paths


# --------------------------------------------------------------------------------------------
# Stages in isolation


def _median_seconds(fn: Callable[[], object], reps: int = 3) -> float:
    fn()  # warm-up (oneDNN primitive creation)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(size: int = 1024, seconds: float = 1.0) -> float:
    """Best fp32 square-matmul throughput of this process's threads, GFLOP/s."""
    a, b = torch.rand(size, size), torch.rand(size, size)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def stage_costs(checkpoint: Path, batch: int, device: str, threads: int, precision: str) -> dict:
    """Milliseconds per image of the networks, the renderer and the maps with ``threads``."""
    model, _ = api.load_model(checkpoint, device, precision)
    images = torch.rand(batch, 3, 64, 64, device=device)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            decomp = model(images)
            recon = model.reconstruct(decomp, mirror=False)
            per_batch = {
                "networks": _median_seconds(lambda: model(images)),
                "renderer": _median_seconds(lambda: model.reconstruct(decomp, mirror=False)),
                "maps": _median_seconds(lambda: output_maps(model, images, decomp, recon)),
            }
    finally:
        torch.set_num_threads(before)
    return {k: round(1000 * v / batch, 3) for k, v in per_batch.items()}


def network_gflop(checkpoint: Path) -> float:
    """Matmul/convolution GFLOP of the five networks for one image."""
    model, _ = api.load_model(checkpoint, "cpu")
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, 3, 64, 64))
    return round(counter.get_total_flops() / 1e9, 3)


# --------------------------------------------------------------------------------------------
# Runs


def _pss_mb(pid: int) -> float:
    """Proportional set size of a process and its children (loader workers), MB (Linux).

    PSS splits pages shared between the forked workers and the main process among them, so
    the sum is the memory the run really holds (summing RSS would count shared pages twice).
    """
    total = 0
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    pids.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    for proc in pids:
        try:
            for line in Path(f"/proc/{proc}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class MemorySampler(threading.Thread):
    """Samples ``_pss_mb`` of this process every ``period`` seconds until stopped."""

    def __init__(self, period: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.period, self.samples, self._halt = period, [], threading.Event()
        self.start_time = time.perf_counter()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.perf_counter() - self.start_time, _pss_mb(os.getpid())))
            self._halt.wait(self.period)

    def stop(self) -> list[tuple[float, float]]:
        self._halt.set()
        self.join()
        return self.samples


def cpu_times() -> tuple[float, float, float]:
    """(wall, busy CPU-s of the machine, CPU-s of this process and its reaped children)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    own = os.times()
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    mine = own.user + own.system + own.children_user + own.children_system
    return time.perf_counter(), busy, mine


def timed_run(checkpoint: Path, inputs: Path, out: Path, args: argparse.Namespace) -> dict:
    """One ``api.reconstruct`` run, sampling memory (PSS) and other processes' CPU share."""
    sampler = MemorySampler()
    sampler.start()
    before = cpu_times()
    options = ReconstructOptions(batch_size=args.batch_size, detect_faces=False,
                                 threads=args.threads)  # fmt: skip
    summary = api.reconstruct(checkpoint, [inputs], out, options, device=args.device,
                              precision=args.precision)  # fmt: skip
    after = cpu_times()
    samples = sampler.stop()
    wall, busy, mine = (b - a for a, b in zip(before, after, strict=True))
    return {
        "images": summary.processed,
        "skipped": len(summary.skipped),
        "seconds": round(summary.seconds, 2),
        "images_per_s": round(summary.images_per_s, 2),
        "other_processes_cpu_cores": round(max(busy - mine, 0.0) / wall, 2),
        "memory": memory_stats(samples, summary.processed),
    }


def memory_stats(samples: list[tuple[float, float]], images: int) -> dict:
    """Median memory (PSS) per quarter of the run, the peak, and the trend of the second half.

    The first quarter holds the warm-up (model, oneDNN buffers, loader workers, allocator
    arenas). A leak shows as a trend: the least-squares slope of the second half's samples,
    in MB per 1000 images (time mapped to images at the run's mean rate), times the number of
    images gives ``trend_mb``, the growth the run would show if it went on at that slope.
    The renderer's chunked rasterizer allocates and frees a few hundred MB per batch, hence
    medians and a fit rather than maxima.
    """
    if len(samples) < 8:
        return {"samples": len(samples)}
    end = samples[-1][0]
    quarters = [
        statistics.median(mb for t, mb in samples if k * end / 4 <= t <= (k + 1) * end / 4)
        for k in range(4)
    ]
    half = [(t / end * images, mb) for t, mb in samples if t >= end / 2]
    slope = statistics.linear_regression([x for x, _ in half], [y for _, y in half]).slope
    return {
        "samples": len(samples),
        "quarter_medians_mb": [round(q, 1) for q in quarters],
        "second_half_slope_mb_per_1000": round(1000 * slope, 2),
        "trend_mb": round(slope * images, 1),
        "peak_mb": round(max(mb for _, mb in samples), 1),
        "timeline_mb": [round(mb) for _, mb in samples[:: max(1, len(samples) // 40)]],
    }


# --------------------------------------------------------------------------------------------
# Report


def markdown(result: dict) -> str:
    through, memory, stages = result["throughput"], result["memory"], result["stages"]
    runs = result["throughput_runs"]
    ms = stages["ms_per_image"]
    ceiling = result["matmul_gflops"] / stages["network_gflop_per_image"]
    rss = memory["memory"]
    lines = [
        f"## reconstruct on {result['device']} ({result['cpu']})",
        "",
        f"{result['date']}, torch {result['torch']}, {result['threads']} threads "
        f"({result['model_threads']} for the model), "
        f"{result['width']} width, batch {result['batch_size']}, 64×64 PNG inputs, no --animate, "
        f"networks in {result.get('precision', 'fp32')}.",
        "",
        f"- **{through['images_per_s']} img/s** end to end over {through['images']} images, "
        f"best of {len(runs)} runs (target ≥ {TARGET_IMAGES_PER_S:.0f}: "
        f"{'PASS' if through['images_per_s'] >= TARGET_IMAGES_PER_S else 'MISS'}); each run, "
        "img/s (CPU cores other processes kept busy meanwhile): "
        + ", ".join(f"{r['images_per_s']} ({r['other_processes_cpu_cores']})" for r in runs),
        f"- memory over {memory['images']} images ({memory['seconds']} s, "
        f"{memory['images_per_s']} img/s, other processes "
        f"{memory['other_processes_cpu_cores']} cores): memory (PSS) medians per quarter "
        f"{rss.get('quarter_medians_mb')} MB, peak {rss.get('peak_mb')} MB; second-half "
        f"slope {rss.get('second_half_slope_mb_per_1000')} MB per 1000 images → trend "
        f"{rss.get('trend_mb')} MB over the run → {'FLAT' if result['flat'] else 'GROWING'}",
        "",
        "| stage (isolated), ms per image | " + " | ".join(ms) + " |",
        "|---|" + "---:|" * len(ms),
        *(
            f"| {stage} | " + " | ".join(str(ms[n][stage]) for n in ms) + " |"
            for stage in next(iter(ms.values()))
        ),
        "",
        "The pipeline's model threads share the cores with 2 loader processes and 2 writer "
        "threads (`--threads` sets the model's).",
        "",
        f"Networks: {stages['network_gflop_per_image']} GFLOP per image; fp32 matmul "
        f"throughput {result['matmul_gflops']:.0f} GFLOP/s → at most **{ceiling:.0f} img/s** "
        "for the networks alone, at 100% of matmul speed, before rendering or writing.",
        "",
        f"Memory (PSS) timeline (MB, ~40 samples): {rss.get('timeline_mb')}",
    ]
    return "\n".join(lines) + "\n"


def measure(args: argparse.Namespace, work: Path) -> dict:
    """Every measurement of the benchmark, as the JSON-ready result."""
    peak = matmul_gflops()
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = work / "model.pt"
        write_checkpoint(checkpoint, args.width)
    sources = write_sources(work / "sources")
    counts = sorted({1, torch.get_num_threads()})
    stages = {
        "network_gflop_per_image": network_gflop(checkpoint),
        "ms_per_image": {
            f"{n} thread{'s' * (n > 1)}": stage_costs(
                checkpoint, args.batch_size, args.device, n, args.precision
            )
            for n in counts
        },
    }
    print("stages:", stages, flush=True)
    small = make_inputs(work / "throughput", args.throughput_images, sources)
    runs = []
    for repeat in range(args.repeats):
        runs.append(timed_run(checkpoint, small, work / f"out_throughput_{repeat}", args))
        print("throughput:", {k: v for k, v in runs[-1].items() if k != "memory"}, flush=True)
    many = make_inputs(work / "memory", args.images, sources)
    memory = timed_run(checkpoint, many, work / "out_memory", args)
    print("memory:", memory["memory"], flush=True)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": args.device, "cpu": _cpu_name(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "width": _model_name(args),
        "precision": args.precision,
        "batch_size": args.batch_size,
        "model_threads": args.threads or torch.get_num_threads(),
        "matmul_gflops": round(max(peak, matmul_gflops()), 1), "stages": stages,
        "throughput": max(runs, key=lambda r: r["images_per_s"]), "throughput_runs": runs,
        "memory": memory, "target_images_per_s": TARGET_IMAGES_PER_S,
        "flat": memory["memory"].get("trend_mb", 0.0) <= FLAT_MB,
    }  # fmt: skip


def _model_name(args: argparse.Namespace) -> str:
    name = args.width if args.checkpoint is None else args.label
    return name if args.precision == "fp32" else f"{name}_{args.precision}"


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-reconstruct-"))
    try:
        result = measure(args, work)
        stem = f"bench_reconstruct_{_model_name(args)}" + ("_quick" if args.quick else "")
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS_DIR / f"{stem}.md").write_text(markdown(result))
        print(markdown(result), flush=True)
    finally:
        if args.workdir is None:
            print(f"removing {work} ...", flush=True)
            shutil.rmtree(work, ignore_errors=True)


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
