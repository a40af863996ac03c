"""The renderer against the naive loop reference, hand-made masks and analytic planes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from host_sync import HostSyncError, no_host_sync
from torch.autograd import gradcheck

from unsup3d_cli.geometry import depth_to_points, euler_to_rotation, intrinsics_from_fov
from unsup3d_cli.render import (
    Renderer,
    RendererConfig,
    grid_faces,
    inverse_warp_grid,
    lambertian_shading,
    posed_mesh,
    rasterize_depth,
    sample_canonical,
    warp_depth,
)
from unsup3d_cli.render.reference import rasterize_depth_reference


def _smooth_depth(batch: int, size: int, dtype=torch.float64, device="cpu") -> torch.Tensor:
    coarse = 0.9 + 0.2 * torch.rand(batch, 1, 3, 3, dtype=dtype, device=device)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)


def _posed(depth: torch.Tensor, angles: list[list[float]], shift: float = 0.0):
    dtype, device = depth.dtype, depth.device
    rot = euler_to_rotation(torch.tensor(angles, dtype=dtype, device=device))
    trans = torch.full((depth.shape[0], 3), shift, dtype=dtype, device=device)
    k = intrinsics_from_fov(10.0, depth.shape[-1], depth)
    vertices, faces = posed_mesh(depth, rot, trans, k, 1.0)
    return vertices, faces, k, rot, trans


ANGLES = [[0.15, 0.6, 0.05], [-0.25, -0.45, 0.2]]  # asymmetric poses: axis flips would show


def test_grid_faces_layout():
    faces = grid_faces(3, 4)
    assert faces.shape == (2 * 2 * 3, 3)
    assert faces[0].tolist() == [0, 4, 1]  # (r,c), (r+1,c), (r,c+1)
    assert faces[1].tolist() == [1, 4, 5]  # (r,c+1), (r+1,c), (r+1,c+1)
    assert faces[-1].tolist() == [7, 10, 11]
    with pytest.raises(ValueError):
        grid_faces(1, 4)


def test_fast_rasterizer_matches_reference_values_and_gradients():
    depth = _smooth_depth(2, 8)
    vertices, faces, k, _, _ = _posed(depth, ANGLES, shift=0.01)
    fast_in = vertices.detach().clone().requires_grad_()
    ref_in = vertices.detach().clone().requires_grad_()
    fast = rasterize_depth(fast_in, faces, k, (8, 8))
    ref = rasterize_depth_reference(ref_in, faces, k, (8, 8))
    assert torch.equal(fast.face_index, ref.face_index)
    assert torch.equal(fast.covered, ref.covered)
    assert 20 < int(fast.covered.sum()) < 128  # partly covered: both branches exercised
    torch.testing.assert_close(fast.depth, ref.depth)
    torch.testing.assert_close(fast.barycentric, ref.barycentric)
    upstream = torch.randn(
        fast.depth.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    upstream_bary = torch.randn(fast.barycentric.shape, dtype=torch.float64)
    ((fast.depth * upstream).sum() + (fast.barycentric * upstream_bary).sum()).backward()
    ((ref.depth * upstream).sum() + (ref.barycentric * upstream_bary).sum()).backward()
    assert fast_in.grad.abs().sum() > 0
    torch.testing.assert_close(fast_in.grad, ref_in.grad)


def test_asymmetric_triangle_covers_the_hand_computed_mask(device):
    k = intrinsics_from_fov(10.0, 8, torch.zeros((), device=device, dtype=torch.float64))
    corners_uv = [(1.0, 1.0), (6.0, 1.0), (1.0, 4.0)]  # pixel coordinates (u, v), depth 1
    vertices = torch.tensor(
        [[(u - k[0, 2].item()) / k[0, 0].item(), (v - k[1, 2].item()) / k[1, 1].item(), 1.0]
         for u, v in corners_uv], dtype=torch.float64, device=device,
    )[None]  # fmt: skip
    faces = torch.tensor([[0, 1, 2]], device=device)
    out = rasterize_depth(vertices, faces, k, (8, 8))
    expected = torch.tensor(
        [
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 1, 1, 1, 1, 1, 1, 0],
            [0, 1, 1, 1, 1, 0, 0, 0],  # (u − 1)/5 + (v − 1)/3 ≤ 1
            [0, 1, 1, 0, 0, 0, 0, 0],
            [0, 1, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
        ],
        dtype=torch.bool,
        device=device,
    )
    assert torch.equal(out.covered[0, 0], expected)
    assert torch.equal(out.face_index[0] == 0, expected)
    assert int(expected.sum()) == 13
    ones = torch.ones(13, dtype=torch.float64, device=device)
    torch.testing.assert_close(out.depth[0, 0][expected], ones)
    assert (out.depth[0, 0][~expected] == 100.0).all()
    flipped = rasterize_depth(vertices, faces.flip(-1), k, (8, 8))  # other winding: two-sided
    assert torch.equal(flipped.covered, out.covered)


@pytest.mark.parametrize("fixed_size", [False, True], ids=["exact", "fixed-size"])
@pytest.mark.parametrize("bad", ["behind", "huge", "nan"])
@pytest.mark.parametrize("bad_first", [True, False], ids=["bad-first", "bad-last"])
def test_empty_pixels_give_background_and_no_gradient_even_beside_a_bad_triangle(
    fixed_size: bool, bad: str, bad_first: bool
):
    # One triangle is behind the camera and collapsed, or huge, or NaN (the interpolation pass
    # evaluates every pixel, empty ones with a stand-in triangle, and the fixed-size pass
    # points its unused slots at the last triangle): nothing may crash, and nothing infinite
    # may reach the gradient.
    k = intrinsics_from_fov(10.0, 8, torch.zeros((), dtype=torch.float64))
    corners_uv = [(1.0, 1.0), (6.0, 1.0), (1.0, 4.0)]  # the good triangle, depth 2
    fx, fy, cx, cy = k[0, 0].item(), k[1, 1].item(), k[0, 2].item(), k[1, 2].item()
    visible = [[2 * (u - cx) / fx, 2 * (v - cy) / fy, 2.0] for u, v in corners_uv]
    far = 1e30  # projects far beyond int64's range of pixel indices
    broken = {
        "behind": [[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [0.0, 0.0, -1.0]],
        "huge": [[far, far, 1.0], [far * 1.01, far, 1.0], [far, far * 1.01, 1.0]],
        "nan": [[math.nan, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.1, 1.0]],
    }[bad]
    vertices = torch.tensor([broken + visible], dtype=torch.float64, requires_grad=True)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]] if bad_first else [[3, 4, 5], [0, 1, 2]])
    good = 1 if bad_first else 0
    out = rasterize_depth(vertices, faces, k, (8, 8), background=50.0, fixed_size=fixed_size)
    covered = out.covered[0, 0]
    assert int(covered.sum()) == 13 and (out.face_index[0][covered] == good).all()
    assert int(out.dropped) == 0
    assert (out.depth[0, 0][~covered] == 50.0).all() and (out.barycentric[0][~covered] == 0).all()
    two = torch.full((13,), 2.0, dtype=torch.float64)
    torch.testing.assert_close(out.depth[0, 0][covered], two)
    (out.depth.sum() + out.barycentric.square().sum()).backward()
    assert torch.isfinite(vertices.grad[0, 3:]).all() and vertices.grad[0, 3:].abs().sum() > 0
    if bad != "nan":  # a NaN vertex gets NaN·0 from its own projection, whatever we do
        assert (vertices.grad[0, :3] == 0).all()


def test_identity_view_reproduces_the_depth_everywhere(device, dtype, tolerances):
    depth = _smooth_depth(3, 16, dtype, device)
    eye, zero = torch.eye(3, dtype=dtype, device=device).expand(3, 3, 3), depth.new_zeros(3, 3)
    k = intrinsics_from_fov(10.0, 16, depth)
    view, mask, _ = warp_depth(depth, eye, zero, k, 1.0, (0.8, 1.2))
    assert mask.all()
    torch.testing.assert_close(view, depth, **tolerances)
    grid = inverse_warp_grid(view, eye, zero, k, 1.0)
    image = torch.rand(3, 3, 16, 16, dtype=dtype, device=device)
    torch.testing.assert_close(sample_canonical(image, grid), image, **tolerances)


@pytest.mark.parametrize("yaw_deg", [-35.0, 20.0, 60.0])
def test_rotated_plane_matches_its_exact_depth(yaw_deg):
    size, theta = 32, math.radians(yaw_deg)
    depth = torch.ones(1, 1, size, size, dtype=torch.float64)
    view, mask, _ = warp_depth(
        depth, euler_to_rotation(torch.tensor([[0.0, theta, 0.0]], dtype=torch.float64)),
        depth.new_zeros(1, 3), intrinsics_from_fov(10.0, size, depth), 1.0, (0.0, 10.0),
    )  # fmt: skip
    k = intrinsics_from_fov(10.0, size, depth)
    u = torch.arange(size, dtype=torch.float64)
    # The plane through the pivot (0, 0, 1) with normal (sin θ, 0, cos θ), hit by the ray of u.
    exact = math.cos(theta) / (math.sin(theta) * (u - k[0, 2]) / k[0, 0] + math.cos(theta))
    exact = exact.expand(size, size)
    covered = mask[0, 0].bool()
    assert covered.sum() > size * size * math.cos(theta) * 0.8
    torch.testing.assert_close(view[0, 0][covered], exact[covered], rtol=1e-10, atol=1e-10)


def test_nearer_surface_wins():
    k = intrinsics_from_fov(10.0, 8, torch.zeros((), dtype=torch.float64))
    near = depth_to_points(torch.full((1, 1, 8, 8), 1.0, dtype=torch.float64), k).reshape(1, -1, 3)
    far = near * 1.05
    faces = grid_faces(8, 8)
    both = torch.cat([far, near], dim=1)
    out = rasterize_depth(both, torch.cat([faces, faces + 64]), k, (8, 8))
    torch.testing.assert_close(out.depth, torch.ones_like(out.depth))
    assert (out.face_index >= len(faces)).all()


def _candidate_counts(vertices: torch.Tensor, faces: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Per triangle, how many integer pixel centres its bounding box spans (u count, v count)."""
    uv = (vertices @ k.T)[..., :2] / vertices[..., 2:]  # (B, N, 2)
    tri = uv[:, faces]  # (B, F, 3, 2)
    low, high = tri.amin(dim=2), tri.amax(dim=2)
    return (torch.floor(high + 1e-4) - torch.ceil(low - 1e-4) + 1).clamp(min=0)  # (B, F, 2)


