"""Synthetic-face generation benchmark: ``unsup3d synth`` throughput and where the time goes.

Measures, in one run:

* the wall time of :func:`unsup3d_cli.synth_dataset.write_dataset` for ``--num`` images with
  ``--workers`` processes (the full command minus the CLI start-up: sampling, rendering, PNG
  and JSON writing, the final rename), hence images per second, against the target of 10,000
  images in under 2 minutes on 2 cores;
* the CPU time that run used (this process and its workers) per image, a figure that does not
  depend on what else the machine is doing, and the average number of cores other processes
  kept busy meanwhile (the machine may be shared), plus the load average before and after;
* single-thread stage costs per image, in batches of ``--batch-size``: drawing the parameters
  (``sample_face``), building the canonical faces (shape + albedo), shading + posing +
  rasterizing, and encoding/writing the two PNGs; and one ``synthetic_sample`` call (batch of
  one, what the in-memory 'synthetic' data source pays per item).

Usage::

    .venv/bin/python experiments/bench_synth.py                 # 10,000 images, 2 workers
    .venv/bin/python experiments/bench_synth.py --quick         # 1,000 images (smoke check)
    .venv/bin/python experiments/bench_synth.py --num 20000 --workers 4
    .venv/bin/python experiments/bench_synth.py --sheet       # only the README sample sheet

Writes ``experiments/results/bench_synth.json`` and ``bench_synth.md`` (``..._quick`` for
``--quick`` runs, so a smoke check never overwrites a real result). The generated images go to a
temporary folder that is deleted afterwards.

``--sheet`` instead writes ``experiments/results/synth_samples.png``: 16 faces of seed 0 as
``unsup3d synth`` writes them (read back from the PNG files), rows of images above rows of
their 16-bit depth maps (shown as written: near is bright, the background 1.1 is black).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from unsup3d_cli.synth_dataset import encode_depth, encode_image, save_png, write_dataset
from unsup3d_cli.synthetic import (
    GENERATOR_VERSION,
    SynthConfig,
    canonical_faces,
    render_faces,
    sample_face,
    synthetic_sample,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET_IMAGES = 10_000
TARGET_SECONDS = 120.0
"""Target: 10,000 images in under 2 minutes on 2 cores."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num", type=int, default=TARGET_IMAGES, help="images to generate")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--batch-size", type=int, default=32, help="faces per renderer call")
    parser.add_argument("--stage-images", type=int, default=256, help="images for stage costs")
    parser.add_argument("--quick", action="store_true", help="1,000 images, 64 for stages")
    parser.add_argument("--out", type=Path, default=None, help="result JSON path")
    parser.add_argument("--sheet", action="store_true", help="write the sample sheet only")
    args = parser.parse_args(argv)
    if args.quick:
        args.num, args.stage_images = 1000, 64
    return args


