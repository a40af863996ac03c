"""The paper's evaluation metrics (reference §7.1) on hand-computed and analytic cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.linalg import logm

from unsup3d_cli.geometry import euler_to_rotation
from unsup3d_cli.metrics import (
    depth_metrics,
    depth_normals,
    erode,
    geodesic_error,
    gt_mask,
    mad_deg,
    mad_deg_paper,
    prediction_mask,
    side,
    viewpoint_summary,
)
from unsup3d_cli.render import Renderer

FOCAL_64 = 31.5 / math.tan(math.radians(5.0))
"""fx of the default camera (fov 10°) at 64×64."""


def grid(rows: list[str], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A (1, 1, H, W) 0/1 mask drawn as strings of '#' and '.'."""
    values = [[1.0 if ch == "#" else 0.0 for ch in row] for row in rows]
    return torch.tensor(values, dtype=dtype)[None, None]


def unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


# --------------------------------------------------------------------------------------------
# Masks and erosion


def test_erode_keeps_pixels_whose_3x3_neighbourhood_is_full() -> None:
    mask = grid(["......", ".####.", ".####.", ".####.", ".####.", "......"])
    expected = grid(["......", "......", "..##..", "..##..", "......", "......"])
    assert torch.equal(erode(mask), expected)


def test_erode_strips_the_image_border_zero_padding() -> None:
    full = torch.ones(1, 1, 6, 6, dtype=torch.float64)
    expected = grid(["......", ".####.", ".####.", ".####.", ".####.", "......"])
    assert torch.equal(erode(full), expected)


def test_erode_of_a_hole_removes_its_neighbours() -> None:
    mask = grid(["######", "######", "###.##", "######", "######", "######"])
    expected = grid(["......", ".#....", ".#....", ".#....", ".####.", "......"])
    assert torch.equal(prediction_mask(mask), expected)


def test_erode_equals_a_3x3_min_filter_with_zero_padding() -> None:
    mask = (torch.rand(3, 1, 16, 16) > 0.2).double()
    min_filter = -F.max_pool2d(-F.pad(mask, (1, 1, 1, 1)), 3, stride=1)
    assert torch.equal(erode(mask), min_filter)


def test_erode_accepts_bool_masks() -> None:
    mask = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    assert erode(mask).dtype == torch.float32
    assert erode(mask).sum() == 4


def test_gt_mask_is_below_the_batch_max_then_eroded() -> None:
    face = grid(["......", ".####.", ".####.", ".####.", ".####.", "......"])
    depth = 1.1 - 0.1 * face  # face at 1.0 on a 1.1 background
    expected = grid(["......", "......", "..##..", "..##..", "......", "......"])
    assert torch.equal(gt_mask(depth), expected)


def test_gt_mask_uses_the_max_of_the_whole_batch() -> None:
    no_background = torch.full((1, 1, 6, 6), 1.0, dtype=torch.float64)
    with_background = torch.full((1, 1, 6, 6), 1.1, dtype=torch.float64)
    # Alone, an image without background has no pixel below its own max: empty mask.
    assert gt_mask(no_background).sum() == 0
    # In a batch with a background pixel elsewhere, all of it counts (eroded: the 4×4 inside).
    masks = gt_mask(torch.cat([no_background, with_background]))
    assert masks[0].sum() == 16
    assert masks[1].sum() == 0


def test_masks_of_depth_metrics_are_gt_times_prediction() -> None:
    face = grid(["......", ".####.", ".####.", ".####.", ".####.", "......"])
    gt = 1.1 - 0.1 * face
    valid = grid(["######", "######", "######", "####.#", "######", "######"])
    scores = depth_metrics(torch.ones_like(gt), valid, gt, Renderer())
    expected = grid(["......", "......", "..#...", "..#...", "......", "......"])
    assert torch.equal(scores.mask, expected)
    assert scores.mask_pixels.tolist() == [2.0]


# --------------------------------------------------------------------------------------------
# SIDE


def test_side_is_zero_for_a_scaled_ground_truth(dtype: torch.dtype) -> None:
    gt = 0.9 + 0.2 * torch.rand(3, 1, 8, 8, dtype=dtype)
    scale = torch.tensor([0.5, 1.0, 3.0], dtype=dtype).view(3, 1, 1, 1)
    mask = (torch.rand(3, 1, 8, 8) > 0.3).to(dtype)
    result = side(gt * scale, gt, mask)
    assert result.shape == (3,)
    assert result.abs().max() < (1e-6 if dtype == torch.float32 else 1e-12)