@pytest.mark.parametrize("fixed_size", [False, True], ids=["exact", "fixed-size"])
def test_every_visibility_path_matches_the_reference(fixed_size: bool):
    # One mesh per image: a posed depth grid (triangles of about a pixel, one candidate each),
    # the same grid seen head-on (vertices exactly on pixel centres: 2×2 blocks), and a large
    # triangle in front of a posed grid (scanline rows), all compared with the naive loop.
    # The fixed-size pass (the GPU's) lays every multi-pixel box over its slots instead.
    depth = _smooth_depth(3, 12)
    angles = [[0.15, 0.6, 0.05], [0.0, 0.0, 0.0], [-0.25, -0.45, 0.2]]
    vertices, faces, k, _, _ = _posed(depth, angles)
    big = torch.tensor([[-0.04, -0.05, 0.80], [0.05, -0.02, 0.81], [0.0, 0.06, 0.82]])
    big = big.to(vertices).expand(3, 3, 3).clone()
    big[:2, :, 2] = 50.0  # far behind the grid in the first two images: never visible there
    mesh = torch.cat([vertices, big], dim=1)
    all_faces = torch.cat([faces, torch.arange(3)[None] + vertices.shape[1]])
    counts = _candidate_counts(mesh, all_faces, k)
    assert ((counts <= 1).all(-1)).sum() > 0  # single-candidate triangles
    assert ((counts == 2).any(-1) & (counts <= 2).all(-1)).sum() > 0  # 2×2 blocks
    assert (counts > 2).any(-1)[2, -1]  # the large triangle needs the rows
    fast_in = mesh.detach().clone().requires_grad_()
    ref_in = mesh.detach().clone().requires_grad_()
    fast = rasterize_depth(fast_in, all_faces, k, (12, 12), fixed_size=fixed_size)
    ref = rasterize_depth_reference(ref_in, all_faces, k, (12, 12))
    assert int(fast.dropped) == 0
    assert torch.equal(fast.covered, ref.covered)
    torch.testing.assert_close(fast.depth, ref.depth)
    # Head-on, pixel centres sit on shared vertices and edges: the visible triangle is a tie.
    for b in (0, 2):
        assert torch.equal(fast.face_index[b], ref.face_index[b])
    assert (fast.face_index[2] == all_faces.shape[0] - 1).sum() > 4  # the big one is seen
    upstream = torch.randn(fast.depth.shape, generator=torch.Generator().manual_seed(2))
    (fast.depth * upstream.to(fast.depth)).sum().backward()
    (ref.depth * upstream.to(ref.depth)).sum().backward()
    torch.testing.assert_close(fast_in.grad, ref_in.grad)


