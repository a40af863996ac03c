"""Camera, rigid transforms and normals against analytic cases and gradcheck."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck

from unsup3d_cli.geometry import (
    depth_to_points,
    euler_to_rotation,
    intrinsics_from_fov,
    inverse_rigid_transform,
    pixel_grid,
    points_to_grid,
    points_to_normals,
    project_points,
    rigid_transform,
)


def _plane_depth(size: int, slope: float, offset: float, intrinsics: torch.Tensor) -> torch.Tensor:
    """Depth map of the world plane Z = offset + slope·X seen by the camera, (1, 1, S, S)."""
    f, c = intrinsics[0, 0], intrinsics[0, 2]
    u = torch.arange(size, dtype=intrinsics.dtype, device=intrinsics.device)
    depth = offset / (1 - slope * (u - c) / f)  # (S,), constant along rows
    return depth.expand(size, size)[None, None].clone()


def test_intrinsics_match_reference_numbers():
    k = intrinsics_from_fov(10.0, 64, torch.zeros((), dtype=torch.float64))
    assert k[0, 0].item() == pytest.approx(360.047, abs=1e-3)
    assert k[1, 1] == k[0, 0]
    assert k[0, 2].item() == 31.5 and k[1, 2].item() == 31.5
    with pytest.raises(ValueError, match="fov_deg"):
        intrinsics_from_fov(0.0, 64, k)


def test_depth_to_points_matches_formula(device, dtype, tolerances):
    depth = 0.9 + 0.2 * torch.rand(2, 1, 5, 7, device=device, dtype=dtype)
    k = intrinsics_from_fov(10.0, 5, depth)
    points = depth_to_points(depth, k)
    assert points.shape == (2, 5, 7, 3)
    v, u = 3, 6
    expected_x = depth[1, 0, v, u] * (u - k[0, 2]) / k[0, 0]
    expected_y = depth[1, 0, v, u] * (v - k[1, 2]) / k[1, 1]
    torch.testing.assert_close(points[1, v, u, 0], expected_x, **tolerances)
    torch.testing.assert_close(points[1, v, u, 1], expected_y, **tolerances)
    torch.testing.assert_close(points[..., 2], depth[:, 0], **tolerances)


def test_project_of_unproject_is_the_pixel_grid(device, dtype, tolerances):
    depth = 0.9 + 0.2 * torch.rand(3, 1, 8, 8, device=device, dtype=dtype)
    k = intrinsics_from_fov(10.0, 8, depth)
    uv = project_points(depth_to_points(depth, k), k)
    torch.testing.assert_close(uv, pixel_grid(8, 8, depth).expand(3, 8, 8, 2), **tolerances)


def test_points_to_grid_corners_are_minus_one_and_one(dtype):
    depth = torch.ones(1, 1, 6, 6, dtype=dtype)
    k = intrinsics_from_fov(10.0, 6, depth)
    grid = points_to_grid(depth_to_points(depth, k), k, 6, 6)
    assert grid[0, 0, 0].tolist() == pytest.approx([-1.0, -1.0])
    assert grid[0, -1, -1].tolist() == pytest.approx([1.0, 1.0])
    assert grid[0, 0, -1].tolist() == pytest.approx([1.0, -1.0])  # (u = last column, v = top)


def test_rotation_is_orthonormal_with_unit_determinant(dtype):
    angles = (torch.rand(16, 3, dtype=dtype) - 0.5) * 2 * math.pi
    rot = euler_to_rotation(angles)
    eye = torch.eye(3, dtype=dtype).expand(16, 3, 3)
    torch.testing.assert_close(rot @ rot.transpose(1, 2), eye, **TOL[dtype])
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(16, dtype=dtype), **TOL[dtype])


TOL = {torch.float32: {"rtol": 1e-5, "atol": 1e-5}, torch.float64: {"rtol": 1e-12, "atol": 1e-12}}


def test_rotation_order_is_z_y_x():
    half_pi = math.pi / 2
    x_axis = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    # Ry(90°) sends x to −z (right-handed).
    ry = euler_to_rotation(torch.tensor([[0.0, half_pi, 0.0]], dtype=torch.float64))[0]
    torch.testing.assert_close(ry @ x_axis, torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64))
    # Rx(90°) sends y to +z; then Rz(90°) leaves z alone: x applied first.
    y_axis = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    rzx = euler_to_rotation(torch.tensor([[half_pi, 0.0, half_pi]], dtype=torch.float64))[0]
    torch.testing.assert_close(rzx @ y_axis, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    # Rz(90°) sends x to +y.
    rz = euler_to_rotation(torch.tensor([[0.0, 0.0, half_pi]], dtype=torch.float64))[0]
    torch.testing.assert_close(rz @ x_axis, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))


def test_rigid_transform_keeps_the_pivot_and_inverts(dtype, tolerances):
    rot = euler_to_rotation((torch.rand(4, 3, dtype=dtype) - 0.5) * 2)
    zero = torch.zeros(4, 3, dtype=dtype)
    pivot = torch.tensor([0.0, 0.0, 1.0], dtype=dtype).expand(4, 1, 3)
    torch.testing.assert_close(rigid_transform(pivot, rot, zero, 1.0), pivot, **tolerances)
    points = torch.rand(4, 5, 6, 3, dtype=dtype)
    shift = torch.rand(4, 3, dtype=dtype) * 0.1
    moved = rigid_transform(points, rot, shift, 1.0)
    torch.testing.assert_close(
        inverse_rigid_transform(moved, rot, shift, 1.0), points, **tolerances
    )
    # P' = R (P − c) + c + t, written out for one point.
    c = torch.tensor([0.0, 0.0, 1.0], dtype=dtype)
    expected = rot[2] @ (points[2, 3, 4] - c) + c + shift[2]
    torch.testing.assert_close(moved[2, 3, 4], expected, **tolerances)


def test_scaled_transform_resizes_about_the_pivot_and_inverts(dtype, tolerances):
    rot = euler_to_rotation((torch.rand(3, 3, dtype=dtype) - 0.5) * 2)
    shift = torch.rand(3, 3, dtype=dtype) * 0.1
    scale = torch.tensor([0.7, 1.0, 1.3], dtype=dtype)
    points = torch.rand(3, 4, 5, 3, dtype=dtype)
    moved = rigid_transform(points, rot, shift, 1.0, scale)
    c = torch.tensor([0.0, 0.0, 1.0], dtype=dtype)
    for b in range(3):  # P' = s R (P − c) + c + t, written out for one point of each
        expected = scale[b] * rot[b] @ (points[b, 1, 2] - c) + c + shift[b]
        torch.testing.assert_close(moved[b, 1, 2], expected, **tolerances)
    torch.testing.assert_close(moved[1], rigid_transform(points, rot, shift, 1.0)[1], **tolerances)
    back = inverse_rigid_transform(moved, rot, shift, 1.0, scale)
    torch.testing.assert_close(back, points, **tolerances)
    # Distances from the pivot grow by s when nothing else moves.
    eye, zero = torch.eye(3, dtype=dtype).expand(3, 3, 3), torch.zeros(3, 3, dtype=dtype)
    radius = (rigid_transform(points, eye, zero, 1.0, scale) - c).norm(dim=-1)
    torch.testing.assert_close(radius, scale[:, None, None] * (points - c).norm(dim=-1))


def test_fronto_parallel_plane_has_normals_towards_plus_z(device, dtype, tolerances):
    depth = torch.full((2, 1, 6, 9), 1.03, device=device, dtype=dtype)
    normals = points_to_normals(depth_to_points(depth, intrinsics_from_fov(10.0, 6, depth)))
    expected = torch.tensor([0.0, 0.0, 1.0], device=device, dtype=dtype).expand(2, 6, 9, 3)
    torch.testing.assert_close(normals, expected, **tolerances)


def test_slanted_plane_normal_is_exact_inside_and_plus_z_on_the_ring(dtype, tolerances):
    k = intrinsics_from_fov(10.0, 16, torch.zeros((), dtype=dtype))
    slope = 0.7  # Z = 1 + 0.7 X: normal ∝ (−0.7, 0, 1)
    normals = points_to_normals(depth_to_points(_plane_depth(16, slope, 1.0, k), k))
    expected = torch.tensor([-slope, 0.0, 1.0], dtype=dtype) / math.hypot(slope, 1.0)
    torch.testing.assert_close(normals[0, 1:-1, 1:-1], expected.expand(14, 14, 3), **tolerances)
    ring = torch.tensor([0.0, 0.0, 1.0], dtype=dtype)
    torch.testing.assert_close(normals[0, 0], ring.expand(16, 3), **tolerances)
    torch.testing.assert_close(normals[0, :, -1], ring.expand(16, 3), **tolerances)


def test_paper_eps_normals_are_short_at_64_pixels():
    depth = torch.ones(1, 1, 64, 64, dtype=torch.float64)
    points = depth_to_points(depth, intrinsics_from_fov(10.0, 64, depth))
    paper = points_to_normals(points, paper_eps=True)[0, 1:-1, 1:-1].norm(dim=-1)
    unit = points_to_normals(points)[0, 1:-1, 1:-1].norm(dim=-1)
    cross = (2 / 360.047) ** 2  # |t_u × t_v| for a fronto-parallel plane at depth 1
    assert paper.mean().item() == pytest.approx(cross / (cross + 1e-7), rel=1e-4)
    assert paper.max().item() < 0.998
    torch.testing.assert_close(unit, torch.ones_like(unit))


def test_bad_shapes_raise_value_error():
    with pytest.raises(ValueError, match="depth"):
        depth_to_points(torch.ones(1, 8, 8), torch.eye(3))
    with pytest.raises(ValueError, match="angles"):
        euler_to_rotation(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="H, W >= 3"):
        points_to_normals(torch.ones(1, 2, 5, 3))


def test_gradcheck_geometry():
    depth = (0.9 + 0.2 * torch.rand(1, 1, 5, 5, dtype=torch.float64)).requires_grad_()
    k = intrinsics_from_fov(10.0, 5, depth)
    assert gradcheck(lambda d: depth_to_points(d, k), (depth,))
    assert gradcheck(lambda d: points_to_normals(depth_to_points(d, k)), (depth,))
    angles = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(euler_to_rotation, (angles,))
    points = torch.rand(2, 4, 3, dtype=torch.float64, requires_grad=True)
    shift = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(
        lambda p, a, t: rigid_transform(p, euler_to_rotation(a), t, 1.0), (points, angles, shift)
    )
    scale = torch.tensor([0.8, 1.2], dtype=torch.float64, requires_grad=True)
    assert gradcheck(
        lambda p, a, t, s: inverse_rigid_transform(p, euler_to_rotation(a), t, 1.0, s),
        (points, angles, shift, scale),
    )
