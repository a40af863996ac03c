"""Perturbations of the test images: textured occluders and an asymmetric coloured rectangle.

``L1``/``L2``/``L3`` cover a share of the face (GT depth < background) drawn uniformly from
20–40 %, 40–60 % or 60–80 % with random textured occluders (:func:`occlude`); ``asym`` blends
one random coloured rectangle into the image (:func:`asymmetric_patch`). Both are seeded per
image (seed, dataset index), so every candidate sees the same perturbed images, whatever the
batch size (:func:`perturb_batch`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from unsup3d_cli.data import DEPTH_FAR

OCCLUSION_LEVELS = {"L1": (0.2, 0.4), "L2": (0.4, 0.6), "L3": (0.6, 0.8)}
"""Share of the face covered by occluders, per level (drawn uniformly in the interval)."""
PERTURBATIONS = (*OCCLUSION_LEVELS, "asym")
"""Accepted perturbation modes (besides None)."""
ASYM_SIDE_RANGE = (0.2, 0.5)
"""Side of the ``asym`` rectangle as a share of the image side, per axis."""
ASYM_ALPHA_RANGE = (0.5, 1.0)
"""Blending weight of the ``asym`` rectangle."""


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen, dtype=torch.float64))


def _texture(size: int, gen: torch.Generator) -> Tensor:
    """A random texture (3, S, S) in [0, 1]: noisy colour, stripes, checker or colour noise."""
    kind = int(torch.randint(4, (), generator=gen))
    colors = torch.rand(2, 3, 1, 1, generator=gen)  # (2, 3, 1, 1)
    coords = torch.arange(size, dtype=torch.float32)
    y, x = torch.meshgrid(coords, coords, indexing="ij")  # (S, S)
    if kind == 0:
        noise = 0.08 * torch.randn(3, size, size, generator=gen)
        return (colors[0] + noise).clamp(0, 1)
    if kind == 1:
        angle, period = _uniform(gen, 0, math.pi), _uniform(gen, 3, 10)
        phase = (x * math.cos(angle) + y * math.sin(angle)) / period
        pick = (phase.floor() % 2).bool()  # (S, S)
    elif kind == 2:
        cell = int(torch.randint(2, 9, (), generator=gen))
        pick = ((x // cell + y // cell) % 2).bool()
    else:
        coarse = torch.rand(1, 3, 5, 5, generator=gen)
        return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)[0]
    return torch.where(pick, colors[0], colors[1])  # (3, S, S)


def _occluder_field(face: Tensor, gen: torch.Generator) -> Tensor:
    """A smooth random field (S, S), high on one to three elliptic blobs anchored on the face."""
    size = face.shape[-1]
    coords = torch.arange(size, dtype=torch.float32)
    y, x = torch.meshgrid(coords, coords, indexing="ij")  # (S, S)
    face_pixels = face.nonzero()  # (N, 2) rows, cols
    field = torch.zeros(size, size)
    for _ in range(int(torch.randint(1, 4, (), generator=gen))):
        cy, cx = face_pixels[int(torch.randint(len(face_pixels), (), generator=gen))].tolist()
        ry, rx = _uniform(gen, 0.1, 0.4) * size, _uniform(gen, 0.1, 0.4) * size
        angle = _uniform(gen, 0, math.pi)
        du, dv = x - cx, y - cy
        u = (du * math.cos(angle) + dv * math.sin(angle)) / rx
        v = (-du * math.sin(angle) + dv * math.cos(angle)) / ry
        field = torch.maximum(field, torch.exp(-(u**2 + v**2)))
    coarse = torch.rand(1, 1, 6, 6, generator=gen)
    wobble = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)[0, 0]
    return field + 0.15 * wobble


def occlude(
    image: Tensor, face: Tensor, coverage_range: tuple[float, float], gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Cover a random share of the face with randomly textured occluders.

    The share f is drawn uniformly in ``coverage_range``; the occluder is the region where a
    smooth random field (one to three elliptic blobs plus a low-frequency wobble) exceeds its
    value at the ⌈f·N⌉-th highest of the N face pixels, so it covers exactly that many face
    pixels (f up to 1/N) and may spill over the background.

    Args:
        image: shape (3, S, S), in [0, 1].
        face: the face mask, shape (S, S), bool.
        coverage_range: (low, high) share of the face to cover.
        gen: random generator (CPU).

    Returns:
        The occluded image (3, S, S) and the occluder mask (S, S), bool. An image with no face
        pixel comes back unchanged.
    """
    count = int(face.sum())
    if count == 0:
        return image, torch.zeros_like(face)
    low, high = coverage_range
    target = min(max(math.ceil(_uniform(gen, low, high) * count), 1), count)
    field = _occluder_field(face.cpu(), gen)  # (S, S)
    threshold = field[face.cpu()].topk(target).values[-1]
    occluder = (field >= threshold).to(image.device)  # (S, S)
    texture = _texture(image.shape[-1], gen).to(image)
    return torch.where(occluder, texture, image), occluder


def asymmetric_patch(image: Tensor, gen: torch.Generator) -> Tensor:
    """Blend one random coloured rectangle into an image (the paper's asymmetric perturbation).

    Each side is 20–50 % of the image side, the position uniform over the image, the colour
    uniform in RGB and the blending weight α uniform in [0.5, 1].

    Args:
        image: shape (3, S, S), in [0, 1].
        gen: random generator (CPU).

    Returns:
        The perturbed image (3, S, S).
    """
    size = image.shape[-1]
    height = round(_uniform(gen, *ASYM_SIDE_RANGE) * size)
    width = round(_uniform(gen, *ASYM_SIDE_RANGE) * size)
    top = int(torch.randint(size - height + 1, (), generator=gen))
    left = int(torch.randint(size - width + 1, (), generator=gen))
    color = torch.rand(3, 1, 1, generator=gen).to(image)
    alpha = _uniform(gen, *ASYM_ALPHA_RANGE)
    out = image.clone()
    patch = out[:, top : top + height, left : left + width]
    out[:, top : top + height, left : left + width] = (1 - alpha) * patch + alpha * color
    return out


def _perturbation_generator(seed: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + index) % 2**63)


def perturb_batch(
    image: Tensor, gt_depth: Tensor, mode: str | None, seed: int, indices: Sequence[int]
) -> Tensor:
    """Apply a perturbation to each image of a batch, seeded by (seed, dataset index).

    Args:
        image: shape (B, 3, S, S).
        gt_depth: shape (B, 1, S, S); the face is where it is below the 1.1 background.
        mode: None, 'L1', 'L2', 'L3' or 'asym'.
        seed: perturbation seed.
        indices: dataset index of each image, length B.

    Returns:
        The perturbed images, shape (B, 3, S, S) (the input itself when ``mode`` is None).
    """
    if mode is None:
        return image
    out = []
    for item, depth, index in zip(image, gt_depth, indices, strict=True):
        gen = _perturbation_generator(seed, int(index))
        if mode == "asym":
            out.append(asymmetric_patch(item, gen))
        elif mode in OCCLUSION_LEVELS:
            out.append(occlude(item, depth[0] < DEPTH_FAR, OCCLUSION_LEVELS[mode], gen)[0])
        else:
            raise ValueError(f"unknown perturbation {mode!r}; use {', '.join(PERTURBATIONS)}")
    return torch.stack(out)  # (B, 3, S, S)