@pytest.mark.parametrize("fixed_size", [False, True], ids=["exact", "fixed-size"])
def test_chunked_visibility_equals_one_pass(fixed_size: bool):
    depth = _smooth_depth(2, 16)
    vertices, faces, k, _, _ = _posed(depth, ANGLES)
    whole = rasterize_depth(vertices, faces, k, (16, 16), fixed_size=False)
    chunked = rasterize_depth(vertices, faces, k, (16, 16), max_candidates=7, fixed_size=fixed_size)
    assert torch.equal(whole.face_index, chunked.face_index)
    torch.testing.assert_close(whole.depth, chunked.depth)


@pytest.mark.parametrize("fixed_size", [False, True], ids=["exact", "fixed-size"])
def test_edge_on_view_matches_the_reference(fixed_size: bool):
    # Seen edge-on (90° yaw), the grid collapses to slivers: the fast path must neither blow
    # up nor drop them, and must agree with the naive loop pixel for pixel.
    depth = _smooth_depth(1, 16)
    vertices, faces, k, _, _ = _posed(depth, [[0.0, math.pi / 2, 0.0]])
    out = rasterize_depth(vertices, faces, k, (16, 16), max_candidates=50, fixed_size=fixed_size)
    ref = rasterize_depth_reference(vertices, faces, k, (16, 16))
    assert torch.equal(out.covered, ref.covered)
    torch.testing.assert_close(out.depth, ref.depth)
    assert torch.isfinite(out.depth).all()


