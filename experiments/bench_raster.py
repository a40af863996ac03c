"""Rasterizer benchmark: the exact visibility pass against the fixed-size one, per device.

    python experiments/bench_raster.py --device cuda      # batch 128 (64 images, both branches)
    python experiments/bench_raster.py --quick            # smoke check on the CPU

Renders a batch of 64×64 depth-map meshes (the bundled model's depths of synthetic test faces
when ``--data`` has them, else smooth random depths in the model's range) from views drawn
uniformly within ±``--yaw`` and ±``--pitch`` degrees, as the training step does, and times
``rasterize_depth`` forward and backward (gradients to the vertices) with each visibility pass:
the exact one (``fixed_size=False``, sized to the triangles, which waits for the device to
report the sizes) and the fixed-size one (``fixed_size=True``, no waits). Reports the median
milliseconds of each, whether the two agree pixel for pixel, and the candidates the fixed-size
pass dropped (0 unless its slots ran out). Prints one JSON line; ``--out`` also writes it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from unsup3d_cli.geometry import euler_to_rotation, intrinsics_from_fov
from unsup3d_cli.render import posed_mesh, rasterize_depth

REPO = Path(__file__).resolve().parents[1]
SIZE, FOV_DEG, PIVOT = 64, 10.0, 1.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=128, help="meshes per call (128)")
    parser.add_argument("--yaw", type=float, default=60.0, help="largest |yaw|, degrees (60)")
    parser.add_argument("--pitch", type=float, default=20.0, help="largest |pitch|, degrees")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per pass (20)")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "synth_mesh" / "test")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="batch 4, 2 repeats")
    return parser.parse_args()


def depths(batch: int, data: Path) -> tuple[torch.Tensor, str]:
    """(B, 1, 64, 64) canonical depths: the bundled model's on ``data``, or smooth random."""
    if (data / "meta.jsonl").is_file():
        from unsup3d_cli.api import load_model
        from unsup3d_cli.data import load_image
        from unsup3d_cli.weights import bundled_model_path

        model, _ = load_model(bundled_model_path(), device="cpu")
        records = [json.loads(line) for line in (data / "meta.jsonl").read_text().splitlines()]
        images = torch.stack([load_image(data / r["image"]) for r in records[:batch]])
        with torch.no_grad():
            depth = model(images).depth
        repeats = -(-batch // len(depth))
        return depth.repeat(repeats, 1, 1, 1)[:batch], "bundled model on " + str(data)
    coarse = 0.9 + 0.2 * torch.rand(batch, 1, 4, 4)
    return F.interpolate(coarse, size=(SIZE, SIZE), mode="bicubic", align_corners=True), "random"


def timed(device: torch.device, call, repeats: int) -> float:
    """Median milliseconds of ``call()`` (after one warm-up), synchronised on CUDA."""
    call()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    args = parse_args()
    if args.quick:
        args.batch, args.repeats = 4, 2
    device = torch.device(args.device)
    torch.manual_seed(0)
    depth, source = depths(args.batch, args.data)
    depth = depth.to(device)
    limits = torch.tensor([args.pitch, args.yaw, 0.0]).deg2rad()
    angles = ((torch.rand(args.batch, 3) * 2 - 1) * limits).to(device)
    k = intrinsics_from_fov(FOV_DEG, SIZE, depth)
    vertices, faces = posed_mesh(
        depth, euler_to_rotation(angles), torch.zeros_like(angles), k, PIVOT
    )
    vertices = vertices.detach().requires_grad_()

    def run(fixed: bool):
        out = rasterize_depth(vertices, faces, k, (SIZE, SIZE), fixed_size=fixed)
        (out.depth.clamp(max=2.0).sum() + out.barycentric.sum()).backward()
        vertices.grad = None
        return out

    exact, fixed = run(False), run(True)
    row = {
        "device": str(device),
        "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "batch": args.batch,
        "depths": source,
        "yaw_pitch_deg": [args.yaw, args.pitch],
        "exact_ms": round(timed(device, lambda: run(False), args.repeats), 3),
        "fixed_size_ms": round(timed(device, lambda: run(True), args.repeats), 3),
        "same_visible_triangles": bool(torch.equal(exact.face_index, fixed.face_index)),
        "fixed_size_dropped": int(fixed.dropped),
    }
    print(json.dumps(row))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()
