"""Tests of the mesh-based synthetic faces.

Closed meshes, the independent rasterizer against analytic cases and a naive ray caster,
shading, framing, determinism and self-occlusion.
"""

from __future__ import annotations

import dataclasses
import math
import time

import pytest
import torch

from unsup3d_cli.synth_mesh import (
    MeshSynthConfig,
    build_scene,
    cylinder,
    euler_rotation,
    head_mesh,
    interpolate,
    neck_mesh,
    project,
    rasterize,
    render_scene,
    sample_mesh_face,
    shade,
    synthesize_mesh,
    uv_sphere,
    vertex_normals,
)
from unsup3d_cli.synthetic import BACKGROUND_DEPTH

CFG = MeshSynthConfig()
SQUARE_FACES = torch.tensor([[0, 2, 1], [0, 3, 2]])
"""Two triangles of a quad with corners 0..3 listed clockwise on screen (x right, y down), so
their right-hand normals point at the camera (−z)."""


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread: far faster than two contended ones on these small tensors."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def batch():
    return synthesize_mesh(range(6), seed=11)


def _assert_closed_and_outward(vertices: torch.Tensor, faces: torch.Tensor) -> None:
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2).tolist()  # (3F, 2)
    edges = {tuple(e) for e in directed}
    assert len(edges) == len(directed), "a directed edge repeats: inconsistent orientation"
    assert {(b, a) for a, b in edges} == edges, "an edge is not shared by exactly two faces"
    v0, v1, v2 = vertices[faces].unbind(1)
    volume = (v0 * torch.cross(v1, v2, dim=-1)).sum() / 6
    assert volume > 0, "faces point inwards"


def _corners(x0: float, x1: float, y0: float, y1: float, z: float) -> torch.Tensor:
    return torch.tensor([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=torch.float64)


def _ray(row: float, column: float, size: int) -> torch.Tensor:
    """Direction (3,) with z = 1 through pixel coordinates (row, column)."""
    centre = (size - 1) / 2
    return torch.tensor([(column - centre) / CFG.focal_px, (row - centre) / CFG.focal_px, 1.0])


def _ray_cast(vertices: torch.Tensor, faces: torch.Tensor, direction: torch.Tensor) -> float:
    """Naive Möller–Trumbore from the origin: the nearest hit's t (= z, as direction z = 1)."""
    v0, v1, v2 = vertices[faces].unbind(1)
    e1, e2 = v1 - v0, v2 - v0
    d = direction.to(vertices.dtype).expand_as(e1)
    p = torch.cross(d, e2, dim=-1)
    det = (e1 * p).sum(-1)
    s = -v0
    u = (s * p).sum(-1) / det
    q = torch.cross(s, e1, dim=-1)
    v = (d * q).sum(-1) / det
    t = (e2 * q).sum(-1) / det
    hit = (det.abs() > 1e-15) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
    return float(t[hit].min()) if hit.any() else math.inf


# --------------------------------------------------------------------------------- meshes


def test_sphere_and_cylinder_are_closed_and_outward():
    sphere = uv_sphere(6, 8)
    assert sphere.vertices.shape == (2 + 5 * 8, 3) and sphere.faces.shape == (2 * 8 * 5, 3)
    torch.testing.assert_close(sphere.vertices.norm(dim=-1), torch.ones(42, dtype=torch.float64))
    _assert_closed_and_outward(sphere.vertices, sphere.faces)
    tube = cylinder(12, 4)
    _assert_closed_and_outward(tube.vertices, tube.faces)


def test_sphere_volume_and_normals_are_analytic():
    sphere = uv_sphere(64, 96)
    v0, v1, v2 = sphere.vertices[sphere.faces].unbind(1)
    volume = float((v0 * torch.cross(v1, v2, dim=-1)).sum() / 6)
    assert volume == pytest.approx(4 / 3 * math.pi, rel=5e-3)
    cosine = (vertex_normals(sphere) * sphere.vertices).sum(-1)  # radial normals
    assert cosine.min() > 0.999


@pytest.mark.parametrize("index", [0, 1, 2])
def test_head_and_neck_meshes_are_closed_and_outward(index):
    spec = sample_mesh_face(index, 5, CFG)
    head, sphere = head_mesh(spec.identity, spec.expression, spec.hair, 40, 56)
    _assert_closed_and_outward(head.vertices, head.faces)
    neck = neck_mesh(3.0)
    _assert_closed_and_outward(neck.vertices, neck.faces)
    assert len(sphere) == len(head.vertices)


def test_unrotated_head_faces_the_camera_and_is_symmetric():
    spec = sample_mesh_face(0, 5, CFG)
    spec = dataclasses.replace(spec, expression=torch.zeros_like(spec.expression))
    head, _ = head_mesh(spec.identity, spec.expression, spec.hair, 40, 56)
    nose = head.vertices[head.vertices[:, 2].argmin()]
    assert abs(float(nose[0])) < 1e-9 and nose[2] < -1.1  # the nose tip: centre front (−z)
    mirrored = head.vertices * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    nearest = torch.cdist(mirrored, head.vertices).amin(1)  # mirror image lies on the mesh
    assert nearest.max() < 1e-6  # cdist rounding


def test_euler_rotation_matches_the_model_convention():
    from unsup3d_cli.geometry import euler_to_rotation

    angles = torch.tensor([0.3, -0.7, 0.2], dtype=torch.float64)
    rotation = euler_rotation(angles)
    torch.testing.assert_close(rotation, euler_to_rotation(angles[None])[0])
    torch.testing.assert_close(rotation @ rotation.T, torch.eye(3, dtype=torch.float64))
    yaw = euler_rotation(torch.tensor([0.0, math.pi / 2, 0.0], dtype=torch.float64))
    torch.testing.assert_close(
        yaw @ torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64),
        torch.tensor([-1.0, 0.0, 0.0], dtype=torch.float64),
    )