@pytest.mark.parametrize("slots_per_pixel", [0.0, 0.1, 0.3])
def test_fixed_size_pass_drops_only_past_its_slots_and_counts_them(slots_per_pixel: float):
    # A rough depth map seen from 70° of yaw: its triangles stretch over boxes many pixel
    # centres wide, which the fixed-size pass lays over its slots (boxes of up to 2×2 need
    # none). With too few slots the boxes past the last one are dropped: never an extra
    # pixel, and exactly that many candidates counted.
    depth = 0.9 + 0.2 * torch.rand(2, 1, 12, 12, dtype=torch.float64)
    vertices, faces, k, _, _ = _posed(depth, [[0.1, 1.2, 0.0], [-0.1, -1.2, 0.1]])
    uv = (vertices @ k.T)[..., :2] / vertices[..., 2:]
    tri = uv[:, faces]  # (B, F, 3, 2)
    lo = torch.ceil(tri.amin(dim=2) - 1e-4).clamp(min=0)
    hi = torch.floor(tri.amax(dim=2) + 1e-4).clamp(max=11)
    size = (hi - lo + 1).clamp(min=0)  # (B, F, 2) pixel centres per box, along u and v
    large = (size > 2).any(dim=-1)
    slots = math.ceil(slots_per_pixel * 2 * 12 * 12)
    expected = max(0, int(size.prod(dim=-1)[large].sum()) - slots)
    assert expected > 0  # the slots run out in every case here
    out = rasterize_depth(vertices, faces, k, (12, 12), fixed_size=True,
                          slots_per_pixel=slots_per_pixel, max_candidates=40)  # fmt: skip
    exact = rasterize_depth(vertices, faces, k, (12, 12), fixed_size=False)
    assert int(out.dropped) == expected
    assert not (out.covered & ~exact.covered).any()
    assert (out.face_index != exact.face_index).any()  # something was lost, and it shows
    # this rough map needs 11.6 slots per pixel (the models measured, at most 1.6)
    enough = rasterize_depth(vertices, faces, k, (12, 12), fixed_size=True, slots_per_pixel=12)
    assert int(enough.dropped) == 0 and torch.equal(enough.face_index, exact.face_index)


