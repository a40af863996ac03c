"""Built-in synthetic faces with ground truth: shape, albedo, light, viewpoint, rendering.

No data files are needed: every sample is drawn from a small parametric face model and
rendered with our own renderer, so the data follow the model's conventions exactly (camera of
:class:`~unsup3d_cli.render.RendererConfig`, FOV 10°, pivot at depth 1; angles
``(rx, ry, rz) = (pitch, yaw, roll)`` in radians with ``R = Rz·Ry·Rx`` about the pivot).

A sample is fixed by ``(seed, index)`` alone: its parameters come from a ``torch.Generator``
seeded by a hash of the pair, so a batch, a worker process or an image size changes nothing
about which face index ``i`` is.

How a face is made (all in the canonical, frontal frame; world units at depth 1):

* **Shape**: a height field ``depth = rim_depth − h(u, v)`` over an egg-shaped outline
  (``u = x / half_width``, ``v = (y − centre_y) / half_height``; the jaw tapers the lower half).
  ``h`` is a flattened dome ``relief·(1 − ρⁿ)`` (front and sides of the head; its slope stays
  finite so that the sides are not stretched over many pixels when posed) plus brow ridge,
  eye sockets and eyeballs, nose bridge, tip and alae, cheekbones, lips and mouth slit, chin
  and temples, each scaled by an identity parameter (:data:`SHAPE_RANGES`). Every term is a
  function of ``|u|`` on an exactly mirror-symmetric grid, so the shape is bilaterally symmetric
  to the bit. Optional one-sided *expressions* (smile, raised brow, puffed cheek, shifted
  mouth) break the symmetry slightly. Outside the outline the depth is the background, 1.1.
* **Albedo**: skin tone with symmetric mottling and cheek redness, lips, brows, eyes (sclera,
  iris, pupil) and hair above a hairline; optional asymmetric *perturbations* (spots, hair
  strands, patches) painted on a fraction of the faces.
* **Light**: the model's ambient + directional Lambertian term in the canonical frame, plus a
  weak Blinn-Phong specular highlight the model cannot explain.
* **View and image**: the surface, continued flat at ``rim_depth`` outside the outline (so no
  wall joins face and background), is posed and rendered in one rasterization with
  :meth:`Renderer.render_view`; a face indicator (0.5 + signed distance to the outline in
  pixels) and the posed depth ride along as extra channels. A pixel is foreground where the
  rendered indicator is ≥ 0.5 (a sub-pixel cut along the smooth outline) and its depth is below
  1.1. Image and ground-truth depth share that mask; the background is a random colour,
  gradient or texture, and the depth there is exactly 1.1. The interpolated depth equals
  :meth:`Renderer.warp_depth` of the same mesh up to float rounding (tests check it).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from unsup3d_cli.data import DEPTH_FAR, DEPTH_RANGE
from unsup3d_cli.geometry import euler_to_rotation, points_to_normals, rigid_transform
from unsup3d_cli.render import Renderer, RendererConfig, lambertian_shading

GENERATOR_VERSION = "synth-faces-2"
"""Changes whenever the same (seed, index) would give a different image."""
BACKGROUND_DEPTH = DEPTH_FAR
"""Depth of the background, as in the synface layout (0 in the depth PNG): 1.1."""
MIN_DEPTH = DEPTH_FAR - DEPTH_RANGE
"""Nearest depth a face reaches, the nearest the synface depth PNG holds: 0.9 (the model's
canonical range is [0.9, 1.1])."""
FOREGROUND_MARGIN = 1e-5
"""Foreground pixels have depth < BACKGROUND_DEPTH − margin (16-bit code ≥ 3, never 0)."""
COVERAGE_THRESHOLD = 0.5
"""A pixel belongs to the face where the interpolated face indicator (0.5 + the signed distance
to the outline in pixels, clamped to [0, 1]) reaches this value: a sub-pixel cut along the
smooth outline rather than the pixel staircase."""

SHAPE_RANGES: tuple[tuple[str, float, float], ...] = (
    ("half_width", 0.052, 0.064),  # world units at depth 1
    ("half_height", 0.068, 0.080),
    ("centre_y", -0.003, 0.006),  # y points down
    ("rim_depth", 1.045, 1.065),  # depth of the outline
    ("relief", 0.060, 0.080),  # height of the head dome above the outline
    ("dome_exponent", 2.2, 3.2),  # profile 1 − ρⁿ: flat front, finite slope at the outline
    ("jaw_taper", 0.12, 0.32),  # narrowing of the lower half towards the chin
    ("forehead_slope", 0.0, 0.012),
    ("brow", 0.003, 0.008),
    ("eye_depth", 0.008, 0.015),
    ("eye_spacing", 0.38, 0.46),  # eye centres at u = ±eye_spacing
    ("eye_height", -0.22, -0.10),  # and v = eye_height
    ("nose_height", 0.018, 0.030),
    ("nose_tip", 0.16, 0.30),  # v of the nose tip
    ("nose_width", 0.16, 0.24),  # in u units, at the tip
    ("cheek", 0.003, 0.010),
    ("lips", 0.002, 0.005),
    ("mouth_y", 0.44, 0.54),  # v of the mouth slit
    ("chin", 0.003, 0.008),
)
"""Identity shape parameters, drawn uniformly from (low, high) in this order."""
SHAPE_INDEX = {name: i for i, (name, _, _) in enumerate(SHAPE_RANGES)}

EXPRESSION_KINDS = ("smile", "brow_raise", "cheek_puff", "mouth_shift")
"""One-sided depth deformations (small, expression-like)."""
PERTURBATION_KINDS = ("spot", "hair_strand", "patch")
"""Asymmetric albedo perturbations."""
BACKGROUND_KINDS = ("solid", "gradient", "noise", "stripes", "checker")
"""Background styles, drawn uniformly."""

_SKIN_LIGHT = (0.93, 0.78, 0.67)
_SKIN_DARK = (0.33, 0.21, 0.15)
_HAIR_COLOURS = (
    (0.08, 0.06, 0.05),
    (0.25, 0.16, 0.10),
    (0.45, 0.30, 0.18),
    (0.80, 0.66, 0.42),
    (0.55, 0.25, 0.12),
    (0.62, 0.62, 0.62),
)
_IRIS_COLOURS = ((0.30, 0.18, 0.10), (0.12, 0.08, 0.06), (0.25, 0.42, 0.62), (0.30, 0.45, 0.30))
_NOISE_SIDE = 8
"""Side of the low-resolution noise grids (skin mottling, textured backgrounds)."""


FACE_SCALE_LIMITS = (0.5, 2.0)
"""Accepted range of ``SynthConfig.face_scale``."""
HAIR_PROBABILITY = 0.85
"""Chance that a face has hair."""
SECOND_EXPRESSION_PROBABILITY = 0.3
"""Chance that an expressive face has a second deformation."""
HALF = 0.5
"""A fair coin: the side of an expression."""


@dataclass(frozen=True)
class SynthConfig:
    """Ranges of the synthetic faces' viewpoint, light and asymmetries."""

    image_size: int = 64
    """Side of the square images in pixels."""
    face_scale: float = 1.4
    """Size of the face in the frame (lateral zoom; depth relief unchanged). At 1 a frontal face
    leaves a wide background margin; at 1.4 it fills the frame from cheek to cheek with the
    chin and hairline slightly cropped (~60% of the pixels are face), like the tight crops the
    method is trained on (synface, CelebA). Wide margins of textured background let training
    discard them by rolling the canonical frame, a degenerate solution."""
    yaw_range_deg: float = 60.0
    """Yaw (ry) is drawn uniformly from ±this, in degrees."""
    pitch_range_deg: float = 20.0
    """Pitch (rx) is drawn uniformly from ±this, in degrees."""
    roll_range_deg: float = 10.0
    """Roll (rz) is drawn uniformly from ±this, in degrees."""
    xy_translation_range: float = 0.01
    """tx and ty are drawn uniformly from ±this, in world units (tz is 0, as the face model)."""
    ambient_range: tuple[float, float] = (0.2, 0.6)
    """Ambient light ka (the model allows [0, 1])."""
    diffuse_range: tuple[float, float] = (0.3, 0.8)
    """Directional light kd (the model allows [0, 1])."""
    light_xy_range: float = 0.9
    """Light direction normalize(lx, ly, 1) with lx, ly drawn from ±this (the model's tanh: ±1)."""
    specular_range: tuple[float, float] = (0.0, 0.15)
    """Strength of the weak Blinn-Phong highlight the model has no term for."""
    shininess_range: tuple[float, float] = (8.0, 32.0)
    """Blinn-Phong exponent of that highlight."""
    expression_probability: float = 0.3
    """Fraction of faces with one or two one-sided shape deformations."""
    perturbation_probability: float = 0.3
    """Fraction of faces with one to three asymmetric albedo perturbations."""
    renderer: RendererConfig = field(default_factory=RendererConfig)
    """The camera (FOV, pivot depth): the model's."""

    def __post_init__(self) -> None:
        """Reject values that cannot describe a dataset (ValueError naming the field)."""
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        low, high = FACE_SCALE_LIMITS
        if not low <= self.face_scale <= high:
            raise ValueError(f"face_scale must be in [{low}, {high}], got {self.face_scale}")
        for name in ("expression_probability", "perturbation_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("ambient_range", "diffuse_range", "specular_range", "shininess_range"):
            low, high = getattr(self, name)
            if not 0.0 <= low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high")


@dataclass(frozen=True)
class Deformation:
    """A one-sided shape deformation: ``side`` +1 is +x (image right in the canonical frame)."""

    kind: str
    side: int
    amount: float


@dataclass(frozen=True)
class Perturbation:
    """An asymmetric albedo perturbation centred at canonical (x, y), world units at depth 1."""

    kind: str
    x: float
    y: float
    size: float
    alpha: float
    colour: tuple[float, float, float]
    extra: tuple[float, ...] = ()
    """Kind-specific: a strand's end offset and bend (dx, dy, bend); a patch's angle and aspect."""


@dataclass(frozen=True)
class FaceSpec:
    """Every random draw of one sample (shapes without a batch dimension)."""

    index: int
    seed: int
    shape: Tensor
    """Identity parameters (len(SHAPE_RANGES),), in :data:`SHAPE_RANGES` order."""
    colours: Tensor
    """(5, 3): skin, lips, hair, brows, iris."""
    albedo: Tensor
    """(4,): cheek redness, hairline v, has hair (0/1), skin mottling amplitude."""
    mottle: Tensor
    """(3, 8, 8) low-resolution skin noise in [-1, 1] (symmetrised when used)."""
    angles: Tensor
    """(3,) (rx, ry, rz) = (pitch, yaw, roll) in radians."""
    translation: Tensor
    """(3,) world units."""
    light: Tensor
    """(6,): ambient, diffuse, lx, ly (direction normalize(lx, ly, 1)), specular, shininess."""
    expressions: tuple[Deformation, ...]
    perturbations: tuple[Perturbation, ...]
    background_kind: str
    background: Tensor
    """(3, S, S) in [0, 1]."""


@dataclass(frozen=True)
class CanonicalFaces:
    """Faces in their canonical (frontal, unposed) frame.

    Attributes:
        depth: depth with the background at 1.1, (B, 1, S, S).
        surface: the face surface continued flat at ``rim_depth`` outside the outline: the mesh
            that is shaded and rendered (no wall between face and background), (B, 1, S, S).
        mask: inside the face outline, (B, 1, S, S) bool.
        indicator: 0.5 + signed distance to the outline in pixels, clamped to [0, 1]
            (B, 1, S, S); its rendered 0.5 level is the face's outline in the view.
        albedo: (B, 3, S, S) in [0, 1], defined everywhere (the face is where ``mask``).
    """

    depth: Tensor
    surface: Tensor
    mask: Tensor
    indicator: Tensor
    albedo: Tensor


@dataclass(frozen=True)
class SynthBatch:
    """Rendered faces and their ground truth.

    Attributes:
        image: (B, 3, S, S) in [0, 1].
        depth: ground-truth depth in the input view, background exactly 1.1, (B, 1, S, S).
        mask: foreground (the face) in the input view, (B, 1, S, S) bool; equals depth < 1.1.
        canonical: the unposed faces (:class:`CanonicalFaces`).
        rotation: (B, 3, 3), ``R = Rz·Ry·Rx`` of ``angles``.
        translation: (B, 3).
        angles: (B, 3) (pitch, yaw, roll) in radians.
        ambient: (B,). diffuse: (B,). specular: (B,). shininess: (B,).
        light_direction: unit vector towards the light in the canonical frame (model
            convention: +z faces the surface), (B, 3).
        specs: the per-sample draws, for metadata.
    """

    image: Tensor
    depth: Tensor
    mask: Tensor
    canonical: CanonicalFaces
    rotation: Tensor
    translation: Tensor
    angles: Tensor
    ambient: Tensor
    diffuse: Tensor
    light_direction: Tensor
    specular: Tensor
    shininess: Tensor
    specs: tuple[FaceSpec, ...]


# ------------------------------------------------------------------------------- sampling


def sample_generator(seed: int, index: int, salt: str = "unsup3d-synth") -> torch.Generator:
    """A CPU generator seeded by a 63-bit hash of (salt, seed, index) only.

    Each generator style has its own ``salt``, so that their draws are unrelated.
    """
    digest = hashlib.blake2b(f"{salt}:{seed}:{index}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


def _uniform(gen: torch.Generator, low: float, high: float, *shape: int) -> Tensor:
    return low + (high - low) * torch.rand(shape or (1,), generator=gen)


def _choice(gen: torch.Generator, count: int) -> int:
    return int(torch.randint(count, (1,), generator=gen))


def _colour(values: Sequence[float]) -> Tensor:
    return torch.tensor(values, dtype=torch.float32)


def _sample_shape(gen: torch.Generator) -> Tensor:
    low = torch.tensor([lo for _, lo, _ in SHAPE_RANGES])
    high = torch.tensor([hi for _, _, hi in SHAPE_RANGES])
    return low + (high - low) * torch.rand(len(SHAPE_RANGES), generator=gen)


def _sample_colours(gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """(5, 3) colours, (4,) albedo scalars and the (3, 8, 8) mottling noise."""
    tone = _uniform(gen, 0.0, 1.0)
    skin = torch.lerp(_colour(_SKIN_LIGHT), _colour(_SKIN_DARK), tone)
    skin = skin + _uniform(gen, -0.03, 0.03, 3)
    lips = skin * _colour((0.78, 0.52, 0.52)) + _uniform(gen, -0.04, 0.04, 3)
    hair = _colour(_HAIR_COLOURS[_choice(gen, len(_HAIR_COLOURS))]) + _uniform(gen, -0.03, 0.03, 3)
    brows = hair * _uniform(gen, 0.6, 0.9)
    iris = _colour(_IRIS_COLOURS[_choice(gen, len(_IRIS_COLOURS))])
    colours = torch.stack([skin, lips, hair, brows, iris]).clamp(0.02, 0.98)
    albedo = torch.cat([
        _uniform(gen, 0.0, 0.08),  # cheek redness
        _uniform(gen, -0.95, -0.62),  # hairline v
        (torch.rand(1, generator=gen) < HAIR_PROBABILITY).float(),  # has hair
        _uniform(gen, 0.01, 0.05),  # mottling amplitude
    ])  # fmt: skip
    mottle = _uniform(gen, -1.0, 1.0, 3, _NOISE_SIDE, _NOISE_SIDE)
    return colours, albedo, mottle


def _sample_view(gen: torch.Generator, cfg: SynthConfig) -> tuple[Tensor, Tensor]:
    """Angles (3,) in radians and translation (3,)."""
    limits = torch.tensor([cfg.pitch_range_deg, cfg.yaw_range_deg, cfg.roll_range_deg])
    angles = (limits * _uniform(gen, -1.0, 1.0, 3)).deg2rad()
    xy = cfg.xy_translation_range * _uniform(gen, -1.0, 1.0, 2)
    return angles, torch.cat([xy, torch.zeros(1)])


def _sample_light(gen: torch.Generator, cfg: SynthConfig) -> Tensor:
    return torch.cat([
        _uniform(gen, *cfg.ambient_range),
        _uniform(gen, *cfg.diffuse_range),
        _uniform(gen, -cfg.light_xy_range, cfg.light_xy_range, 2),
        _uniform(gen, *cfg.specular_range),
        _uniform(gen, *cfg.shininess_range),
    ])  # fmt: skip


def _sample_expressions(gen: torch.Generator, probability: float) -> tuple[Deformation, ...]:
    applied, second = torch.rand(2, generator=gen).tolist()
    if applied >= probability:
        return ()
    count = 1 + int(second < SECOND_EXPRESSION_PROBABILITY)  # one deformation, sometimes two
    amounts = {"smile": 0.004, "brow_raise": 0.003, "cheek_puff": 0.005, "mouth_shift": 0.004}
    picked = []
    for _ in range(count):
        kind = EXPRESSION_KINDS[_choice(gen, len(EXPRESSION_KINDS))]
        side = 1 if float(torch.rand(1, generator=gen)) < HALF else -1
        amount = amounts[kind] * float(_uniform(gen, 0.5, 1.0))
        picked.append(Deformation(kind, side, round(amount, 6)))
    return tuple(picked)


def _sample_perturbations(
    gen: torch.Generator, probability: float, hair: Tensor
) -> tuple[Perturbation, ...]:
    if float(torch.rand(1, generator=gen)) >= probability:
        return ()
    picked = []
    for _ in range(1 + _choice(gen, 3)):
        kind = PERTURBATION_KINDS[_choice(gen, len(PERTURBATION_KINDS))]
        x, y = (float(d) for d in _uniform(gen, -0.045, 0.045, 2))
        alpha = float(_uniform(gen, 0.6, 1.0))
        colour = torch.rand(3, generator=gen)
        extra = tuple(float(d) for d in _uniform(gen, -1.0, 1.0, 3))
        if kind == "spot":
            size, colour = float(_uniform(gen, 0.0025, 0.006)), colour * 0.45
        elif kind == "hair_strand":
            size, colour, y = float(_uniform(gen, 0.0012, 0.0022)), hair, y - 0.035
        elif kind == "patch":
            size = float(_uniform(gen, 0.006, 0.018))
        else:
            raise ValueError(f"unknown perturbation {kind!r}")
        numbers = [round(n, 6) for n in (x, y, size, alpha)]
        rounded = tuple(round(float(c), 6) for c in colour)
        picked.append(Perturbation(kind, *numbers, rounded, tuple(round(e, 6) for e in extra)))
    return tuple(picked)


def sample_face(index: int, seed: int, cfg: SynthConfig) -> FaceSpec:
    """Draw every random choice of sample ``index`` of dataset ``seed``.

    The draws depend on (seed, index) and the ranges in ``cfg`` only; the image size changes
    the background's resolution, not the face.
    """
    gen = sample_generator(seed, index)
    shape = _sample_shape(gen)
    colours, albedo, mottle = _sample_colours(gen)
    angles, translation = _sample_view(gen, cfg)
    light = _sample_light(gen, cfg)
    expressions = _sample_expressions(gen, cfg.expression_probability)
    perturbations = _sample_perturbations(gen, cfg.perturbation_probability, colours[2])
    kind, background = _background(gen, cfg.image_size)
    return FaceSpec(
        index, seed, shape, colours, albedo, mottle, angles, translation, light,
        expressions, perturbations, kind, background,
    )  # fmt: skip


# ---------------------------------------------------------------------------- backgrounds


def _background(gen: torch.Generator, size: int) -> tuple[str, Tensor]:
    """A random background (3, S, S); every kind makes the same number of draws."""
    kind = BACKGROUND_KINDS[_choice(gen, len(BACKGROUND_KINDS))]
    first, second = _uniform(gen, 0.05, 0.95, 2, 3)
    angle, scale = float(_uniform(gen, 0.0, 2 * math.pi)), float(_uniform(gen, 0.0, 1.0))
    coarse = _uniform(gen, 0.05, 0.95, 3, _NOISE_SIDE, _NOISE_SIDE)
    coords = torch.linspace(-1.0, 1.0, size)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    along = math.cos(angle) * x + math.sin(angle) * y  # (S, S) in about [-1.4, 1.4]
    across = -math.sin(angle) * x + math.cos(angle) * y
    if kind == "solid":
        weight = torch.zeros_like(x)
    elif kind == "gradient":
        weight = (along / 1.42 + 1) / 2
    elif kind == "noise":
        side = 2 + int(scale * (_NOISE_SIDE - 2))  # 2..8 cells across
        grid = coarse[None, :, :side, :side]  # (1, 3, side, side)
        smooth = F.interpolate(grid, size=(size, size), mode="bicubic", align_corners=True)
        return kind, smooth[0].clamp(0, 1)
    elif kind == "stripes":
        weight = (torch.sin(along * math.pi * (2 + 6 * scale)) + 1) / 2
    elif kind == "checker":
        cells = 2 + 5 * scale
        weight = ((torch.floor(along * cells) + torch.floor(across * cells)) % 2).float()
    else:
        raise ValueError(f"unknown background {kind!r}")
    return kind, torch.lerp(first[:, None, None], second[:, None, None], weight[None])


# ------------------------------------------------------------------------------ geometry


def canonical_coords(size: int, fov_deg: float) -> tuple[Tensor, Tensor]:
    """World x and y (S, S) of the pixel rays at depth 1; x is exactly mirror-antisymmetric."""
    ramp = torch.linspace(-1.0, 1.0, size) * math.tan(math.radians(fov_deg) / 2)
    ramp = (ramp - ramp.flip(0)) / 2  # exact: ramp[i] == -ramp[S-1-i]
    y, x = torch.meshgrid(ramp, ramp, indexing="ij")
    return x, y


def _param(shape: Tensor, name: str) -> Tensor:
    """One identity parameter per sample, ready to broadcast over (B, S, S)."""
    return shape[:, SHAPE_INDEX[name], None, None]


def _gauss(du: Tensor, dv: Tensor, su: float | Tensor, sv: float | Tensor) -> Tensor:
    return torch.exp(-((du / su) ** 2) - (dv / sv) ** 2)


def _face_frame(x: Tensor, y: Tensor, shape: Tensor) -> tuple[Tensor, Tensor]:
    """Normalised face coordinates u, v (B, S, S): the outline is near u² + v² = 1."""
    u = x / _param(shape, "half_width")
    v = (y - _param(shape, "centre_y")) / _param(shape, "half_height")
    return u, v


def _outline(u: Tensor, v: Tensor, shape: Tensor) -> Tensor:
    """1 − r² of the egg-shaped outline (positive inside), (B, S, S)."""
    taper = 1 - _param(shape, "jaw_taper") * v.clamp(0, 1) ** 2
    return 1 - (u / taper) ** 2 - v**2


def _eyes_and_brows(au: Tensor, v: Tensor, shape: Tensor) -> Tensor:
    spacing, height = _param(shape, "eye_spacing"), _param(shape, "eye_height")
    eye = _param(shape, "eye_depth")
    socket = -eye * _gauss(au - spacing, v - height, 0.20, 0.13)
    ball = 0.6 * eye * _gauss(au - spacing, v - height, 0.12, 0.07)
    brow_v = v - height + 0.17
    ridge = _param(shape, "brow") * torch.exp(-((au / 0.65) ** 4) - (brow_v / 0.07) ** 2)
    temple = -0.5 * eye * _gauss(au - 0.78, v - height + 0.2, 0.14, 0.22)
    return socket + ball + ridge + temple


def _nose(au: Tensor, v: Tensor, shape: Tensor) -> Tensor:
    tip, root = _param(shape, "nose_tip"), _param(shape, "eye_height") - 0.05
    height, width = _param(shape, "nose_height"), _param(shape, "nose_width")
    along = ((v - root) / (tip - root)).clamp(0, 1)
    below = torch.exp(-(((v - tip).clamp(min=0) / 0.09) ** 2))
    sigma = 0.09 + (width - 0.09) * along
    ridge = height * along**1.3 * below * torch.exp(-((au / sigma) ** 2))
    alae = 0.3 * height * _gauss(au - 0.7 * width, v - tip - 0.02, 0.08, 0.06)
    nasion = -0.15 * height * _gauss(au, v - root, 0.12, 0.06)
    return ridge + alae + nasion


def _mouth_and_chin(au: Tensor, v: Tensor, shape: Tensor) -> Tensor:
    mouth, lips, chin = _param(shape, "mouth_y"), _param(shape, "lips"), _param(shape, "chin")
    muzzle = 1.5 * lips * _gauss(au, v - mouth, 0.42, 0.18)
    upper = lips * torch.exp(-((au / 0.30) ** 4) - ((v - mouth + 0.05) / 0.04) ** 2)
    lower = 1.2 * lips * torch.exp(-((au / 0.26) ** 4) - ((v - mouth - 0.06) / 0.05) ** 2)
    slit = -0.8 * lips * torch.exp(-((au / 0.30) ** 4) - ((v - mouth) / 0.02) ** 2)
    sulcus = -0.5 * chin * _gauss(au, v - mouth - 0.19, 0.25, 0.05)
    point = chin * _gauss(au, v - 0.8, 0.28, 0.12)
    cheek_v = v - _param(shape, "nose_tip") + 0.05
    cheeks = _param(shape, "cheek") * _gauss(au - 0.5, cheek_v, 0.22, 0.2)
    return muzzle + upper + lower + slit + sulcus + point + cheeks


def _expression(u: Tensor, v: Tensor, shape: Tensor, deformation: Deformation) -> Tensor:
    """One one-sided deformation (S, S) of a single face (``u``, ``v`` and ``shape`` of it)."""
    side, amount = deformation.side, deformation.amount
    mouth, tip = _param(shape, "mouth_y")[0], _param(shape, "nose_tip")[0]
    if deformation.kind == "smile":
        corner = _gauss(u - side * 0.32, v - mouth + 0.03, 0.12, 0.08)
        return amount * (corner + 0.5 * _gauss(u - side * 0.48, v - tip, 0.18, 0.15))
    if deformation.kind == "brow_raise":
        eyes = _param(shape, "eye_spacing")[0], _param(shape, "eye_height")[0]
        return amount * _gauss(u - side * eyes[0], v - eyes[1] + 0.25, 0.22, 0.10)
    if deformation.kind == "cheek_puff":
        return amount * _gauss(u - side * 0.45, v - mouth + 0.1, 0.2, 0.18)
    if deformation.kind == "mouth_shift":
        return amount * side * (u / 0.3) * _gauss(u, v - mouth, 0.35, 0.12)
    raise ValueError(f"unknown expression {deformation.kind!r}")


def face_shape(
    x: Tensor, y: Tensor, shape: Tensor, expressions: Sequence[Sequence[Deformation]] = ()
) -> tuple[Tensor, Tensor]:
    """Canonical face surface and the signed distance to its outline.

    Args:
        x: world x at depth 1 from :func:`canonical_coords`, (S, S).
        y: world y at depth 1, (S, S).
        shape: identity parameters, (B, len(SHAPE_RANGES)).
        expressions: per sample, the deformations to add (empty: exactly symmetric).

    Returns:
        The surface depth (B, 1, S, S), continued at ``rim_depth`` outside the outline, and
        the signed distance to the outline in pixels (B, 1, S, S), positive inside.
    """
    u, v = _face_frame(x, y, shape)
    inner = _outline(u, v, shape)
    au = u.abs()
    radius2 = (1 - inner).clamp(0, 1)  # ρ², 0 at the centre, 1 on the outline
    dome = _param(shape, "relief") * (1 - radius2 ** (_param(shape, "dome_exponent") / 2))
    forehead = -_param(shape, "forehead_slope") * (-v - 0.2).clamp(min=0) ** 2
    detail = _eyes_and_brows(au, v, shape) + _nose(au, v, shape) + _mouth_and_chin(au, v, shape)
    for k, deformations in enumerate(expressions):
        for deformation in deformations:
            detail[k] += _expression(u[k], v[k], shape[k : k + 1], deformation)
    fade = (inner / 0.15).clamp(0, 1)  # details vanish at the outline: the surface stays C0
    height = (dome + (forehead + detail) * fade) * (inner > 0)
    surface = _param(shape, "rim_depth") - height
    return surface[:, None], _signed_distance(inner)[:, None]


def _signed_distance(inner: Tensor) -> Tensor:
    """Signed distance in pixels (B, S, S) to the zero level of ``inner`` (B, S, S).

    ``inner`` divided by its gradient's length; mirror-symmetric when ``inner`` is (central
    differences only change sign under the mirror).
    """
    grad_y, grad_x = torch.gradient(inner, dim=(1, 2))
    return inner / (grad_x**2 + grad_y**2).sqrt().clamp(min=1e-6)


# -------------------------------------------------------------------------------- albedo


def _soft(distance: Tensor, softness: float) -> Tensor:
    """1 inside (distance < 0), 0 outside, linear over ``softness``."""
    return (0.5 - distance / softness).clamp(0, 1)


def _features(au: Tensor, v: Tensor, shape: Tensor, albedo: Tensor) -> dict[str, Tensor]:
    """Coverage maps (B, S, S) of the symmetric albedo features."""
    spacing, height = _param(shape, "eye_spacing"), _param(shape, "eye_height")
    mouth = _param(shape, "mouth_y")
    eye_u = (au - spacing) * _param(shape, "half_width")  # world offsets from the eye centre
    eye_v = (v - height) * _param(shape, "half_height")
    sclera = _soft(((au - spacing) / 0.15) ** 2 + ((v - height) / 0.05) ** 2 - 1, 0.6)
    iris = sclera * _soft((eye_u**2 + eye_v**2).sqrt() - 0.0042, 0.002)
    pupil = sclera * _soft((eye_u**2 + eye_v**2).sqrt() - 0.0017, 0.0015)
    lid = _gauss(au - spacing, v - height + 0.05, 0.17, 0.03) * (1 - sclera)
    arch = v - (height - 0.16 - 0.06 * (1 - ((au - spacing) / 0.25) ** 2))
    brow = _soft(arch.abs() - 0.03, 0.04) * _soft((au - spacing).abs() - 0.22, 0.08)
    upper = torch.exp(-((au / 0.29) ** 4) - ((v - mouth + 0.045) / 0.035) ** 2)
    lower = torch.exp(-((au / 0.25) ** 4) - ((v - mouth - 0.06) / 0.045) ** 2)
    hairline = albedo[:, 1, None, None] + 0.35 * au**2
    hair = _soft(v - hairline, 0.08) * albedo[:, 2, None, None]
    cheek = _gauss(au - 0.5, v - _param(shape, "nose_tip"), 0.2, 0.18)
    return {"sclera": sclera, "iris": iris, "pupil": pupil, "lid": lid, "brow": brow,
            "lips": (upper + lower).clamp(max=1), "hair": hair, "cheek": cheek}  # fmt: skip


def _paint(base: Tensor, coverage: Tensor, colour: Tensor) -> Tensor:
    """Blend ``colour`` (B, 3) over ``base`` (B, 3, S, S) with ``coverage`` (B, S, S)."""
    return torch.lerp(base, colour[:, :, None, None].expand_as(base), coverage[:, None])


def face_albedo(x: Tensor, y: Tensor, specs: Sequence[FaceSpec]) -> Tensor:
    """Symmetric albedo of the faces, then their asymmetric perturbations.

    Returns:
        Albedo (B, 3, S, S) in [0, 1], defined everywhere (the renderer uses the face part).
    """
    shape = torch.stack([s.shape for s in specs])
    colours = torch.stack([s.colours for s in specs])
    albedo = torch.stack([s.albedo for s in specs])
    u, v = _face_frame(x, y, shape)
    maps = _features(u.abs(), v, shape, albedo)
    mottle = F.interpolate(torch.stack([s.mottle for s in specs]), size=x.shape, mode="bilinear",
                           align_corners=True)  # fmt: skip
    mottle = (mottle + mottle.flip(-1)) / 2  # (B, 3, S, S), exactly symmetric
    base = colours[:, 0, :, None, None] * (1 + albedo[:, 3, None, None, None] * mottle)
    redder = base.new_tensor([1.0, -0.3, -0.3]).view(1, 3, 1, 1)
    base = base + albedo[:, 0, None, None, None] * maps["cheek"][:, None] * redder
    white = base.new_tensor([0.9, 0.88, 0.85]).expand(len(specs), 3)
    base = _paint(base, 0.5 * maps["lid"], 0.6 * colours[:, 0])
    base = _paint(base, maps["sclera"], white)
    base = _paint(base, maps["iris"], colours[:, 4])
    base = _paint(base, maps["pupil"], 0.03 * white)
    base = _paint(base, 0.9 * maps["brow"], colours[:, 3])
    base = _paint(base, 0.85 * maps["lips"], colours[:, 1])
    base = _paint(base, maps["hair"], colours[:, 2])
    for k, spec in enumerate(specs):
        for perturbation in spec.perturbations:
            coverage = _perturbation_coverage(x, y, perturbation)
            base[k] = torch.lerp(base[k], base.new_tensor(perturbation.colour)[:, None, None],
                                 perturbation.alpha * coverage)  # fmt: skip
    return base.clamp(0, 1)


def _perturbation_coverage(x: Tensor, y: Tensor, p: Perturbation) -> Tensor:
    """Coverage (S, S) in [0, 1] of one perturbation on the canonical grid."""
    pixel = 2 * float(x[0, 1] - x[0, 0])  # soft edge of about two pixels
    dx, dy = x - p.x, y - p.y
    if p.kind == "spot":
        return _soft((dx**2 + dy**2).sqrt() - p.size, pixel)
    if p.kind == "patch":
        angle, aspect = p.extra[0] * math.pi, 1.5 + 0.5 * p.extra[1]
        along = math.cos(angle) * dx + math.sin(angle) * dy
        across = -math.sin(angle) * dx + math.cos(angle) * dy
        box = torch.maximum(along.abs() - p.size * aspect, across.abs() - p.size / aspect)
        return _soft(box, pixel)
    if p.kind == "hair_strand":
        return _soft(_strand_distance(dx, dy, p) - p.size, pixel)
    raise ValueError(f"unknown perturbation {p.kind!r}")


def _strand_distance(dx: Tensor, dy: Tensor, p: Perturbation) -> Tensor:
    """Distance (S, S) to a bent strand starting at the perturbation's centre, going down."""
    t = torch.linspace(0.0, 1.0, 17)
    end_x, end_y, bend = 0.03 * p.extra[0], 0.025 + 0.015 * p.extra[1], 0.015 * p.extra[2]
    px = end_x * t + bend * 4 * t * (1 - t)  # (T,) quadratic curve from (0, 0)
    py = end_y * t
    distance = ((dx[..., None] - px) ** 2 + (dy[..., None] - py) ** 2).sqrt()  # (S, S, T)
    return distance.amin(dim=-1)


# ------------------------------------------------------------------------------ rendering


def canonical_faces(specs: Sequence[FaceSpec], cfg: SynthConfig) -> CanonicalFaces:
    """The faces of ``specs`` in their canonical frame (shape, outline and albedo)."""
    x, y = canonical_coords(cfg.image_size, cfg.renderer.fov_deg)
    x, y = x / cfg.face_scale, y / cfg.face_scale  # a larger face: the same face, zoomed in
    shape = torch.stack([s.shape for s in specs])
    surface, distance = face_shape(x, y, shape, [s.expressions for s in specs])
    mask = distance > 0
    depth = torch.where(mask, surface, surface.new_tensor(BACKGROUND_DEPTH))
    indicator = (distance + 0.5).clamp(0, 1)
    albedo = face_albedo(x, y, specs)
    return CanonicalFaces(depth, surface, mask, indicator, albedo)


def _shade(
    faces: CanonicalFaces, points: Tensor, light: Tensor, view: tuple[Tensor, Tensor], pivot: float
) -> Tensor:
    """Albedo × (ambient + diffuse) + a weak white Blinn-Phong highlight, (B, 3, S, S).

    The light lives in the canonical frame, as the model's; the highlight uses the true
    camera position seen from that frame, so it moves with the viewpoint. ``points`` are the
    back-projected surface (B, S, S, 3); ``view`` is (rotation (B, 3, 3), translation (B, 3)).
    """
    ambient, diffuse, specular, shininess = light[:, 0], light[:, 1], light[:, 4], light[:, 5]
    direction = light_direction(light)  # (B, 3)
    normals = points_to_normals(points)  # (B, S, S, 3), away from the camera
    shading = lambertian_shading(normals, direction, ambient, diffuse)  # (B, 1, S, S)
    rotation, translation = view
    centre = points.new_tensor([0.0, 0.0, pivot])
    camera = ((-translation - centre)[:, None] @ rotation)[:, 0] + centre  # Rᵀ(0 − t − c) + c
    to_camera = F.normalize(camera[:, None, None] - points, dim=-1)  # (B, S, S, 3)
    halfway = F.normalize(to_camera - direction[:, None, None], dim=-1)  # (B, S, S, 3)
    lit = (normals * direction[:, None, None]).sum(-1) > 0
    cosine = (-(normals * halfway).sum(-1)).clamp(min=0) * lit  # (B, S, S)
    highlight = specular[:, None, None] * cosine ** shininess[:, None, None]
    return faces.albedo * shading + highlight[:, None]


def light_direction(light: Tensor) -> Tensor:
    """Unit light directions (B, 3) = normalize(lx, ly, 1) from light parameters (B, 6)."""
    raw = torch.cat([light[:, 2:4], torch.ones_like(light[:, :1])], dim=1)
    return raw / raw.norm(dim=1, keepdim=True)


def _pose(
    renderer: Renderer, faces: CanonicalFaces, points: Tensor, shaded: Tensor,
    view: tuple[Tensor, Tensor],
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Rendered colour (B, 3, S, S), depth (B, 1, S, S) and face mask (B, 1, S, S) in the view.

    The rendered mesh is the continued ``surface`` (no wall at the outline, so nothing is
    stretched there and the face never occludes itself with a wall). One rasterization: the
    face indicator and the posed vertex depth ride along as extra colour channels
    (perspective-correct barycentrics interpolate z exactly as the rasterizer's own depth, since
    z is linear over a triangle).
    """
    rotation, translation = view
    posed_z = rigid_transform(points, rotation, translation, renderer.cfg.rot_center_depth)[..., 2]
    channels = torch.cat([shaded, faces.indicator, posed_z[:, None]], dim=1)
    rendered, covered = renderer.render_view(channels, faces.surface, rotation, translation, 0.0)
    coverage, depth = rendered[:, 3:4], rendered[:, 4:5]  # (B, 1, S, S) each
    mask = (coverage >= COVERAGE_THRESHOLD) & (depth < BACKGROUND_DEPTH - FOREGROUND_MARGIN)
    return rendered[:, :3], depth.clamp(min=MIN_DEPTH), mask & (covered > 0)


def render_faces(specs: Sequence[FaceSpec], cfg: SynthConfig) -> SynthBatch:
    """Build, light, pose and render a batch of faces over their backgrounds.

    Args:
        specs: the draws of each sample (:func:`sample_face`), all of ``cfg.image_size``.
        cfg: ranges and camera.

    Returns:
        A :class:`SynthBatch`; image and depth share the foreground mask.
    """
    renderer = Renderer(cfg.renderer)
    faces = canonical_faces(specs, cfg)
    angles = torch.stack([s.angles for s in specs])
    translation = torch.stack([s.translation for s in specs])
    light = torch.stack([s.light for s in specs])
    rotation = euler_to_rotation(angles)
    points = renderer.points(faces.surface)  # (B, S, S, 3)
    view = (rotation, translation)
    shaded = _shade(faces, points, light, view, cfg.renderer.rot_center_depth)
    colour, depth, mask = _pose(renderer, faces, points, shaded, view)
    background = torch.stack([s.background for s in specs])
    return SynthBatch(
        image=torch.where(mask, colour, background).clamp(0, 1),
        depth=torch.where(mask, depth, depth.new_tensor(BACKGROUND_DEPTH)),
        mask=mask,
        canonical=faces,
        rotation=rotation,
        translation=translation,
        angles=angles,
        ambient=light[:, 0],
        diffuse=light[:, 1],
        light_direction=light_direction(light),
        specular=light[:, 4],
        shininess=light[:, 5],
        specs=tuple(specs),
    )


def synthesize(indices: Sequence[int], seed: int, cfg: SynthConfig | None = None) -> SynthBatch:
    """Render samples ``indices`` of dataset ``seed`` in one batch."""
    cfg = cfg or SynthConfig()
    return render_faces([sample_face(i, seed, cfg) for i in indices], cfg)


def synthetic_sample(index: int, seed: int, size: int = 64) -> tuple[Tensor, Tensor]:
    """Generate one posed, lit face image and its ground-truth depth in the input view.

    Args:
        index: sample number.
        seed: dataset seed (different splits use different seeds).
        size: image side in pixels.

    Returns:
        Image (3, S, S) in [0, 1] and depth (1, S, S) in world units with the background at
        ``BACKGROUND_DEPTH``.
    """
    batch = synthesize([index], seed, SynthConfig(image_size=size))
    return batch.image[0], batch.depth[0]