def test_side_matches_a_hand_computation() -> None:
    gt = torch.tensor([[1.0, 2.0], [1.0, 0.5]], dtype=torch.float64)[None, None]
    # δ = ln(pred/gt) = [0, 1, 0, 2]; the masked-out last pixel must not count.
    pred = gt * torch.tensor([[1.0, math.e], [1.0, math.e**2]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)[None, None]
    deltas = np.array([0.0, 1.0, 0.0])
    expected = np.sqrt(((deltas - deltas.mean()) ** 2).mean())  # population std = sqrt(2)/3
    assert side(pred, gt, mask).item() == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(math.sqrt(2) / 3)


def test_side_uses_the_natural_log() -> None:
    gt = torch.ones(1, 1, 1, 2, dtype=torch.float64)
    pred = torch.tensor([1.0, 10.0], dtype=torch.float64).view(1, 1, 1, 2)
    mask = torch.ones_like(gt)
    assert side(pred, gt, mask).item() == pytest.approx(math.log(10) / 2, rel=1e-12)


def test_side_of_an_empty_mask_is_nan() -> None:
    gt = torch.ones(2, 1, 4, 4)
    mask = torch.zeros_like(gt)
    mask[1, 0, 1, 1] = 1
    result = side(gt * 2, gt, mask)
    assert math.isnan(result[0].item())
    assert result[1].item() == 0.0


def test_side_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="pred_depth"):
        side(torch.ones(1, 4, 4), torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4))


# --------------------------------------------------------------------------------------------
# MAD


def test_mad_deg_of_identical_normals_is_zero(dtype: torch.dtype) -> None:
    normals = unit(torch.randn(2, 8, 8, 3, dtype=dtype))
    mask = torch.ones(2, 1, 8, 8, dtype=dtype)
    assert torch.equal(mad_deg(normals, normals, mask), torch.zeros(2, dtype=dtype))


def test_mad_deg_of_orthogonal_normals_is_90() -> None:
    a = unit(torch.randn(2, 5, 5, 3, dtype=torch.float64))
    b = unit(torch.linalg.cross(a, torch.randn_like(a), dim=-1))
    result = mad_deg(a, b, torch.ones(2, 1, 5, 5, dtype=torch.float64))
    torch.testing.assert_close(result, torch.full((2,), 90.0, dtype=torch.float64))


def test_mad_deg_averages_angles_inside_the_mask_only() -> None:
    z = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    tilted = torch.tensor([0.0, math.sin(math.pi / 3), math.cos(math.pi / 3)], dtype=torch.float64)
    n_gt = z.expand(1, 2, 2, 3)
    n_pred = torch.stack([z, tilted, -z, z]).view(1, 2, 2, 3)  # 0°, 60°, 180°, 0°
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)[None, None]
    assert mad_deg(n_pred, n_gt, mask).item() == pytest.approx((0 + 60 + 180) / 3, rel=1e-12)
    assert mad_deg_paper(n_pred, n_gt, mask).item() == pytest.approx(80.0, rel=1e-9)


def test_mad_deg_paper_reproduces_the_eps_floor_on_a_64px_plane() -> None:
    renderer = Renderer()
    depth = 1.0
    plane = torch.full((1, 1, 64, 64), depth, dtype=torch.float64)
    normals = renderer.normals(plane, paper_eps=True)
    mask = erode(torch.ones_like(plane))
    # Interior normals of a fronto-parallel plane: t_u = (2d/f, 0, 0), t_v = (0, 2d/f, 0),
    # so ‖n‖ = 4d²/f² and the original's "unit" normal is (0, 0, k / (k + 1e-7)).
    k = 4 * depth**2 / FOCAL_64**2
    length = k / (k + 1e-7)
    floor = math.degrees(math.acos(length**2))
    assert k == pytest.approx(3.0856e-5, rel=1e-3)
    assert mad_deg_paper(normals, normals, mask).item() == pytest.approx(floor, rel=1e-6)
    assert 6.4 < floor < 6.6
    unit_normals = renderer.normals(plane)
    assert mad_deg(unit_normals, unit_normals, mask).item() == 0.0


def test_depth_normals_are_both_variants_of_the_renderer(dtype: torch.dtype) -> None:
    renderer = Renderer()
    depth = 1.0 - 0.1 * torch.rand(2, 1, 16, 16, dtype=dtype)
    unit_normals, paper = depth_normals(depth, renderer)
    torch.testing.assert_close(paper, renderer.normals(depth, paper_eps=True))
    torch.testing.assert_close(unit_normals, renderer.normals(depth))