def test_fixed_size_rasterizer_never_waits_for_the_device():
    # On the meta device (shapes, no values) under no_host_sync, anything that would make a
    # GPU wait raises: the fixed-size pass must not, and the exact pass (which sizes its
    # work to the triangles) must, or the check would prove nothing.
    meta = torch.device("meta")
    depth = torch.empty(2, 1, 16, 16, device=meta)
    with no_host_sync():
        k = intrinsics_from_fov(10.0, 16, depth)
        rot = euler_to_rotation(torch.zeros(2, 3, device=meta))
        vertices, faces = posed_mesh(depth, rot, torch.zeros(2, 3, device=meta), k, 1.0)
        out = rasterize_depth(vertices, faces, k, (16, 16))  # fixed-size off the CPU
        assert out.depth.shape == (2, 1, 16, 16) and out.dropped.device == meta
        with pytest.raises(HostSyncError):
            rasterize_depth(vertices, faces, k, (16, 16), fixed_size=False)


def test_gradcheck_rasterized_depth_wrt_depth_and_view():
    depth = _smooth_depth(1, 5).requires_grad_()
    angles = torch.tensor([[0.1, 0.3, -0.05]], dtype=torch.float64, requires_grad=True)
    shift = torch.tensor([[0.01, -0.02, 0.0]], dtype=torch.float64, requires_grad=True)
    k = intrinsics_from_fov(10.0, 5, depth)

    def render(d, a, t):
        vertices, faces = posed_mesh(d, euler_to_rotation(a), t, k, 1.0)
        return rasterize_depth(vertices, faces, k, (5, 5), background=0.0).depth

    assert gradcheck(render, (depth, angles, shift), eps=1e-7, atol=1e-5)


def test_inverse_grid_of_a_plane_reads_back_the_view_depth():
    size = 16
    depth = torch.full((1, 1, size, size), 1.0, dtype=torch.float64)
    k = intrinsics_from_fov(10.0, size, depth)
    rot = euler_to_rotation(torch.tensor([[0.2, -0.3, 0.1]], dtype=torch.float64))
    shift = depth.new_tensor([[0.01, 0.0, 0.02]])
    view, mask, _ = warp_depth(depth, rot, shift, k, 1.0, (0.5, 1.5))
    grid = inverse_warp_grid(view, rot, shift, k, 1.0)
    posed_z = posed_mesh(depth, rot, shift, k, 1.0)[0][..., 2].reshape(1, 1, size, size)
    readback = sample_canonical(posed_z, grid)  # z is affine over the plane: bilinear is exact
    inside = mask.bool() & (grid.abs() < 1).all(-1)[:, None]
    assert inside.sum() > 100
    torch.testing.assert_close(readback[inside], view[inside])