# ----------------------------------------------------------------------------- rasterizer


def test_fronto_parallel_square_has_analytic_coverage_and_depth():
    size, k, z = 12, 3, 1.3
    focal, centre = CFG.focal_px * size / CFG.image_size, (size - 1) / 2
    # corners at pixel coordinates columns 2.1 .. 8.1, rows 3.7 .. 9.2 (no sample on an edge)
    bounds = [(p - centre) * z / focal for p in (2.1, 8.1, 3.7, 9.2)]
    vertices = _corners(*bounds, z)
    fragments = rasterize(vertices, SQUARE_FACES, size, focal, k)
    offsets = (torch.arange(k) + 0.5) / k - 0.5

    def inside(low: float, high: float) -> torch.Tensor:  # (kS,) bool, naive per sample
        positions = (torch.arange(size)[:, None] + offsets).reshape(-1)
        return (positions >= low) & (positions <= high)

    expected = inside(3.7, 9.2)[:, None] & inside(2.1, 8.1)[None, :]
    assert torch.equal(fragments.triangle >= 0, expected)
    torch.testing.assert_close(
        fragments.depth[expected], torch.full_like(fragments.depth[expected], z)
    )
    assert torch.isinf(fragments.depth[~expected]).all()
    coverage = expected.double().reshape(size, k, size, k).mean((1, 3))
    assert coverage[5, 5] == 1 and coverage[0, 0] == 0
    # samples at i − 1/3, i, i + 1/3: column 2 keeps 1 of 3, column 8 and row 9 keep 2 of 3
    assert coverage[5, 2] == pytest.approx(1 / 3) and coverage[5, 8] == pytest.approx(2 / 3)
    assert coverage[9, 8] == pytest.approx(4 / 9) and coverage[9, 2] == pytest.approx(2 / 9)


def test_back_faces_are_culled_unless_asked():
    vertices = _corners(-0.03, 0.03, -0.03, 0.03, 1.0)
    flipped = SQUARE_FACES.flip(1)
    assert (rasterize(vertices, flipped, 16, CFG.focal_px).triangle < 0).all()
    kept = rasterize(vertices, flipped, 16, CFG.focal_px, cull_backfaces=False)
    assert torch.equal(
        kept.triangle >= 0, rasterize(vertices, SQUARE_FACES, 16, CFG.focal_px).triangle >= 0
    )


def test_nearer_surface_wins():
    focal = CFG.focal_px * 16 / 64
    far = _corners(*[p * 1.05 / focal for p in (-6, 6, -6, 6)], 1.05)  # ±6 px about the centre
    near = _corners(*[p * 0.95 / focal for p in (-2, 2, -2, 2)], 0.95)  # ±2 px
    faces = torch.cat([SQUARE_FACES, SQUARE_FACES + 4])
    fragments = rasterize(torch.cat([far, near]), faces, 16, focal)
    centre, edge = fragments.depth[7:9, 7:9], fragments.depth[3, 3]  # 7.5 ± 0.5 vs 7.5 − 4.5
    torch.testing.assert_close(centre, torch.full_like(centre, 0.95))
    assert edge == pytest.approx(1.05) and torch.isinf(fragments.depth[0, 0])
    assert (fragments.triangle[7:9, 7:9] >= 2).all() and fragments.triangle[3, 3] < 2


