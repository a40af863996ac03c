"""Mesh-based synthetic faces: closed triangle-mesh heads drawn by an independent rasterizer.

A second synthetic-face generator whose images the model's own renderer did not make (nothing
here comes from :mod:`unsup3d_cli.render` or :mod:`unsup3d_cli.geometry`), so that what a model
learns from :mod:`unsup3d_cli.synthetic` can be checked on images it cannot fit exactly.

Conventions (those of :mod:`unsup3d_cli.synthetic` and the model): pinhole camera at the origin,
x right, y down, z forward, FOV ``fov_deg`` across the image, principal point ``(S − 1)/2``,
pixel ``(i, j)`` (row, column) centred at integer coordinates, focal length
``f = (S − 1)/2 / tan(fov/2)`` pixels. The canonical head is centred on the pivot
``c = (0, 0, rot_center_depth)`` and looks along −z (towards the camera); the view is
``P_view = R (P − c) + c + t`` with ``R = Rz(roll)·Ry(yaw)·Rx(pitch)``, angles ``(rx, ry, rz)``
in radians. Depth is the view-space z of the surface, the background is exactly
``BACKGROUND_DEPTH`` (1.1) and the mask is ``depth < 1.1``.

How a sample is made:

* **Shape** (:func:`head_mesh`): a UV sphere (poles on the y axis, so the face lies on the
  well-sampled equator) is scaled to an ellipsoid and displaced along the ellipsoid normal by
  smooth bumps of an identity space (:data:`IDENTITY_RANGES`: head proportions, forehead slope,
  brow ridge, eye sockets and eyeballs, nose protrusion/width/tip, nostril wings, cheekbones,
  lips, chin, jaw width, ears) and moved by expressions (:data:`EXPRESSION_NAMES`: a smile per
  mouth corner, a brow raise per side, a jaw drop that keeps the lips closed). Identity terms
  are mirror-symmetric in x; expressions are drawn per side. Optional hair adds volume over the
  top and back (same closed mesh, painted dark); an optional neck is a separate closed
  cylinder. The topology never changes, so every mesh is closed and outward-oriented.
* **Albedo**: per-vertex colour (skin tone, cheek redness, eyebrows, eyes, lips, mouth line,
  hair), in linear RGB.
* **Raster** (:func:`rasterize`): a vectorised z-buffer over a supersampled grid of
  ``k × k`` samples per pixel (offsets ``(m + 0.5)/k − 0.5``, m = 0..k−1), back faces culled,
  inclusive edge test, perspective-correct barycentrics (``1/z`` is affine in screen space).
* **Shading** (:func:`shade`, per sample, in the view frame): albedo × (ambient + diffuse·cos of
  the main light + a weak tinted fill light) + a white Blinn-Phong highlight, composited over a
  background in linear RGB, box-averaged to pixels and encoded with gamma ``1/gamma``.
* **Depth**: the z-buffer of the *centre* sample of each pixel (k is odd, so that sample lies
  exactly at the pixel centre); the mask is ``depth < 1.1`` and image and depth share it.
* **Framing**: the head's scale is solved so that the head (hair included, neck excluded) covers
  a drawn fraction of the image pixels (up to three rescaling steps on a 1-sample raster; the
  measured fraction is in the metadata), the head is placed at depth ≈ 1 (pushed back just
  enough that its nearest point stays at ``nearest_depth``) and jittered sideways.

A sample is a pure function of ``(seed, index)`` and the config: its draws come from a
``torch.Generator`` seeded by a hash of the pair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from unsup3d_cli.synthetic import BACKGROUND_DEPTH, MIN_DEPTH, sample_generator

MESH_GENERATOR_VERSION = "synth-mesh-1"
"""Changes whenever the same (seed, index) would give a different image."""

IDENTITY_RANGES: tuple[tuple[str, float, float], ...] = (
    ("head_height", 1.22, 1.36),  # y semi-axis (the x semi-axis is 1)
    ("head_depth", 1.08, 1.2),  # z semi-axis
    ("forehead_slope", 0.0, 0.12),
    ("brow_ridge", 0.03, 0.07),
    ("eye_socket", 0.05, 0.09),
    ("eye_spacing", 0.32, 0.39),  # eye centres at x = ±eye_spacing on the unit sphere
    ("nose_height", 0.17, 0.28),  # protrusion at the tip
    ("nose_width", 0.06, 0.1),
    ("nose_tip", 0.14, 0.22),  # y of the tip on the unit sphere (y down)
    ("cheekbones", 0.03, 0.08),
    ("lips", 0.02, 0.045),
    ("mouth_y", 0.44, 0.5),
    ("chin", 0.03, 0.08),
    ("jaw_width", 0.1, 0.28),  # narrowing of the lower head
    ("ears", 0.08, 0.16),
)
"""Identity shape parameters (head units: x semi-axis 1), drawn uniformly in this order."""
IDENTITY_INDEX = {name: i for i, (name, _, _) in enumerate(IDENTITY_RANGES)}
EXPRESSION_NAMES = ("smile_minus_x", "smile_plus_x", "brow_minus_x", "brow_plus_x", "jaw_drop")
"""Expression amounts, head units; ``minus_x`` is the side at canonical −x (image left when
frontal)."""
BACKGROUND_KINDS = ("flat", "gradient", "noise", "shapes")
FACE_FRACTION_LIMITS = (0.05, 0.95)
"""Accepted bounds of ``MeshSynthConfig.face_fraction_range``."""
FACE_FRACTION_TOLERANCE = 0.002
"""The framing stops rescaling once the head's measured fraction is this close to its target."""
NEAR_PLANE = 1e-6
"""Faces with a corner at view-space z ≤ this are not rasterized."""
_MIN_SCREEN_AREA = 1e-12
"""Faces whose projected (doubled) area is at most this, in squared samples, are skipped."""
_EDGE_TOLERANCE = 1e-12
"""A sample is inside a face when its barycentrics are ≥ −this (edges inclusive)."""
_HALF = 0.5
"""A fair coin (disc or square background shape)."""
_SKIN_LIGHT = (0.95, 0.8, 0.69)
_SKIN_DARK = (0.36, 0.23, 0.16)
_HAIR_COLOURS = (
    (0.07, 0.05, 0.04),
    (0.22, 0.14, 0.09),
    (0.42, 0.28, 0.16),
    (0.78, 0.64, 0.4),
    (0.5, 0.23, 0.11),
    (0.6, 0.6, 0.6),
)
_IRIS_COLOURS = ((0.3, 0.18, 0.1), (0.12, 0.08, 0.06), (0.25, 0.42, 0.62), (0.3, 0.45, 0.3))