@pytest.mark.parametrize("scale", [0.5, 1.5])
def test_scaled_plane_through_the_pivot_is_the_canonical_frame_magnified(scale):
    size = 33  # odd: the principal point is a pixel centre
    depth = torch.ones(1, 1, size, size, dtype=torch.float64)
    k = intrinsics_from_fov(10.0, size, depth)
    eye, zero = torch.eye(3, dtype=torch.float64)[None], depth.new_zeros(1, 3)
    s = depth.new_tensor([scale])
    view, mask, _ = warp_depth(depth, eye, zero, k, 1.0, (0.5, 1.5), scale=s)
    # The plane z = 1 holds the pivot, so it stays there and only grows by s about the axis.
    g = torch.linspace(-1, 1, size, dtype=torch.float64)  # grid_sample coordinates

    def within(r: float) -> torch.Tensor:  # (1, 1, S, S)
        return ((g[None, :].abs() < r) & (g[:, None].abs() < r))[None, None]

    inside = within(scale - 1e-9)  # pixel centres on the edge may go either way
    assert mask.bool()[inside].all() and not mask.bool()[~within(scale + 1e-9)].any()
    torch.testing.assert_close(view[inside], torch.ones_like(view[inside]))
    grid = inverse_warp_grid(view, eye, zero, k, 1.0, s)  # (1, S, S, 2), x then y
    expected = torch.stack([g[None, :].expand(size, size), g[:, None].expand(size, size)], -1)
    covered = inside[0, 0]
    torch.testing.assert_close(grid[0][covered], expected[covered] / scale)


def test_gradcheck_rasterized_depth_wrt_scale():
    depth = _smooth_depth(1, 5)
    rot = euler_to_rotation(torch.tensor([[0.1, 0.3, -0.05]], dtype=torch.float64))
    k = intrinsics_from_fov(10.0, 5, depth)
    scale = torch.tensor([1.1], dtype=torch.float64, requires_grad=True)

    def render(s):
        vertices, faces = posed_mesh(depth, rot, depth.new_zeros(1, 3), k, 1.0, s)
        return rasterize_depth(vertices, faces, k, (5, 5), background=0.0).depth

    assert gradcheck(render, (scale,), eps=1e-7, atol=1e-5)


def test_lambertian_shading_cases(dtype):
    normals = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]], dtype=dtype)
    normals = normals.view(1, 1, 3, 3).expand(2, 1, 3, 3)
    light = torch.tensor([[0.0, 0.0, 1.0], [0.6, 0.0, 0.8]], dtype=dtype)
    ambient, diffuse = torch.tensor([0.2, 0.1], dtype=dtype), torch.tensor([0.5, 1.0], dtype=dtype)
    shading = lambertian_shading(normals, light, ambient, diffuse)
    assert shading.shape == (2, 1, 1, 3)
    expected = torch.tensor([[0.7, 0.2, 0.2], [0.9, 0.7, 0.1]], dtype=dtype)
    torch.testing.assert_close(shading[:, 0, 0], expected)


def test_render_view_identity_reproduces_vertex_colours_and_turntable_shapes(device):
    renderer = Renderer(RendererConfig())
    depth = _smooth_depth(2, 16, torch.float32, device)
    colors = torch.rand(2, 3, 16, 16, device=device)
    eye, zero = torch.eye(3, device=device).expand(2, 3, 3), torch.zeros(2, 3, device=device)
    image, mask = renderer.render_view(colors, depth, eye, zero)
    assert mask.all()
    torch.testing.assert_close(image, colors, rtol=1e-4, atol=1e-4)
    frames = renderer.turntable(colors, depth, [-60.0, 0.0, 60.0])
    assert frames.shape == (2, 3, 3, 16, 16)
    torch.testing.assert_close(frames[:, 1], colors, rtol=1e-4, atol=1e-4)
    assert (frames[:, 0] == 1.0).any()  # white background shows at 60° yaw


def test_renderer_rejects_non_square_images():
    with pytest.raises(ValueError, match="square"):
        Renderer().intrinsics(torch.ones(1, 1, 8, 9))