def test_depth_metrics_of_a_perfect_prediction() -> None:
    renderer = Renderer()
    y, x = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    r2 = x**2 + y**2
    gt = torch.where(r2 < 0.6, 1.0 - 0.08 * (0.6 - r2).sqrt(), torch.tensor(1.1))[None, None]
    gt = gt.double()
    scores = depth_metrics(gt, torch.ones_like(gt), gt, renderer)
    assert scores.side.item() == 0.0
    assert scores.mad_deg.item() == 0.0
    assert scores.mae.item() == 0.0 and scores.mse.item() == 0.0
    # The floor is lower on a curved surface than on the plane (‖n‖ grows with the slant).
    assert 5.0 < scores.mad_deg_paper.item() < 6.6


def test_depth_metrics_batch_sizes(dtype: torch.dtype) -> None:
    for batch in (1, 3):
        gt = 1.1 - 0.1 * torch.rand(batch, 1, 64, 64, dtype=dtype)
        gt[..., :4] = 1.1
        pred = 0.95 + 0.05 * torch.rand_like(gt)
        scores = depth_metrics(pred, torch.ones_like(gt), gt, Renderer())
        for value in (scores.side, scores.mad_deg, scores.mad_deg_paper, scores.mae, scores.mse):
            assert value.shape == (batch,)
            assert value.dtype == dtype
            assert torch.isfinite(value).all()


# --------------------------------------------------------------------------------------------
# Viewpoint


def axis_rotation(axis: list[float], angle: float) -> torch.Tensor:
    """Rodrigues: rotation by ``angle`` about ``axis``, (1, 3, 3) float64."""
    k = torch.tensor(axis, dtype=torch.float64)
    k = k / k.norm()
    cross = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    eye = torch.eye(3, dtype=torch.float64)
    return (eye + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross)[None]


@pytest.mark.parametrize("angle", [0.0, 1e-4, 0.3, math.pi / 2, 2.5, math.pi - 1e-3, math.pi])
def test_geodesic_error_is_the_rotation_angle(angle: float) -> None:
    base = euler_to_rotation(torch.tensor([[0.2, -0.4, 0.1]], dtype=torch.float64))
    other = base @ axis_rotation([1.0, -2.0, 0.5], angle)
    error = geodesic_error(base, other).item()
    assert error == pytest.approx(angle, abs=1e-9, rel=1e-7)
    assert geodesic_error(other, base).item() == pytest.approx(angle, abs=1e-9, rel=1e-7)


def test_geodesic_error_equals_the_frobenius_norm_of_the_log() -> None:
    angles = (torch.rand(5, 3, dtype=torch.float64) - 0.5) * 2.0
    r1, r2 = euler_to_rotation(angles), euler_to_rotation(angles.flip(0))
    errors = geodesic_error(r1, r2)
    for a, b, error in zip(r1, r2, errors, strict=True):
        log = logm((a.T @ b).numpy())
        assert error.item() == pytest.approx(np.linalg.norm(log, "fro") / math.sqrt(2), abs=1e-7)


def test_geodesic_error_is_invariant_to_a_common_rotation() -> None:
    r1 = euler_to_rotation(torch.tensor([[0.1, 0.5, -0.3]], dtype=torch.float64))
    r2 = euler_to_rotation(torch.tensor([[-0.2, 0.1, 0.4]], dtype=torch.float64))
    q = euler_to_rotation(torch.tensor([[1.0, -0.7, 2.0]], dtype=torch.float64))
    torch.testing.assert_close(geodesic_error(q @ r1, q @ r2), geodesic_error(r1, r2))


def test_viewpoint_summary_median_and_strict_accuracies() -> None:
    degrees = torch.tensor([1.0, 5.0, 10.0, 20.0, 40.0], dtype=torch.float64)
    summary = viewpoint_summary(degrees.deg2rad())
    assert summary["median_deg"] == pytest.approx(10.0)
    assert summary["acc_pi_18"] == pytest.approx(2 / 5)  # 10° = π/18 itself does not count
    assert summary["acc_pi_6"] == pytest.approx(4 / 5)
    assert summary["n"] == 5


def test_viewpoint_summary_needs_errors() -> None:
    with pytest.raises(ValueError):
        viewpoint_summary(torch.zeros(0))