@dataclass(frozen=True)
class MeshSynthConfig:
    """Camera, framing, pose, light and mesh settings of the mesh-face generator."""

    image_size: int = 64
    """Side of the square images in pixels."""
    fov_deg: float = 10.0
    """Field of view across the image, degrees (the model's camera)."""
    rot_center_depth: float = 1.0
    """Depth of the pivot the head is rotated about (and centred on in the canonical frame)."""
    samples_per_side: int = 3
    """Supersampling: k × k samples per pixel; odd, so one sample sits at the pixel centre."""
    face_fraction_range: tuple[float, float] = (0.3, 0.7)
    """Fraction of the image pixels the head (hair included, neck excluded) covers, drawn
    uniformly; reached to within about 0.01 (the measured value is in the metadata)."""
    position_jitter: float = 0.15
    """The head centre's projection is moved by up to ± this fraction of the half-image."""
    nearest_depth: float = 0.91
    """The head is pushed back from depth 1 until its nearest point is at least this deep."""
    yaw_range_deg: float = 60.0
    """Yaw (ry) is drawn uniformly from ± this, degrees."""
    pitch_range_deg: float = 20.0
    """Pitch (rx) is drawn uniformly from ± this, degrees."""
    roll_range_deg: float = 10.0
    """Roll (rz) is drawn uniformly from ± this, degrees."""
    ambient_range: tuple[float, float] = (0.15, 0.45)
    """Ambient term ka (linear units)."""
    diffuse_range: tuple[float, float] = (0.45, 0.85)
    """Main light kd (linear units)."""
    light_xy_range: float = 0.9
    """Main light direction normalize(lx, ly, 1) (canonical frame, model convention)."""
    fill_range: tuple[float, float] = (0.05, 0.2)
    """Strength of the tinted fill light (direction drawn wide, in the canonical frame)."""
    specular_range: tuple[float, float] = (0.05, 0.25)
    """Strength of the white Blinn-Phong highlight."""
    shininess_range: tuple[float, float] = (8.0, 40.0)
    """Blinn-Phong exponent."""
    gamma: float = 2.2
    """Output encoding: image = linear ** (1 / gamma)."""
    hair_probability: float = 0.85
    """Fraction of heads with hair (dark cap and volume over the top and back)."""
    neck_probability: float = 0.9
    """Fraction of samples with a neck."""
    expression_probability: float = 0.6
    """Fraction of faces with non-zero expression amounts."""
    background_kinds: tuple[str, ...] = BACKGROUND_KINDS
    """Backgrounds drawn from, uniformly (a subset of :data:`BACKGROUND_KINDS`; each kind
    makes the same random draws, so the other factors of a face do not change with it)."""
    mesh_rings: int = 80
    """Latitude bands of the head's UV sphere."""
    mesh_segments: int = 112
    """Longitude segments of the head's UV sphere."""

    def __post_init__(self) -> None:
        """Reject values that cannot describe a dataset (ValueError naming the field)."""
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {self.image_size}")
        if self.samples_per_side < 1 or self.samples_per_side % 2 == 0:
            raise ValueError(f"samples_per_side must be odd and >= 1, got {self.samples_per_side}")
        low, high = self.face_fraction_range
        least, most = FACE_FRACTION_LIMITS
        if not least <= low <= high <= most:
            raise ValueError(
                f"face_fraction_range must be within [{least}, {most}], got {(low, high)}"
            )
        for name in ("hair_probability", "neck_probability", "expression_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not MIN_DEPTH <= self.nearest_depth < self.rot_center_depth:
            raise ValueError(
                f"nearest_depth must be in [{MIN_DEPTH}, {self.rot_center_depth}), "
                f"got {self.nearest_depth}"
            )
        unknown = set(self.background_kinds) - set(BACKGROUND_KINDS)
        if not self.background_kinds or unknown:
            raise ValueError(
                f"background_kinds must be a non-empty subset of {BACKGROUND_KINDS}, "
                f"got {self.background_kinds}"
            )
        if self.mesh_rings < 4 or self.mesh_segments < 4:
            raise ValueError("mesh_rings and mesh_segments must be >= 4")

    @property
    def focal_px(self) -> float:
        """Focal length in pixels, ``(S − 1)/2 / tan(fov/2)``."""
        return (self.image_size - 1) / 2 / math.tan(math.radians(self.fov_deg) / 2)


@dataclass(frozen=True)
class Lighting:
    """Light of one sample.

    Directions live in the canonical frame, in the model's convention:
    ``direction = normalize(lx, ly, 1)`` and a surface is lit by ``max(0, −n·direction)`` for
    its outward normal n (so (0, 0, 1) lights a face that looks at the camera head-on).
    """

    ambient: float
    diffuse: float
    direction: tuple[float, float, float]
    specular: float
    shininess: float
    fill: float
    fill_direction: tuple[float, float, float]
    fill_tint: tuple[float, float, float]


@dataclass(frozen=True)
class MeshFaceSpec:
    """Every random draw of one sample (no batch dimension)."""

    index: int
    seed: int
    identity: Tensor
    """(len(IDENTITY_RANGES),) float64, in :data:`IDENTITY_RANGES` order."""
    expression: Tensor
    """(len(EXPRESSION_NAMES),) float64, head units."""
    colours: Tensor
    """(6, 3) display-space RGB: skin, lips, brows, hair, iris, cheek tint."""
    hair: tuple[float, float, float] | None
    """(hairline y at the front, hairline y at the back, volume) or None (bald)."""
    has_neck: bool
    angles: Tensor
    """(3,) (pitch, yaw, roll) in radians."""
    face_fraction: float
    """Target fraction of the image covered by the head."""
    jitter: Tensor
    """(2,) projected head-centre offset, fraction of the half-image (x, y)."""
    lighting: Lighting
    background_kind: str
    background: Tensor
    """(3, kS, kS) display-space RGB in [0, 1], at the supersampled resolution."""


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh: vertices (V, 3) float64, faces (F, 3) long (outward by right hand)."""

    vertices: Tensor
    faces: Tensor


@dataclass(frozen=True)
class Scene:
    """One posed sample in the view frame.

    Attributes:
        vertices: (V, 3) view-space positions (head then neck).
        faces: (F, 3) long.
        normals: (V, 3) unit outward vertex normals in the view frame.
        albedo: (V, 3) linear RGB.
        is_head: (F,) bool, the head's faces (hair included).
        rotation: (3, 3). translation: (3,). scale: world units per head unit.
    """

    vertices: Tensor
    faces: Tensor
    normals: Tensor
    albedo: Tensor
    is_head: Tensor
    rotation: Tensor
    translation: Tensor
    scale: float


@dataclass(frozen=True)
class Fragments:
    """What a rasterization leaves per sample of the (kS, kS) supersampled grid.

    Attributes:
        triangle: (kS, kS) long, the nearest covering face, −1 where none.
        depth: (kS, kS) float64 view-space z, +inf where none.
        weights: (kS, kS, 3) float64 perspective-correct barycentrics (0 where none).
    """

    triangle: Tensor
    depth: Tensor
    weights: Tensor


@dataclass(frozen=True)
class MeshSynthBatch:
    """Rendered mesh faces and their ground truth (field names as :class:`SynthBatch`'s).

    Attributes:
        image: (B, 3, S, S) in [0, 1] (gamma-encoded).
        depth: view-space depth at each pixel centre, background exactly 1.1, (B, 1, S, S).
        mask: (B, 1, S, S) bool, equals depth < 1.1 (head, hair and neck).
        head_mask: (B, 1, S, S) bool, the head (hair included) at the pixel centre.
        rotation: (B, 3, 3), ``R = Rz·Ry·Rx`` of ``angles``.
        translation: (B, 3), world units (``tz`` is the push-back from the pivot).
        angles: (B, 3) (pitch, yaw, roll) in radians.
        ambient, diffuse, specular, shininess: (B,).
        light_direction: (B, 3) main light in the canonical frame, model convention.
        face_fraction: (B,) measured head_mask mean.
        metadata: one JSON-ready dict per sample (all draws).
    """

    image: Tensor
    depth: Tensor
    mask: Tensor
    head_mask: Tensor
    rotation: Tensor
    translation: Tensor
    angles: Tensor
    ambient: Tensor
    diffuse: Tensor
    light_direction: Tensor
    specular: Tensor
    shininess: Tensor
    face_fraction: Tensor
    metadata: tuple[dict, ...]


# ------------------------------------------------------------------------------- sampling


def _uniform(gen: torch.Generator, low: float, high: float, *shape: int) -> Tensor:
    return low + (high - low) * torch.rand(shape or (1,), generator=gen, dtype=torch.float64)


def _scalar(gen: torch.Generator, low: float, high: float) -> float:
    return float(_uniform(gen, low, high))


def _choice(gen: torch.Generator, count: int) -> int:
    return int(torch.randint(count, (1,), generator=gen))


def _unit(x: float, y: float, z: float) -> tuple[float, float, float]:
    norm = math.sqrt(x * x + y * y + z * z)
    return (x / norm, y / norm, z / norm)


def _sample_colours(gen: torch.Generator) -> Tensor:
    light, dark = (torch.tensor(c, dtype=torch.float64) for c in (_SKIN_LIGHT, _SKIN_DARK))
    skin = torch.lerp(light, dark, _uniform(gen, 0, 1))
    skin = skin + _uniform(gen, -0.03, 0.03, 3)
    lips = skin * torch.tensor([0.82, 0.55, 0.55], dtype=torch.float64) + _uniform(gen, -0.04, 0.04)
    hair = torch.tensor(_HAIR_COLOURS[_choice(gen, len(_HAIR_COLOURS))], dtype=torch.float64)
    hair = hair + _uniform(gen, -0.03, 0.03, 3)
    brows = torch.minimum(hair, skin * 0.6) * _uniform(gen, 0.6, 0.9)
    iris = torch.tensor(_IRIS_COLOURS[_choice(gen, len(_IRIS_COLOURS))], dtype=torch.float64)
    cheek = skin * torch.tensor([1.0, 0.78, 0.78], dtype=torch.float64)
    return torch.stack([skin, lips, brows, hair, iris, cheek]).clamp(0.02, 0.98)


def _sample_expression(gen: torch.Generator, probability: float) -> Tensor:
    on = float(torch.rand(1, generator=gen, dtype=torch.float64)) < probability
    smile, brow, jaw = _scalar(gen, 0, 0.09), _scalar(gen, 0, 0.06), _scalar(gen, 0, 0.08)
    sides = _uniform(gen, 0.4, 1.0, 4)  # per-side factors: the asymmetry
    amounts = torch.stack(
        [
            smile * sides[0],
            smile * sides[1],
            brow * sides[2],
            brow * sides[3],
            torch.tensor(jaw, dtype=torch.float64),
        ]
    )
    return amounts * float(on)


def _sample_lighting(gen: torch.Generator, cfg: MeshSynthConfig) -> Lighting:
    lx, ly = (float(v) for v in _uniform(gen, -cfg.light_xy_range, cfg.light_xy_range, 2))
    fx, fy = (float(v) for v in _uniform(gen, -1.6, 1.6, 2))
    tint = (0.5 + 0.5 * torch.rand(3, generator=gen, dtype=torch.float64)).tolist()
    return Lighting(
        ambient=_scalar(gen, *cfg.ambient_range),
        diffuse=_scalar(gen, *cfg.diffuse_range),
        direction=_unit(lx, ly, 1.0),
        specular=_scalar(gen, *cfg.specular_range),
        shininess=_scalar(gen, *cfg.shininess_range),
        fill=_scalar(gen, *cfg.fill_range),
        fill_direction=_unit(fx, fy, 0.6),
        fill_tint=(tint[0], tint[1], tint[2]),
    )


def sample_mesh_face(index: int, seed: int, cfg: MeshSynthConfig) -> MeshFaceSpec:
    """Draw every random choice of sample ``index`` of dataset ``seed``.

    The draws depend on (seed, index) and the ranges in ``cfg`` only (every branch makes the
    same draws, so one option never shifts the others).
    """
    gen = sample_generator(seed, index, salt="unsup3d-synth-mesh")
    low = torch.tensor([lo for _, lo, _ in IDENTITY_RANGES], dtype=torch.float64)
    high = torch.tensor([hi for _, _, hi in IDENTITY_RANGES], dtype=torch.float64)
    identity = low + (high - low) * torch.rand(len(low), generator=gen, dtype=torch.float64)
    expression = _sample_expression(gen, cfg.expression_probability)
    colours = _sample_colours(gen)
    hair_style = (_scalar(gen, -0.62, -0.45), _scalar(gen, 0.2, 0.55), _scalar(gen, 0.03, 0.12))
    has_hair = float(torch.rand(1, generator=gen, dtype=torch.float64)) < cfg.hair_probability
    has_neck = float(torch.rand(1, generator=gen, dtype=torch.float64)) < cfg.neck_probability
    limits = torch.tensor(
        [cfg.pitch_range_deg, cfg.yaw_range_deg, cfg.roll_range_deg], dtype=torch.float64
    )
    angles = (limits * _uniform(gen, -1.0, 1.0, 3)).deg2rad()
    fraction = _scalar(gen, *cfg.face_fraction_range)
    jitter = _uniform(gen, -cfg.position_jitter, cfg.position_jitter, 2)
    lighting = _sample_lighting(gen, cfg)
    kind, background = _background(gen, cfg.image_size * cfg.samples_per_side, cfg.background_kinds)
    return MeshFaceSpec(
        index,
        seed,
        identity,
        expression,
        colours,
        hair_style if has_hair else None,
        has_neck,
        angles,
        fraction,
        jitter,
        lighting,
        kind,
        background,
    )


def _background(
    gen: torch.Generator, size: int, kinds: Sequence[str] = BACKGROUND_KINDS
) -> tuple[str, Tensor]:
    """A random display-space background (3, size, size) of one of ``kinds``.

    Every kind makes the same random draws.
    """
    kind = kinds[_choice(gen, len(kinds))]
    first, second = _uniform(gen, 0.05, 0.95, 2, 3)
    angle = _scalar(gen, 0.0, 2 * math.pi)
    coarse = _uniform(gen, 0.05, 0.95, 1, 3, 6, 6)
    shapes = _uniform(gen, 0.0, 1.0, 6, 8)  # centre x, y, radius, aspect, is_disc, rgb
    coords = torch.linspace(-1.0, 1.0, size, dtype=torch.float64)
    y, x = torch.meshgrid(coords, coords, indexing="ij")  # (size, size) each
    if kind == "flat":
        return kind, first[:, None, None].expand(3, size, size).clone()
    if kind == "gradient":
        weight = ((math.cos(angle) * x + math.sin(angle) * y) / 1.42 + 1) / 2
        return kind, torch.lerp(first[:, None, None], second[:, None, None], weight[None])
    if kind == "noise":
        smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)
        return kind, smooth[0].clamp(0, 1)
    if kind == "shapes":
        image = first[:, None, None].expand(3, size, size).clone()
        for cx, cy, radius, aspect, disc, *rgb in shapes.tolist():
            dx, dy = (x - (2 * cx - 1)) / (0.15 + 0.5 * radius), (y - (2 * cy - 1))
            dy = dy / ((0.15 + 0.5 * radius) * (0.5 + aspect))
            inside = (dx**2 + dy**2 < 1) if disc < _HALF else (dx.abs().maximum(dy.abs()) < 1)
            image = torch.where(
                inside[None], torch.tensor(rgb, dtype=image.dtype)[:, None, None], image
            )
        return kind, image
    raise ValueError(f"unknown background {kind!r}")


# --------------------------------------------------------------------------------- meshes


def uv_sphere(rings: int, segments: int) -> Mesh:
    """Closed unit UV sphere with poles on the y axis, outward-oriented.

    Vertex 0 is the top pole (y = −1, up), then ``rings − 1`` rings of ``segments`` vertices
    (polar angle θ = π·i/rings, longitude φ = 2π·j/segments with φ = 0 facing −z and x = sin φ),
    then the bottom pole (y = +1).

    Returns:
        A :class:`Mesh` with (2 + (rings − 1)·segments, 3) vertices and 2·segments·(rings − 1)
        faces.
    """
    theta = torch.arange(1, rings, dtype=torch.float64) * math.pi / rings  # (rings − 1,)
    phi = torch.arange(segments, dtype=torch.float64) * 2 * math.pi / segments  # (segments,)
    sin_t, cos_t = theta.sin()[:, None], theta.cos()[:, None]
    ring = torch.stack(torch.broadcast_tensors(sin_t * phi.sin(), -cos_t, -sin_t * phi.cos()), -1)
    poles = torch.tensor([[0.0, -1.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    vertices = torch.cat([poles[:1], ring.reshape(-1, 3), poles[1:]])  # (V, 3)
    grid = 1 + torch.arange((rings - 1) * segments).reshape(rings - 1, segments)
    nxt = grid.roll(-1, dims=1)  # the neighbour at j + 1
    a, b, c, d = grid[:-1], nxt[:-1], grid[1:], nxt[1:]  # quad corners (i, j) … (i + 1, j + 1)
    quads = torch.cat([torch.stack([a, c, b], -1), torch.stack([b, c, d], -1)]).reshape(-1, 3)
    top = torch.stack([torch.zeros_like(grid[0]), grid[0], nxt[0]], -1)
    bottom = torch.stack([grid[-1], torch.full_like(grid[0], len(vertices) - 1), nxt[-1]], -1)
    return Mesh(vertices, torch.cat([top, quads, bottom]))


def cylinder(segments: int, levels: int) -> Mesh:
    """Closed unit cylinder along +y from y = 0 to 1, radius 1, capped, outward-oriented.

    Returns:
        A :class:`Mesh` with ``levels·segments + 2`` vertices (ring vertices, then the top and
        bottom cap centres).
    """
    phi = torch.arange(segments, dtype=torch.float64) * 2 * math.pi / segments
    y = torch.linspace(0.0, 1.0, levels, dtype=torch.float64)[:, None].expand(levels, segments)
    ring = torch.stack([phi.sin().expand(levels, -1), y, -phi.cos().expand(levels, -1)], -1)
    caps = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    vertices = torch.cat([ring.reshape(-1, 3), caps])
    grid = torch.arange(levels * segments).reshape(levels, segments)
    nxt = grid.roll(-1, dims=1)
    a, b, c, d = grid[:-1], nxt[:-1], grid[1:], nxt[1:]
    sides = torch.cat([torch.stack([a, c, b], -1), torch.stack([b, c, d], -1)]).reshape(-1, 3)
    top = torch.stack([torch.full_like(grid[0], len(vertices) - 2), grid[0], nxt[0]], -1)
    bottom = torch.stack([grid[-1], torch.full_like(grid[0], len(vertices) - 1), nxt[-1]], -1)
    return Mesh(vertices, torch.cat([top, sides, bottom]))


Vec3 = tuple[float, float, float]


def _bump(p: Tensor, centre: Vec3, sigma: Vec3) -> Tensor:
    """Anisotropic Gaussian of unit-sphere points p (V, 3) around ``centre`` → (V,)."""
    offset = (p - p.new_tensor(centre)) / p.new_tensor(sigma)  # (V, 3)
    return torch.exp(-0.5 * (offset**2).sum(-1))


def _front(x: float, y: float) -> tuple[float, float, float]:
    """The unit-sphere point on the face side (z < 0) with the given x and y."""
    return (x, y, -math.sqrt(max(0.0, 1.0 - x * x - y * y)))


def _mirror(p: Tensor) -> Tensor:
    """(|x|, y, z) of points (V, 3): evaluating a term on it makes the term symmetric in x."""
    return torch.cat([p[:, :1].abs(), p[:, 1:]], -1)


def _smoothstep(x: Tensor, low: float, high: float) -> Tensor:
    t = ((x - low) / (high - low)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def _identity_relief(p: Tensor, q: Tensor) -> Tensor:
    """Displacement along the ellipsoid normal (V,) of the symmetric identity features.

    ``p`` are unit-sphere points with x replaced by |x| (so every term is mirror-symmetric);
    ``q`` holds the identity parameters.
    """
    par = {name: float(q[i]) for name, i in IDENTITY_INDEX.items()}
    x, y, front = p[:, 0], p[:, 1], (-p[:, 2]).clamp(min=0)
    eye = (par["eye_spacing"], -0.12)
    tip, width = par["nose_tip"], par["nose_width"]
    rise = _smoothstep(y, -0.2, tip)  # (V,) bridge → tip
    nose_profile = rise * (1 - _smoothstep(y, tip, tip + 0.07))
    nose_sigma = width * (0.55 + 0.45 * rise)
    alae = _bump(p, _front(1.5 * width, tip + 0.03), (0.05, 0.04, 0.1))
    terms = [
        -par["forehead_slope"] * _smoothstep(-y, 0.25, 0.8) * front,
        par["brow_ridge"] * _bump(p, _front(0.32, -0.27), (0.22, 0.05, 0.2)),
        -par["eye_socket"] * _bump(p, _front(*eye), (0.12, 0.08, 0.12)),
        0.6 * par["eye_socket"] * _bump(p, _front(*eye), (0.06, 0.04, 0.08)),  # eyeball
        par["nose_height"] * nose_profile * torch.exp(-0.5 * (x / nose_sigma) ** 2) * front,
        0.3 * par["nose_height"] * alae,  # nostril wings
        par["cheekbones"] * _bump(p, _front(0.55, 0.08), (0.15, 0.12, 0.2)),
        par["lips"] * _bump(p, _front(0.0, par["mouth_y"] - 0.03), (0.17, 0.035, 0.2)),
        par["lips"] * _bump(p, _front(0.0, par["mouth_y"] + 0.04), (0.15, 0.035, 0.2)),
        -0.5 * par["lips"] * _bump(p, _front(0.0, par["mouth_y"] + 0.005), (0.2, 0.012, 0.2)),
        par["chin"] * _bump(p, _front(0.0, 0.8), (0.18, 0.1, 0.2)),
        par["ears"] * _bump(p, (1.0, 0.05, 0.08), (0.08, 0.2, 0.12)),
    ]
    return torch.stack(terms).sum(0)


def _expression_offsets(p: Tensor, amounts: Tensor) -> Tensor:
    """Vertex offsets (V, 3) in head units of the expressions (per side, so asymmetric)."""
    smile_l, smile_r, brow_l, brow_r, jaw = (float(a) for a in amounts)
    y = p[:, 1]
    mouth_y = 0.47
    offsets = torch.zeros_like(p)
    for side, smile, brow in ((-1.0, smile_l, brow_l), (1.0, smile_r, brow_r)):
        corner = _bump(p, _front(side * 0.26, mouth_y), (0.12, 0.1, 0.2))
        cheek = _bump(p, _front(side * 0.45, 0.2), (0.15, 0.12, 0.2))
        offsets[:, 1] -= smile * corner + 0.4 * smile * cheek  # corners and cheeks up
        offsets[:, 2] += 0.6 * smile * corner  # corners back
        offsets[:, 2] -= 0.5 * smile * cheek  # cheeks forward
        offsets[:, 1] -= brow * _bump(p, _front(side * 0.32, -0.3), (0.22, 0.14, 0.2))
    chin_weight = _smoothstep(y, mouth_y + 0.01, mouth_y + 0.25) * (-p[:, 2]).clamp(min=0)
    offsets[:, 1] += jaw * chin_weight  # the jaw drops; the lips stretch and stay closed
    return offsets


def head_mesh(
    identity: Tensor,
    expression: Tensor,
    hair: tuple[float, float, float] | None,
    rings: int,
    segments: int,
) -> tuple[Mesh, Tensor]:
    """The canonical head in head units (x semi-axis 1), centred at the origin, facing −z.

    Args:
        identity: (len(IDENTITY_RANGES),) parameters.
        expression: (len(EXPRESSION_NAMES),) amounts.
        hair: (front hairline y, back hairline y, volume) or None.
        rings: latitude bands of the UV sphere.
        segments: longitude segments of the UV sphere.

    Returns:
        The closed mesh and the unit-sphere points (V, 3) its vertices came from (the texture
        coordinates of the albedo).
    """
    sphere = uv_sphere(rings, segments)
    p = sphere.vertices
    par = {name: float(identity[i]) for name, i in IDENTITY_INDEX.items()}
    axes = p.new_tensor([1.0, par["head_height"], par["head_depth"]])
    normal = F.normalize(p / axes, dim=-1)  # ellipsoid normals at p·axes, (V, 3)
    relief = _identity_relief(_mirror(p), identity)  # (V,)
    if hair is not None:
        relief = relief + hair[2] * hair_weight(p, hair)
    vertices = p * axes + relief[:, None] * normal + _expression_offsets(p, expression)
    taper = 1 - par["jaw_width"] * _smoothstep(p[:, 1], 0.05, 0.95)  # (V,)
    vertices = vertices * torch.stack([taper, torch.ones_like(taper), torch.ones_like(taper)], -1)
    return Mesh(vertices, sphere.faces), p


def hair_weight(p: Tensor, hair: tuple[float, float, float]) -> Tensor:
    """Soft hair cap (V,) in [0, 1]: above a hairline that runs from the front to the back."""
    longitude = torch.atan2(p[:, 0], -p[:, 2]).abs() / math.pi  # 0 front, 1 back
    hairline = hair[0] + (hair[1] - hair[0]) * _smoothstep(longitude, 0.2, 0.75)
    ear_gap = _bump(p.abs(), (1.0, 0.05, 0.1), (0.18, 0.22, 0.3))  # keep the ears clear
    return torch.sigmoid((hairline - p[:, 1]) / 0.025) * (1 - ear_gap)


def head_albedo(p: Tensor, spec: MeshFaceSpec) -> Tensor:
    """Per-vertex linear albedo (V, 3) of the head from its unit-sphere points p (V, 3)."""
    c = spec.colours
    par = {name: float(spec.identity[i]) for name, i in IDENTITY_INDEX.items()}
    mirrored = _mirror(p)  # painted features are symmetric
    y_mouth = par["mouth_y"]
    layers = [
        (0.5 * _bump(mirrored, _front(0.5, 0.25), (0.15, 0.12, 0.2)), c[5]),  # cheeks
        (_soft(_bump(mirrored, _front(0.0, y_mouth + 0.005), (0.13, 0.045, 0.2)), 0.5), c[1]),
        (
            _soft(_bump(mirrored, _front(par["eye_spacing"], -0.12), (0.065, 0.028, 0.1)), 0.5),
            p.new_tensor([0.8, 0.77, 0.73]),
        ),
        (_soft(_bump(mirrored, _front(par["eye_spacing"], -0.12), (0.032, 0.03, 0.1)), 0.5), c[4]),
        (
            0.8 * _soft(_bump(mirrored, _front(0.0, y_mouth + 0.005), (0.11, 0.01, 0.2)), 0.5),
            c[1] * 0.45,
        ),
        (
            _soft(_bump(mirrored, _front(par["eye_spacing"], -0.26), (0.13, 0.025, 0.1)), 0.45),
            c[2],
        ),  # eyebrows
    ]
    if spec.hair is not None:
        layers.append((hair_weight(p, spec.hair), c[3]))
    colour = c[0].expand(len(p), 3).clone()
    for weight, paint in layers:
        colour = torch.lerp(colour, paint.expand_as(colour), weight[:, None].clamp(0, 1))
    return colour.clamp(0, 1) ** 2.2  # display → linear


def _soft(weight: Tensor, level: float) -> Tensor:
    """A sharper-edged version of a Gaussian weight: 1 inside the ``level`` contour."""
    return torch.sigmoid((weight - level) / 0.08)


def neck_mesh(length: float, segments: int = 40, levels: int = 6) -> Mesh:
    """The neck in head units, a closed cylinder.

    It runs from inside the head (y = 0.35) down to y = ``length``, slightly behind the head
    centre, with radius 0.6.
    """
    base = cylinder(segments, levels)
    scale = base.vertices.new_tensor([0.6, length - 0.35, 0.6])
    offset = base.vertices.new_tensor([0.0, 0.35, 0.12])
    return Mesh(base.vertices * scale + offset, base.faces)


def vertex_normals(mesh: Mesh) -> Tensor:
    """Area-weighted outward unit vertex normals (V, 3) of a mesh."""
    v0, v1, v2 = mesh.vertices[mesh.faces].unbind(1)  # (F, 3) each
    face_normals = torch.cross(v1 - v0, v2 - v0, dim=-1)  # (F, 3), length 2·area
    summed = torch.zeros_like(mesh.vertices)
    for corner in range(3):
        summed.index_add_(0, mesh.faces[:, corner], face_normals)
    return F.normalize(summed, dim=-1)


def euler_rotation(angles: Tensor) -> Tensor:
    """``R = Rz(rz)·Ry(ry)·Rx(rx)`` (3, 3) from angles (3,) = (rx, ry, rz) in radians."""
    (cx, cy, cz), (sx, sy, sz) = angles.cos().tolist(), angles.sin().tolist()
    rx = torch.tensor([[1, 0, 0], [0, cx, -sx], [0, sx, cx]], dtype=angles.dtype)
    ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], dtype=angles.dtype)
    rz = torch.tensor([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]], dtype=angles.dtype)
    return rz @ ry @ rx


# ----------------------------------------------------------------------------- rasterizer


def project(vertices: Tensor, image_size: int, focal_px: float) -> Tensor:
    """Pixel coordinates (V, 2) = (column, row) of view-space points (V, 3), z > 0."""
    centre = (image_size - 1) / 2
    return focal_px * vertices[:, :2] / vertices[:, 2:] + centre


def _cross2(a: Tensor, b: Tensor) -> Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _candidate_pairs(corners: Tensor, keep: Tensor, side: int) -> tuple[Tensor, Tensor, Tensor]:
    """(face, sample x, sample y) for every sample in each kept face's bounding box.

    ``corners`` are the faces' corners in sample-grid coordinates (F, 3, 2).
    """
    low = corners.amin(1).ceil().clamp(0, side - 1).long()  # (F, 2)
    high = corners.amax(1).floor().clamp(0, side - 1).long()
    extent = (high - low + 1).clamp(min=0) * keep[:, None]  # (F, 2)
    outside = (corners.amax(1) < 0).any(-1) | (corners.amin(1) > side - 1).any(-1)
    counts = extent[:, 0] * extent[:, 1] * (~outside)  # (F,)
    face = torch.repeat_interleave(torch.arange(len(counts)), counts)  # (N,)
    start = torch.repeat_interleave(counts.cumsum(0) - counts, counts)
    local = torch.arange(len(face)) - start  # (N,) position inside the box
    width = extent[face, 0]
    return face, low[face, 0] + local % width, low[face, 1] + local // width


def rasterize(
    vertices: Tensor,
    faces: Tensor,
    image_size: int,
    focal_px: float,
    samples_per_side: int = 1,
    cull_backfaces: bool = True,
) -> Fragments:
    """Z-buffer rasterization of a mesh on a supersampled grid.

    Sample (r, s) of the (kS, kS) grid sits at pixel coordinates ``((s + 0.5)/k − 0.5,
    (r + 0.5)/k − 0.5)``, so with odd k sample ``(k·i + k//2, k·j + k//2)`` is the centre of
    pixel (i, j). A sample is covered by a face when all its screen-space barycentrics are ≥ 0
    (edges inclusive: a closed mesh has no cracks). Depth and weights are perspective-correct:
    ``1/z`` is interpolated affinely in screen space, ``w_m = (λ_m / z_m) · z``.

    Args:
        vertices: view-space points, shape (V, 3), float64 advised; faces behind z ≤ 1e-6 are
            dropped.
        faces: (F, 3) long, outward by the right-hand rule.
        image_size: S.
        focal_px: focal length in pixels (the principal point is (S − 1)/2).
        samples_per_side: k.
        cull_backfaces: skip faces whose normal points away from the camera.

    Returns:
        :class:`Fragments` on the (kS, kS) grid.
    """
    k, side = samples_per_side, samples_per_side * image_size
    grid = k * (project(vertices, image_size, focal_px) + 0.5) - 0.5  # (V, 2) sample coords
    corners = grid[faces]  # (F, 3, 2)
    v0, v1, v2 = vertices[faces].unbind(1)  # (F, 3) each
    area = _cross2(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # (F,)
    keep = (vertices[faces][..., 2] > NEAR_PLANE).all(-1) & (area.abs() > _MIN_SCREEN_AREA)
    if cull_backfaces:
        keep &= (torch.cross(v1 - v0, v2 - v0, dim=-1) * v0).sum(-1) < 0
    face, sx, sy = _candidate_pairs(corners, keep, side)
    point = torch.stack([sx, sy], -1).to(vertices.dtype)  # (N, 2)
    a, b, c = corners[face].unbind(1)  # (N, 2) each
    lam0 = _cross2(b - point, c - point) / area[face]
    lam1 = _cross2(c - point, a - point) / area[face]
    lam = torch.stack([lam0, lam1, 1 - lam0 - lam1], -1)  # (N, 3)
    inside = (lam >= -_EDGE_TOLERANCE).all(-1)
    face, sx, sy, lam = face[inside], sx[inside], sy[inside], lam[inside]
    inv_z = lam / vertices[:, 2][faces[face]]  # (N, 3): λ_m / z_m
    depth = 1 / inv_z.sum(-1)  # (N,)
    return _resolve(face, sy * side + sx, depth, inv_z * depth[:, None], side)


def _resolve(face: Tensor, key: Tensor, depth: Tensor, weights: Tensor, side: int) -> Fragments:
    """Keep the nearest pair per sample (ties: the lowest face index)."""
    count = side * side
    nearest = depth.new_full((count,), math.inf).scatter_reduce(0, key, depth, "amin")
    tied = depth == nearest[key]
    lowest = face.new_full((count,), torch.iinfo(torch.long).max)
    lowest = lowest.scatter_reduce(0, key[tied], face[tied], "amin")
    won = tied & (face == lowest[key])  # exactly one pair per covered sample
    triangle = face.new_full((count,), -1).index_put_((key[won],), face[won])
    all_weights = weights.new_zeros(count, 3).index_put_((key[won],), weights[won])
    return Fragments(
        triangle.reshape(side, side),
        nearest.reshape(side, side),
        all_weights.reshape(side, side, 3),
    )


def interpolate(fragments: Fragments, faces: Tensor, attributes: Tensor) -> Tensor:
    """Perspective-correct per-sample attributes (kS, kS, C) from per-vertex ones (V, C).

    Uncovered samples get 0.
    """
    triangle = fragments.triangle.clamp(min=0)  # (kS, kS)
    corner_values = attributes[faces[triangle]]  # (kS, kS, 3, C)
    values = (fragments.weights[..., None] * corner_values).sum(-2)  # (kS, kS, C)
    return values * (fragments.triangle >= 0)[..., None]


# -------------------------------------------------------------------------------- shading


def shade(
    normals: Tensor,
    positions: Tensor,
    albedo: Tensor,
    lighting: Lighting,
    rotation: Tensor,
    *,
    use_fill: bool = True,
    use_specular: bool = True,
) -> Tensor:
    """Linear radiance (..., 3) of surface samples in the view frame (camera at the origin).

    ``albedo · (ka + kd·max(0, n·L) + kf·tint·max(0, n·L_fill)) + ks·max(0, n·h)^shininess``
    with ``L = R·(−direction)`` (model convention → towards the light, view frame), h the
    Blinn-Phong halfway vector between L and the direction to the camera; the highlight is
    white and only where ``n·L > 0``.

    Args:
        normals: unit outward normals (..., 3).
        positions: view-space points (..., 3).
        albedo: linear RGB (..., 3).
        lighting: the sample's :class:`Lighting`.
        rotation: (3, 3) canonical → view.
        use_fill: add the tinted fill light (the model has no such term).
        use_specular: add the highlight (the model has no such term).

    Returns:
        Linear RGB (..., 3), not clamped.
    """
    towards = -(rotation @ normals.new_tensor(lighting.direction))  # (3,)
    cosine = (normals @ towards).clamp(min=0)[..., None]  # (..., 1)
    radiance = albedo * (lighting.ambient + lighting.diffuse * cosine)
    if use_fill:
        fill = -(rotation @ normals.new_tensor(lighting.fill_direction))
        tint = normals.new_tensor(lighting.fill_tint)
        fill_cosine = (normals @ fill).clamp(min=0)[..., None]  # (..., 1)
        radiance = radiance + albedo * lighting.fill * tint * fill_cosine
    if use_specular:
        halfway = F.normalize(towards - F.normalize(positions, dim=-1), dim=-1)  # (..., 3)
        lit = (cosine > 0).to(normals.dtype)
        highlight = (normals * halfway).sum(-1, keepdim=True).clamp(min=0) ** lighting.shininess
        radiance = radiance + lighting.specular * highlight * lit
    return radiance


# -------------------------------------------------------------------------------- scenes


def _place(
    head: Mesh,
    neck: Mesh | None,
    rotation: Tensor,
    scale: float,
    spec: MeshFaceSpec,
    cfg: MeshSynthConfig,
) -> tuple[Tensor, Tensor]:
    """View-space vertices (head then neck) and the translation (3,) for a head scale."""
    pivot = head.vertices.new_tensor([0.0, 0.0, cfg.rot_center_depth])
    parts = [head.vertices] + ([neck.vertices] if neck is not None else [])
    rotated = torch.cat(parts) * scale @ rotation.T + pivot  # (V, 3) = R (P − c) + c
    half = math.tan(math.radians(cfg.fov_deg) / 2)
    in_frame = (rotated[:, :2].abs() < 1.2 * half * rotated[:, 2:]).all(-1)
    in_frame[: len(head.vertices)] = True  # the whole head; the neck where it can be seen
    push = max(0.0, cfg.nearest_depth - float(rotated[in_frame, 2].min()))
    depth = cfg.rot_center_depth + push
    translation = torch.cat([spec.jitter * half * depth, spec.jitter.new_tensor([push])])
    return rotated + translation, translation


def _assemble(head: Mesh, neck: Mesh | None) -> tuple[Tensor, Tensor]:
    """Faces (F, 3) of head then neck, and which of them are the head's, (F,) bool."""
    parts = [head.faces] + ([neck.faces + len(head.vertices)] if neck is not None else [])
    faces = torch.cat(parts)
    return faces, torch.arange(len(faces)) < len(head.faces)


def _head_fraction(vertices: Tensor, faces: Tensor, is_head: Tensor, cfg: MeshSynthConfig) -> float:
    """Fraction of the pixel centres whose nearest surface is the head (1-sample raster)."""
    triangle = rasterize(vertices, faces, cfg.image_size, cfg.focal_px, 1).triangle
    return float((is_head[triangle.clamp(min=0)] & (triangle >= 0)).double().mean())


def build_scene(spec: MeshFaceSpec, cfg: MeshSynthConfig, max_steps: int = 3) -> Scene:
    """Build, colour and pose one sample, solving the head scale for ``spec.face_fraction``.

    The first scale assumes an elliptic silhouette; each step rasterizes the pixel centres once
    and rescales by ``sqrt(target / measured)`` (areas grow as the square of the scale), until
    the fraction is within 0.002 or ``max_steps`` are done.
    """
    head, sphere = head_mesh(
        spec.identity, spec.expression, spec.hair, cfg.mesh_rings, cfg.mesh_segments
    )
    rotation = euler_rotation(spec.angles)
    half = math.tan(math.radians(cfg.fov_deg) / 2)
    height = float(spec.identity[IDENTITY_INDEX["head_height"]])
    scale = 2 * half * math.sqrt(spec.face_fraction / (math.pi * height * 1.1))
    for step in range(max_steps + 1):
        neck = neck_mesh(0.2 / scale) if spec.has_neck else None  # 0.2 below: out of frame
        faces, is_head = _assemble(head, neck)
        vertices, translation = _place(head, neck, rotation, scale, spec, cfg)
        if step == max_steps:
            break
        measured = _head_fraction(vertices, faces, is_head, cfg)
        if abs(measured - spec.face_fraction) < FACE_FRACTION_TOLERANCE:
            break
        scale *= min(1.3, max(0.77, math.sqrt(spec.face_fraction / max(measured, 1e-3))))
    normals, albedo = [vertex_normals(head)], [head_albedo(sphere, spec)]
    if neck is not None:
        normals.append(vertex_normals(neck))
        neck_colour = (spec.colours[0] * 0.92).clamp(0, 1) ** 2.2  # skin in shade, linear
        albedo.append(neck_colour.expand(len(neck.vertices), 3))
    view_normals = torch.cat(normals) @ rotation.T  # (V, 3)
    return Scene(
        vertices, faces, view_normals, torch.cat(albedo), is_head, rotation, translation, scale
    )


def render_scene(scene: Scene, spec: MeshFaceSpec, cfg: MeshSynthConfig) -> tuple[Tensor, ...]:
    """Image (3, S, S) in [0, 1], depth (1, S, S), head mask (1, S, S) of a posed scene."""
    size, k = cfg.image_size, cfg.samples_per_side
    fragments = rasterize(scene.vertices, scene.faces, size, cfg.focal_px, k)
    covered = (fragments.triangle >= 0)[..., None]  # (kS, kS, 1)
    attributes = torch.cat([scene.normals, scene.vertices, scene.albedo], -1)  # (V, 9)
    normals, positions, albedo = interpolate(fragments, scene.faces, attributes).split(3, -1)
    normals = F.normalize(normals, dim=-1)  # (kS, kS, 3) each
    radiance = shade(normals, positions, albedo, spec.lighting, scene.rotation)
    background = spec.background.permute(1, 2, 0) ** cfg.gamma  # (kS, kS, 3) linear
    radiance = torch.where(covered, radiance, background)
    pixels = radiance.reshape(size, k, size, k, 3).mean((1, 3))  # (S, S, 3) box filter
    image = pixels.clamp(0, 1) ** (1 / cfg.gamma)
    centre = fragments.depth[k // 2 :: k, k // 2 :: k]  # (S, S): the pixel-centre samples
    depth = torch.where(centre < BACKGROUND_DEPTH, centre, centre.new_tensor(BACKGROUND_DEPTH))
    triangle = fragments.triangle[k // 2 :: k, k // 2 :: k]
    head = scene.is_head[triangle.clamp(min=0)] & (triangle >= 0) & (depth < BACKGROUND_DEPTH)
    return image.permute(2, 0, 1).float(), depth[None].float(), head[None]


# ------------------------------------------------------------------------------------ API


def _metadata(spec: MeshFaceSpec, scene: Scene, fraction: float) -> dict:
    """The JSON-ready record of one sample's draws and framing."""

    def floats(values: Tensor) -> list[float]:
        return [round(float(v), 8) for v in values.reshape(-1)]

    identity_names = [name for name, _, _ in IDENTITY_RANGES]
    colour_names = ("skin", "lips", "brows", "hair", "iris", "cheeks")
    hair_names = ("front_line", "back_line", "volume")
    return {
        "index": spec.index,
        "seed": spec.seed,
        "generator": MESH_GENERATOR_VERSION,
        "identity": dict(zip(identity_names, floats(spec.identity), strict=True)),
        "expression": dict(zip(EXPRESSION_NAMES, floats(spec.expression), strict=True)),
        "colours": {name: floats(c) for name, c in zip(colour_names, spec.colours, strict=True)},
        "hair": None if spec.hair is None else dict(zip(hair_names, spec.hair, strict=True)),
        "neck": spec.has_neck,
        "view_angles_deg": floats(spec.angles.rad2deg()),
        "translation": floats(scene.translation),
        "head_scale": round(scene.scale, 8),
        "face_fraction_target": round(spec.face_fraction, 8),
        "face_fraction": round(fraction, 8),
        "lighting": dict(vars(spec.lighting)),
        "background": spec.background_kind,
    }


def synthesize_mesh(
    indices: Sequence[int], seed: int, cfg: MeshSynthConfig | None = None
) -> MeshSynthBatch:
    """Render samples ``indices`` of mesh dataset ``seed``.

    Sample ``i`` depends on ``(seed, i)`` and ``cfg`` only, not on the batch it is in.

    Returns:
        A :class:`MeshSynthBatch` of B = len(indices) samples.
    """
    cfg = cfg or MeshSynthConfig()
    specs = [sample_mesh_face(i, seed, cfg) for i in indices]
    scenes = [build_scene(spec, cfg) for spec in specs]
    rendered = [render_scene(scene, spec, cfg) for scene, spec in zip(scenes, specs, strict=True)]
    image, depth, head = (torch.stack(parts) for parts in zip(*rendered, strict=True))
    fraction = head.double().mean((1, 2, 3))  # (B,)
    lights = [spec.lighting for spec in specs]
    records = zip(specs, scenes, fraction.tolist(), strict=True)
    metadata = [_metadata(spec, scene, f) for spec, scene, f in records]
    return MeshSynthBatch(
        image=image,
        depth=depth,
        mask=depth < BACKGROUND_DEPTH,
        head_mask=head,
        rotation=torch.stack([scene.rotation for scene in scenes]).float(),
        translation=torch.stack([scene.translation for scene in scenes]).float(),
        angles=torch.stack([spec.angles for spec in specs]).float(),
        ambient=torch.tensor([light.ambient for light in lights]),
        diffuse=torch.tensor([light.diffuse for light in lights]),
        light_direction=torch.tensor([light.direction for light in lights]),
        specular=torch.tensor([light.specular for light in lights]),
        shininess=torch.tensor([light.shininess for light in lights]),
        face_fraction=fraction.float(),
        metadata=tuple(metadata),
    )