def cpu_usage() -> tuple[float, float, float] | None:
    """(wall s, busy CPU-s of the machine, CPU-s of this process and its reaped children)."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    own = os.times()
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
    mine = own.user + own.system + own.children_user + own.children_system
    return time.perf_counter(), busy, mine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """(result, CPU seconds of this process): unlike wall time, unaffected by other processes."""
    start = time.process_time()
    value = fn()
    return value, time.process_time() - start


def stage_costs(num: int, batch_size: int) -> dict:
    """Single-thread CPU milliseconds per image of each stage, summed over batches."""
    cfg, totals = SynthConfig(), {"sample": 0.0, "canonical": 0.0, "render": 0.0, "png": 0.0}
    folder = Path(tempfile.mkdtemp(prefix="bench_synth_png_"))
    try:
        for start in range(0, num, batch_size):
            indices = range(start, min(start + batch_size, num))
            specs, seconds = timed(lambda: [sample_face(i, 0, cfg) for i in indices])  # noqa: B023
            totals["sample"] += seconds
            totals["canonical"] += timed(lambda: canonical_faces(specs, cfg))[1]  # noqa: B023
            batch, seconds = timed(lambda: render_faces(specs, cfg))  # noqa: B023
            totals["render"] += seconds
            totals["png"] += timed(lambda: write_pngs(batch, folder))[1]  # noqa: B023
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    # render_faces rebuilds the canonical faces: report shading + posing + raster on its own.
    totals["render"] -= totals["canonical"]
    return {name: round(seconds / num * 1000, 3) for name, seconds in totals.items()}


def write_pngs(batch, folder: Path) -> None:
    for k in range(len(batch.specs)):
        save_png(encode_image(batch.image[k]), folder / f"{k}_image.png")
        save_png(encode_depth(batch.depth[k]), folder / f"{k}_depth.png")


def single_sample_ms(reps: int = 30) -> dict:
    """Median wall and CPU milliseconds of one ``synthetic_sample`` call."""
    synthetic_sample(0, 0)
    walls, cpus = [], []
    for i in range(reps):
        wall = time.perf_counter()
        cpus.append(timed(lambda i=i: synthetic_sample(i, 0))[1])
        walls.append(time.perf_counter() - wall)
    return {"wall": round(statistics.median(walls) * 1000, 3),
            "cpu": round(statistics.median(cpus) * 1000, 3)}  # fmt: skip


def run_dataset(num: int, workers: int, batch_size: int) -> dict:
    """Time write_dataset into a temporary folder, with the machine's CPU use around it."""
    root = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    load_before = os.getloadavg()
    start = cpu_usage()
    try:
        summary = write_dataset(root / "faces", num, seed=0, workers=workers, batch_size=batch_size)
        end = cpu_usage()
        files = sum(1 for p in (root / "faces").rglob("*.png"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = {"seconds": round(summary.seconds, 2), "images": num, "png_files": files,
              "images_per_s": round(num / summary.seconds, 1),
              "load_average_before": [round(v, 2) for v in load_before],
              "load_average_after": [round(v, 2) for v in os.getloadavg()]}  # fmt: skip
    if start is not None and end is not None:
        wall, busy, mine = (b - a for a, b in zip(start, end, strict=True))
        result["cpu_s_per_image_ms"] = round(mine / num * 1000, 3)
        result["own_cores_busy"] = round(mine / wall, 2)
        result["other_cores_busy"] = round(max(busy - mine, 0.0) / wall, 2)
    return result


def markdown(result: dict) -> str:
    run, stages = result["run"], result["stages_ms_per_image"]
    projected = TARGET_IMAGES / run["images_per_s"]
    lines = [
        "## Synthetic faces: `unsup3d synth` throughput",
        "",
        f"{result['date']}, {result['cpu']}, {result['cores']} cores visible, torch "
        f"{result['torch']}, generator {result['generator']}, image size 64, batch "
        f"{result['batch_size']}.",
        "",
        f"- **{run['images']} images in {run['seconds']:.1f} s with {result['workers']} workers "
        f"= {run['images_per_s']:.0f} img/s** (10,000 images → {projected:.0f} s; target "
        f"< {TARGET_SECONDS:.0f} s: **{'PASS' if projected < TARGET_SECONDS else 'FAIL'}**)",
    ]
    if "cpu_s_per_image_ms" in run:
        lines += [
            f"- CPU time {run['cpu_s_per_image_ms']:.2f} ms per image (all processes of the run); "
            f"the run kept {run['own_cores_busy']:.2f} cores busy while other processes kept "
            f"{run['other_cores_busy']:.2f} cores busy on average (shared machine); load average "
            f"{run['load_average_before'][0]} before, {run['load_average_after'][0]} after",
        ]
    lines += [
        f"- one `synthetic_sample` call (batch of 1, in-memory data source): "
        f"{result['synthetic_sample_ms']['cpu']:.1f} ms CPU, "
        f"{result['synthetic_sample_ms']['wall']:.1f} ms wall (medians)",
        "",
        "Single-thread CPU time per image, batches of "
        f"{result['batch_size']} ({result['stage_images']} images):",
        "",
        "| stage | CPU ms / image |",
        "|---|---:|",
        *(f"| {name} | {ms:.2f} |" for name, ms in stages.items()),
        f"| **total** | **{sum(stages.values()):.2f}** |",
        "",
        f"Command: `{result['command']}`",
        "",
    ]
    return "\n".join(lines)


def sample_sheet(path: Path, columns: int = 8, rows: int = 2, zoom: int = 2) -> None:
    """Faces 0.. of seed 0 from written files: each row of images above its row of depths."""
    root = Path(tempfile.mkdtemp(prefix="bench_synth_sheet_"))
    try:
        write_dataset(root / "faces", columns * rows, seed=0, split=(1.0, 0.0, 0.0), workers=1)
        train = root / "faces" / "train"
        images = [np.asarray(Image.open(p)) for p in sorted((train / "image").iterdir())]
        depths = [
            np.asarray(Image.open(p)).astype(np.uint32) for p in sorted((train / "depth").iterdir())
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    grey = [np.repeat((d * 255 // 65535).astype(np.uint8)[..., None], 3, axis=2) for d in depths]
    strips = []
    for row in range(rows):
        part = slice(row * columns, (row + 1) * columns)
        strips += [np.concatenate(images[part], axis=1), np.concatenate(grey[part], axis=1)]
    sheet = np.concatenate(strips, axis=0).repeat(zoom, axis=0).repeat(zoom, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path, format="PNG", compress_level=9)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sheet:
        sample_sheet(RESULTS_DIR / "synth_samples.png")
        print(f"wrote {RESULTS_DIR / 'synth_samples.png'}")
        return 0
    torch.set_num_threads(1)  # stage costs single-threaded, as each worker runs
    print(f"stage costs on {args.stage_images} images ...", file=sys.stderr, flush=True)
    stages = stage_costs(args.stage_images, args.batch_size)
    sample_ms = single_sample_ms()
    print(f"write_dataset: {args.num} images, {args.workers} workers ...", file=sys.stderr)
    run = run_dataset(args.num, args.workers, args.batch_size)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "generator": GENERATOR_VERSION,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "stage_images": args.stage_images,
        "command": " ".join(["python experiments/bench_synth.py", *(argv or sys.argv[1:])]),
        "run": run,
        "stages_ms_per_image": stages,
        "synthetic_sample_ms": sample_ms,
    }
    name = "bench_synth_quick" if args.quick else "bench_synth"
    out = args.out or RESULTS_DIR / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