def test_slanted_plane_depth_and_attributes_are_perspective_correct():
    size, k, slope = 16, 3, (6.0, 2.0)  # plane z + a·x + b·y = 1: z from 0.54 to 6.3
    half = math.tan(math.radians(CFG.fov_deg) / 2) * 1.2  # a quad wider than the frustum
    rays = torch.tensor([[-half, -half], [half, -half], [half, half], [-half, half]]).double()
    depth = 1 / (1 + slope[0] * rays[:, 0] + slope[1] * rays[:, 1])  # (4,)
    vertices = torch.cat([rays * depth[:, None], depth[:, None]], 1)
    fragments = rasterize(
        vertices, SQUARE_FACES, size, CFG.focal_px * size / 64, k, cull_backfaces=False
    )
    assert (fragments.triangle >= 0).all()
    positions = (torch.arange(k * size, dtype=torch.float64) + 0.5) / k - 0.5
    centre, focal = (size - 1) / 2, CFG.focal_px * size / 64
    u = (positions - centre) / focal
    analytic = 1 / (1 + slope[0] * u[None, :] + slope[1] * u[:, None])  # (kS, kS)
    torch.testing.assert_close(fragments.depth, analytic, rtol=1e-10, atol=0)
    x = interpolate(fragments, SQUARE_FACES, vertices[:, :1])[..., 0]  # world x, perspective
    torch.testing.assert_close(x, analytic * u[None, :], rtol=1e-9, atol=1e-12)
    corner_z = vertices[:, 2][SQUARE_FACES[fragments.triangle]]  # (kS, kS, 3)
    screen = fragments.weights * corner_z  # ∝ the screen-space barycentrics λ_m = w_m·z_m / z
    affine_z = (screen / screen.sum(-1, keepdim=True) * corner_z).sum(-1)
    assert (affine_z - analytic).abs().max() > 0.05


def test_head_depth_equals_naive_ray_cast():
    spec = sample_mesh_face(2, 3, CFG)
    spec = dataclasses.replace(spec, angles=torch.zeros(3, dtype=torch.float64))
    scene = build_scene(spec, CFG)
    _, depth, _ = render_scene(scene, spec, CFG)
    size = CFG.image_size
    for row, column in [(31, 32), (20, 30), (40, 36), (26, 20), (45, 25), (2, 2), (60, 61)]:
        hit = _ray_cast(scene.vertices, scene.faces, _ray(row, column, size))
        expected = hit if hit < BACKGROUND_DEPTH else BACKGROUND_DEPTH
        assert float(depth[0, row, column]) == pytest.approx(expected, abs=1e-6), (row, column)
    centre = _ray_cast(scene.vertices, scene.faces, _ray(31.5, 31.5, size))
    assert centre < 1.0  # the head is there, near the pivot depth


# ----------------------------------------------------------------------------- shading


def test_shading_is_analytic_for_a_head_on_surface():
    spec = sample_mesh_face(0, 0, CFG)
    light = dataclasses.replace(
        spec.lighting, direction=(0.0, 0.0, 1.0), fill_direction=(1.0, 0.0, 0.0)
    )
    normal = torch.tensor([[0.0, 0.0, -1.0]], dtype=torch.float64)
    point = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    albedo = torch.tensor([[0.2, 0.4, 0.6]], dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    lambert = shade(normal, point, albedo, light, eye, use_fill=False, use_specular=False)
    torch.testing.assert_close(lambert, albedo * (light.ambient + light.diffuse))
    full = shade(normal, point, albedo, light, eye)  # fill light is perpendicular: no fill
    torch.testing.assert_close(full, lambert + light.specular)  # halfway vector = normal


def test_gamma_fill_and_specular_change_the_image():
    spec = sample_mesh_face(4, 0, CFG)
    scene = build_scene(spec, CFG)
    image, _, _ = render_scene(scene, spec, CFG)
    plain = dataclasses.replace(
        spec, lighting=dataclasses.replace(spec.lighting, specular=0.0, fill=0.0)
    )
    lambert, _, _ = render_scene(scene, plain, dataclasses.replace(CFG, gamma=1.0))
    assert (image - lambert).abs().mean() > 0.05
    no_gamma, _, _ = render_scene(scene, spec, dataclasses.replace(CFG, gamma=1.0))
    assert (no_gamma - lambert).abs().max() > 0.02  # highlight and fill alone
    assert ((image - no_gamma) > -1e-6).all()  # 1/2.2 brightens every value in [0, 1]


# ------------------------------------------------------------------------------ samples


def test_batch_shapes_mask_and_depth_range(batch):
    size = CFG.image_size
    assert batch.image.shape == (6, 3, size, size) and batch.depth.shape == (6, 1, size, size)
    assert batch.rotation.shape == (6, 3, 3) and batch.angles.shape == (6, 3)
    assert 0 <= batch.image.min() and batch.image.max() <= 1
    assert torch.equal(batch.mask, batch.depth < BACKGROUND_DEPTH)
    assert (batch.depth[~batch.mask] == BACKGROUND_DEPTH).all()
    assert batch.depth[batch.mask].min() >= 0.9 and (batch.head_mask <= batch.mask).all()
    assert len(batch.metadata) == 6 and batch.metadata[0]["index"] == 0


def test_face_fraction_lies_in_the_configured_range(batch):
    low, high = CFG.face_fraction_range
    assert ((batch.face_fraction >= low - 0.01) & (batch.face_fraction <= high + 0.01)).all()
    narrow = MeshSynthConfig(face_fraction_range=(0.2, 0.25))
    small = synthesize_mesh(range(3), seed=2, cfg=narrow)
    assert ((small.face_fraction >= 0.19) & (small.face_fraction <= 0.26)).all()
    for record in small.metadata:
        assert abs(record["face_fraction"] - record["face_fraction_target"]) < 0.01


def test_same_seed_and_index_give_identical_bytes(batch):
    again = synthesize_mesh([4, 2], seed=11)
    assert torch.equal(again.image[0], batch.image[4]) and torch.equal(
        again.depth[1], batch.depth[2]
    )
    assert not torch.equal(batch.image[0], batch.image[1])
    other_seed = synthesize_mesh([4], seed=12)
    assert not torch.equal(other_seed.image[0], batch.image[4])


def test_far_cheek_is_self_occluded_at_60_degrees_yaw():
    spec = sample_mesh_face(1, 0, CFG)
    view = torch.tensor([0.0, math.radians(60), 0.0], dtype=torch.float64)
    spec = dataclasses.replace(spec, angles=view, jitter=torch.zeros(2, dtype=torch.float64))
    scene = build_scene(spec, CFG)
    k, size = CFG.samples_per_side, CFG.image_size
    fragments = rasterize(scene.vertices, scene.faces, size, CFG.focal_px, k)
    _, sphere = head_mesh(
        spec.identity, spec.expression, spec.hair, CFG.mesh_rings, CFG.mesh_segments
    )
    head = scene.vertices[: len(sphere)]
    grid = (
        (k * (project(head, size, CFG.focal_px) + 0.5) - 0.5).round().long().clamp(0, k * size - 1)
    )
    buffer = fragments.depth[grid[:, 1], grid[:, 0]]  # (V,)
    visible = head[:, 2] <= buffer + 2e-3
    facing = (scene.normals[: len(sphere)] * head).sum(-1) < 0  # normal towards the camera
    cheek = (sphere[:, 2] < -0.5) & (sphere[:, 1].abs() < 0.35)  # the face's middle band
    sides = [cheek & (sphere[:, 0] > 0.15), cheek & (sphere[:, 0] < -0.15)]
    near, far = sorted(sides, key=lambda side: float(head[side, 2].mean()))
    assert int((visible & far).sum()) < int((visible & near).sum())
    hidden = far & facing & ~visible  # facing the camera yet behind the nose or cheekbone
    assert int(hidden.sum()) > 10


def test_background_kinds_choose_the_backgrounds_and_nothing_else():
    flat = synthesize_mesh(range(6), seed=3, cfg=MeshSynthConfig(background_kinds=("flat",)))
    mixed = synthesize_mesh(range(6), seed=3)
    assert {r["background"] for r in flat.metadata} == {"flat"}
    assert len({r["background"] for r in mixed.metadata}) > 1
    for a, b in zip(flat.metadata, mixed.metadata, strict=True):  # same head, pose and light
        assert {**a, "background": None} == {**b, "background": None}
    for k, record in enumerate(mixed.metadata):
        same = torch.equal(flat.image[k], mixed.image[k])
        assert same == (record["background"] == "flat")
    torch.testing.assert_close(flat.depth, mixed.depth)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="samples_per_side"):
        MeshSynthConfig(samples_per_side=2)
    with pytest.raises(ValueError, match="face_fraction_range"):
        MeshSynthConfig(face_fraction_range=(0.6, 0.4))
    with pytest.raises(ValueError, match="background_kinds"):
        MeshSynthConfig(background_kinds=("flat", "sky"))


def test_render_time_of_one_image_is_reported(capsys):
    synthesize_mesh([0], seed=0)  # warm-up
    start = time.perf_counter()
    synthesize_mesh(range(4), seed=1)
    seconds = (time.perf_counter() - start) / 4
    with capsys.disabled():
        print(f"\nmesh synth: {seconds * 1000:.0f} ms per {CFG.image_size}x{CFG.image_size} image")
