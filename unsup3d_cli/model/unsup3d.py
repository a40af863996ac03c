"""The Unsup3D model: image → depth, albedo, light, viewpoint and confidence."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from unsup3d_cli.checks import check_shape
from unsup3d_cli.geometry import euler_to_rotation
from unsup3d_cli.model.decomposition import (
    DEPTH_CENTRINGS,
    Decomposition,
    Reconstruction,
    decode_depth,
    decode_light,
    decode_view,
    depth_to_raw,
    fill_border,
)
from unsup3d_cli.model.networks import ConfidenceNet, Encoder, EncoderDecoder, widen
from unsup3d_cli.render import Renderer, lambertian_shading, sample_canonical

LIGHT_FRAMES = ("canonical", "view")
"""Frames the light direction can be predicted in (``ModelConfig.light_frame``)."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and output ranges of the Unsup3D model (reference §2)."""

    min_depth: float = 0.9
    """Smallest canonical depth, in world units."""
    max_depth: float = 1.1
    """Largest canonical depth, in world units."""
    border_depth: float | None = None
    """Depth forced on the two leftmost and rightmost columns; None means 0.7·max + 0.3·min."""
    rotation_range_deg: float = 60.0
    """Largest viewpoint rotation about each axis, in degrees."""
    xy_translation_range: float = 0.1
    """Largest viewpoint translation along x and y, in world units."""
    z_translation_range: float = 0.0
    """Largest viewpoint translation along z, in world units (0 for faces, 0.1 for cats)."""
    scale_range: float = 0.0
    """Largest relative change of the object's size from the canonical frame to the view (0:
    none, the paper's). With r > 0 the viewpoint network predicts a seventh output, a scale
    in [1/(1 + r), 1 + r] applied about the rotation pivot before the rotation: a head that
    fills more or less of the frame than the canonical one grows or shrinks, relief
    included, while the canonical depth and albedo keep one size. Not in the paper; for
    loosely framed faces, where a canonical frame that must also carry each face's size
    learns one mean-size head, and views turned less than the truth suit that head best."""
    view_depth_range: tuple[float, float] | None = None
    """(lo, hi) clamp of the depth rendered in the view; pixels at ``hi`` are invalid. None:
    the canonical range widened by half its size on each side, the original's (0.8–1.2 for
    0.9–1.1). Not in the paper otherwise: a head moved along the view axis by more than that
    margin (``z_translation_range``) needs a wider clamp, or it leaves the valid range."""
    min_ambient: float = 0.0
    """Smallest ambient light intensity."""
    max_ambient: float = 1.0
    """Largest ambient light intensity."""
    min_diffuse: float = 0.0
    """Smallest diffuse light intensity."""
    max_diffuse: float = 1.0
    """Largest diffuse light intensity."""
    light_frame: str = "canonical"
    """Frame of the predicted light direction: 'canonical' (the paper's: the light turns with
    the object) or 'view' (not in the paper: the light is fixed in the camera's frame, and is
    turned into the canonical frame with the predicted view, ``d = Rᵀ·d_view``, before
    shading). Either frame can express any light; they differ in what a change of view does
    to the shading seen in the image. In the canonical frame a turn of the head moves its
    shading with it, so a light that is fixed in the camera's frame must be re-predicted for
    every pose, and on the mesh faces the canonical light takes up part of each head's turn
    (experiments/light_frame.py). In the view frame, turning the head keeps the image's
    shading pattern, and the gradient of the shading reaches the view through ``Rᵀ``.
    :class:`Decomposition` holds the canonical-frame direction either way."""
    use_confidence: bool = True
    """Predict per-pixel confidence maps for the losses (off: plain masked L1 and MSE)."""
    flip_albedo: bool = True
    """Flip the albedo in the mirrored branch (ablation switch)."""
    flip_depth: bool = True
    """Flip the depth in the mirrored branch (ablation switch)."""
    use_light: bool = True
    """Shade the albedo with the predicted light (off: the canonical image is the albedo)."""
    predict_view: bool = True
    """Predict the viewpoint (off: the identity view, for the supervised depth baseline)."""
    width: int = 64
    """Base channel width of the depth, albedo and confidence networks (multiple of 4, ≥ 16)."""
    encoder_width: int = 32
    """Base channel width of the viewpoint and light encoders."""
    albedo_width: int | None = None
    """Base channel width of the albedo network alone (None: ``width``, as in the paper). Not
    in the paper: a sharper canonical image for a width that the CPU can afford elsewhere."""
    depth_zdim: int = 256
    """Bottleneck size of the depth and albedo networks."""
    confidence_zdim: int = 128
    """Bottleneck size of the confidence network."""
    flat_depth_init: bool = False
    """Zero the depth network's last convolution at initialisation, so training starts from a
    flat canonical depth instead of the per-pixel noise of a random init (not in the paper)."""
    dome_depth_init: float = 0.0
    """Height, world units, of a learned mean depth map added to the depth network's output,
    initialised as a half-ellipsoid bump towards the camera in the middle of the canonical frame
    (:func:`dome_template`; 0: none, the paper's). Not in the paper: with a flat start, relief
    and viewpoint are at a saddle (a flat depth gives the view no gradient and vice versa), and
    nothing tells a convex relief from its concave twin."""
    depth_centring: str = "mean"
    """'mean' (the paper's): the depth network's output loses its per-image mean before the
    tanh, so the image's mean depth sits at the middle of the range, the rotation pivot.
    'none' (not in the paper): no centring, so a background can sit at the pivot while the
    object stands in front of it."""
    depth_rest: float | None = None
    """Canonical depth that a raw depth-network output of 0 decodes to, strictly inside
    (min_depth, max_depth); None: the middle of the range, the paper's. Not in the paper: with
    ``depth_centring='none'`` and an uneven range around it, the flat start (and the dome's
    rim) stays at the rotation pivot while the relief gets more room towards the camera than
    behind the pivot, as a head centred on the pivot needs (its nose in front, nothing of it
    behind)."""

    def __post_init__(self) -> None:
        """Reject a bad view depth clamp, scale range, albedo width or light frame."""
        if self.light_frame not in LIGHT_FRAMES:
            raise ValueError(
                f"model.light_frame must be one of {', '.join(LIGHT_FRAMES)}, "
                f"got {self.light_frame!r}"
            )
        if self.albedo_width is not None and (self.albedo_width < 4 or self.albedo_width % 4):
            raise ValueError(
                f"model.albedo_width must be a positive multiple of 4, got {self.albedo_width}"
            )
        if self.view_depth_range is not None:
            lo, hi = self.view_depth_range
            if not lo < hi:
                raise ValueError(f"model.view_depth_range must have lo < hi, got [{lo}, {hi}]")
        if not 0.0 <= self.scale_range < 1.0:
            raise ValueError(f"model.scale_range must be in [0, 1), got {self.scale_range}")


PRECISIONS = ("fp32", "bf16")
"""Arithmetic of the networks at inference (:meth:`Unsup3D.set_precision`)."""


def has_native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 convolutions natively, so 'bf16' is the faster choice.

    True for a CUDA device of compute capability 8.0 or more (``torch.cuda.is_bf16_supported``
    also counts emulation, and asks about the current device, not ``device``), and for a CPU
    with AVX512-BF16 or AMX instructions; False elsewhere (emulated bfloat16 runs slower than
    fp32).
    """
    if device.type == "cuda":  # native bfloat16 from Ampere (compute capability 8.0) on
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type != "cpu":
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private in torch.cpu
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


class Unsup3D(nn.Module):
    """Image → :class:`Decomposition` (``forward``), and → :class:`Reconstruction`.

    Args:
        cfg: architecture and output ranges.
        renderer: the renderer used by :meth:`reconstruct`.
    """

    precision: str = "fp32"
    """'fp32', or 'bf16': the networks' convolutions under bfloat16 autocast (see
    :meth:`set_precision`)."""

    light_mix: float = 1.0
    """How much of the predicted light shades the canonical image, in [0, 1]: the ambient and
    diffuse terms become ``1 − m + m·ka`` and ``m·kd``, so 0 renders the albedo unshaded (as
    ``use_light`` off) and 1 (the default, and always outside training) the predicted light.
    Set by the trainer's light warm-up (``TrainConfig.light_warmup_steps``)."""

    light_direction_mix: float = 1.0
    """How far the light direction is from frontal to the predicted one, in [0, 1]: the
    direction is ``normalize((1 − m)·(0, 0, 1) + m·d)``, so 0 lights every image from the
    camera's side while the intensities are still predicted. 1 (the default, and always outside
    training): the predicted direction. Set by the trainer's frontal light warm-up
    (``TrainConfig.light_warmup``)."""

    def __init__(self, cfg: ModelConfig, renderer: Renderer) -> None:
        super().__init__()
        if cfg.min_depth >= cfg.max_depth:
            raise ValueError(f"model.min_depth ({cfg.min_depth}) must be < model.max_depth")
        self.cfg = cfg
        self.renderer = renderer
        if cfg.depth_centring not in DEPTH_CENTRINGS:
            raise ValueError(
                f"model.depth_centring must be one of {', '.join(DEPTH_CENTRINGS)}, "
                f"got {cfg.depth_centring!r}"
            )
        self.depth_net = EncoderDecoder(1, cfg.width, cfg.depth_zdim)
        if cfg.flat_depth_init:  # the rest depth (default mid-range) everywhere at the start
            nn.init.zeros_(self.depth_net.output_layer.weight)  # its input is not 0: it learns
        rest = self.rest_depth
        if not cfg.min_depth < rest < cfg.max_depth:
            raise ValueError(
                f"model.depth_rest must be inside ({cfg.min_depth}, {cfg.max_depth}), got {rest}"
            )
        room = rest - cfg.min_depth
        if not 0.0 <= cfg.dome_depth_init < room:
            raise ValueError(
                f"model.dome_depth_init must be in [0, {room:g}) (the depth range in front of "
                f"model.depth_rest), got {cfg.dome_depth_init}"
            )
        self.depth_template = None
        if cfg.dome_depth_init > 0:  # raw units: the dome's top decodes to rest − dome exactly
            peak = depth_to_raw(rest - cfg.dome_depth_init, cfg.min_depth, cfg.max_depth)
            raw_height = depth_to_raw(rest, cfg.min_depth, cfg.max_depth) - peak
            self.depth_template = nn.Parameter(-raw_height * dome_template(64))
        albedo_width = cfg.width if cfg.albedo_width is None else cfg.albedo_width
        self.albedo_net = EncoderDecoder(3, albedo_width, cfg.depth_zdim, use_tanh=True)
        view_outputs = 7 if cfg.scale_range > 0 else 6
        self.view_net = Encoder(view_outputs, cfg.encoder_width) if cfg.predict_view else None
        self.light_net = Encoder(4, cfg.encoder_width) if cfg.use_light else None
        self.confidence_net = (
            ConfidenceNet(cfg.width, cfg.confidence_zdim) if cfg.use_confidence else None
        )
        self.to(memory_format=torch.channels_last)  # oneDNN/cuDNN convolutions run faster NHWC

    def set_precision(self, precision: str) -> None:
        """Run the networks in 'fp32' (default) or under bfloat16 autocast ('bf16').

        'bf16': about 1.7× faster inference networks on CPUs with native bfloat16 (AVX512-BF16
        or AMX) and on GPUs, slower on other CPUs; training uses it through
        ``train.precision``. Only the networks change: their raw outputs are cast back to
        float32 before decoding, and rendering stays float32.

        Raises:
            ValueError: an unknown precision.
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision

    def network_autocast(self, like: Tensor) -> AbstractContextManager:
        """The autocast context of :attr:`precision` on ``like``'s device (a no-op for fp32)."""
        if self.precision != "bf16":
            return nullcontext()
        return torch.autocast(like.device.type, dtype=torch.bfloat16)

    @property
    def rest_depth(self) -> float:
        """Canonical depth of a raw 0 (``ModelConfig.depth_rest``, default mid-range)."""
        cfg = self.cfg
        return (cfg.min_depth + cfg.max_depth) / 2 if cfg.depth_rest is None else cfg.depth_rest

    @property
    def border_depth(self) -> float:
        """Depth of the border columns (default 0.7·max + 0.3·min)."""
        cfg = self.cfg
        if cfg.border_depth is not None:
            return cfg.border_depth
        return 0.7 * cfg.max_depth + 0.3 * cfg.min_depth

    @property
    def view_depth_range(self) -> tuple[float, float]:
        """Clamp of the rendered depth (``ModelConfig.view_depth_range``)."""
        if self.cfg.view_depth_range is not None:
            return self.cfg.view_depth_range
        margin = (self.cfg.max_depth - self.cfg.min_depth) / 2
        return self.cfg.min_depth - margin, self.cfg.max_depth + margin

    def forward(self, image: Tensor) -> Decomposition:
        """Predict the factors of a batch of images.

        Args:
            image: shape (B, 3, 64, 64), in [0, 1].

        Returns:
            The :class:`Decomposition`.
        """
        check_shape(image, "B 3 64 64", "image")
        signed = _signed(image)
        with self.network_autocast(signed):
            raw_depth, raw_albedo = self.depth_net(signed), self.albedo_net(signed)
            raw_light = self.light_net(signed) if self.light_net is not None else None
            raw_view = self.view_net(signed) if self.view_net is not None else None
            confidences = (None, None)
            if self.confidence_net is not None:
                confidences = self.confidence_net(signed)
        depth = self._decode_depth(widen(raw_depth))
        albedo = (widen(raw_albedo) + 1) / 2
        ambient, diffuse, light_direction = self._light(signed, raw_light)
        angles, translation, scale = self._view(signed, raw_view)
        if self.cfg.light_frame == "view":  # d = Rᵀ·d_view: P' = R·P turns normals by R
            rotation = euler_to_rotation(angles)  # (B, 3, 3)
            light_direction = (rotation.transpose(1, 2) @ light_direction[:, :, None])[:, :, 0]
        confidence, perceptual_confidence = (c if c is None else widen(c) for c in confidences)
        return Decomposition(
            depth=fill_border(depth, self.border_depth),
            depth_unbordered=depth,
            albedo=albedo,
            ambient=ambient,
            diffuse=diffuse,
            light_direction=light_direction,
            view_angles=angles,
            view_translation=translation,
            view_scale=scale,
            confidence=confidence,
            perceptual_confidence=perceptual_confidence,
        )

    def predict_view_depth(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The depth in the input view, running only the depth and viewpoint networks.

        The same tensors as ``reconstruct(forward(image), mirror=False)``'s ``view_depth`` and
        ``view_mask``, and the rotation of the predicted view angles, without the albedo,
        light and confidence networks, the shading or the image sampling (what evaluation
        needs, at a fraction of the cost).

        Args:
            image: shape (B, 3, 64, 64), in [0, 1].

        Returns:
            The view depth (B, 1, H, W), its validity mask (B, 1, H, W) and the viewpoint
            rotation (B, 3, 3).
        """
        check_shape(image, "B 3 64 64", "image")
        signed = _signed(image)
        with self.network_autocast(signed):
            raw_depth = self.depth_net(signed)
            raw_view = self.view_net(signed) if self.view_net is not None else None
        depth = self._decode_depth(widen(raw_depth))
        depth = fill_border(depth, self.border_depth)  # (B, 1, H, W)
        angles, translation, scale = self._view(signed, raw_view)  # (B, 3), (B, 3), (B,)
        rotation = euler_to_rotation(angles)  # (B, 3, 3)
        view_depth, view_mask, _ = self.renderer.warp_depth(
            depth, rotation, translation, self.view_depth_range, scale
        )
        return view_depth, view_mask, rotation

    def predict_view(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """The viewpoint network alone: rotation angles (B, 3) and translation (B, 3).

        Args:
            image: shape (B, 3, 64, 64), in [0, 1].
        """
        check_shape(image, "B 3 64 64", "image")
        if self.view_net is None:
            raise ValueError("this model has no viewpoint network")
        signed = _signed(image)
        with self.network_autocast(signed):
            raw_view = self.view_net(signed)
        angles, translation, _ = self._view(signed, raw_view)
        return angles, translation

    @torch.no_grad()
    def render_views(self, decomp: Decomposition, angles: Tensor, translation: Tensor) -> Tensor:
        """The canonical reconstruction of ``decomp`` seen from other views, in [0, 1].

        The canonical image (albedo × shading, the light attached to the object) and depth are
        warped as in :meth:`reconstruct`, at unit scale; the pixels the warp leaves uncovered
        take the canonical image's colour there, so no border marks the view.

        Args:
            decomp: B images' factors (not differentiated).
            angles: rotation angles (B, 3) in radians.
            translation: (B, 3).

        Returns:
            Images (B, 3, H, W).
        """
        scale = None if decomp.view_scale is None else torch.ones_like(decomp.view_scale)
        turned = replace(decomp, view_angles=angles, view_translation=translation, view_scale=scale)
        recon = self.reconstruct(turned, mirror=False)
        covered = recon.mask
        return (recon.image * covered + recon.canonical_image * (1 - covered)).clamp(0, 1)

    def _decode_depth(self, raw: Tensor) -> Tensor:
        """Raw depth-network output (B, 1, H, W) → canonical depth, before the border fill."""
        cfg = self.cfg
        if self.depth_template is not None:
            raw = raw + self.depth_template
        return decode_depth(raw, cfg.min_depth, cfg.max_depth, cfg.depth_centring, cfg.depth_rest)

    def _view(self, signed: Tensor, raw: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        if raw is None:  # supervised baseline: depth is predicted in the input view
            zeros = signed.new_zeros(signed.shape[0], 3)
            return zeros, zeros, None
        cfg = self.cfg
        return decode_view(
            widen(raw),
            cfg.rotation_range_deg,
            cfg.xy_translation_range,
            cfg.z_translation_range,
            cfg.scale_range,
        )

    def _light(self, signed: Tensor, raw: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        if raw is None:  # ablation: the canonical image is the albedo
            ones = signed.new_ones(signed.shape[0])
            direction = signed.new_zeros(signed.shape[0], 3)  # +z, filled on the device
            direction[:, 2] = 1.0
            return ones, torch.zeros_like(ones), direction
        cfg = self.cfg
        ambient, diffuse, direction = decode_light(
            widen(raw),
            (cfg.min_ambient, cfg.max_ambient),
            (cfg.min_diffuse, cfg.max_diffuse),
        )
        mix = self.light_mix
        if mix != 1.0:  # the light warm-up: unshaded at 0
            ambient, diffuse = 1.0 - mix + mix * ambient, mix * diffuse
        if self.light_direction_mix != 1.0:  # the frontal warm-up: from (0, 0, 1) at 0
            frontal = torch.zeros_like(direction)
            frontal[:, 2] = 1.0
            direction = torch.lerp(frontal, direction, self.light_direction_mix)  # z > 0: no 0
            direction = direction / direction.norm(dim=1, keepdim=True)
        return ambient, diffuse, direction

    def reconstruct(self, decomp: Decomposition, mirror: bool = True) -> Reconstruction:
        """Render the canonical and the mirrored reconstruction of the input view (§3.0–3.6).

        Args:
            decomp: output of :meth:`forward` for B images.
            mirror: also render the reconstruction from the mirrored canonical frame (what
                training needs); False renders the un-flipped one only, at half the cost.

        Returns:
            The :class:`Reconstruction`, batched 2B (un-flipped half first), or B without
            ``mirror``; its mask is then the un-flipped view's own.
        """
        cfg = self.cfg
        depth, albedo = decomp.depth, decomp.albedo  # (B, 1, H, W), (B, 3, H, W)
        light = (decomp.light_direction, decomp.ambient, decomp.diffuse)
        rotation = euler_to_rotation(decomp.view_angles)  # (B, 3, 3)
        translation, scale = decomp.view_translation, decomp.view_scale  # (B, 3), (B,) or None
        if mirror:
            depth = _with_mirror(depth, cfg.flip_depth)  # (2B, 1, H, W)
            albedo = _with_mirror(albedo, cfg.flip_albedo)  # (2B, 3, H, W)
            light = tuple(x.repeat(2, *([1] * (x.dim() - 1))) for x in light)
            rotation, translation = rotation.repeat(2, 1, 1), translation.repeat(2, 1)
            scale = None if scale is None else scale.repeat(2)
        normal = self.renderer.normals(depth)  # (N, H, W, 3), N = 2B or B
        shading = lambertian_shading(normal, *light)  # (N, 1, H, W)
        canonical_image = albedo * shading  # (N, 3, H, W)
        view_depth, view_mask, dropped = self.renderer.warp_depth(
            depth, rotation, translation, self.view_depth_range, scale
        )
        grid = self.renderer.inverse_grid(view_depth, rotation, translation, scale)  # (N, H, W, 2)
        # Sample around mid-grey: out-of-image samples read 0.5, the original's 0 in [-1, 1].
        warped = sample_canonical(canonical_image - 0.5, grid) + 0.5
        if mirror:
            original, mirrored = Reconstruction.split(view_mask)
            mask = (original * mirrored).detach()  # (B, 1, H, W)
            valid = mask.repeat(2, 1, 1, 1)
        else:
            mask = valid = view_mask.detach()
        return Reconstruction(
            canonical_depth=depth,
            canonical_albedo=albedo,
            canonical_normal=normal,
            shading=shading,
            canonical_image=canonical_image,
            view_depth=view_depth,
            view_mask=view_mask,
            mask=mask,
            image=warped * valid + 0.5 * (1 - valid),
            grid=grid,
            raster_dropped=dropped,
        )


def _signed(image: Tensor) -> Tensor:
    """Images in [0, 1] as the networks see them: [-1, 1], channels-last."""
    return (image * 2 - 1).contiguous(memory_format=torch.channels_last)


def dome_template(size: int, half_width: float = 0.35, half_height: float = 0.45) -> Tensor:
    """A half-ellipsoid bump (1, 1, size, size): 1 at the centre, 0 outside the ellipse.

    ``sqrt(1 − (x/a)² − (y/b)²)`` with x, y in units of the image side from its centre, a =
    ``half_width`` and b = ``half_height``; bilaterally symmetric, like the canonical frame.
    """
    coords = (torch.arange(size, dtype=torch.float32) - (size - 1) / 2) / size
    inside = 1 - (coords[None, :] / half_width) ** 2 - (coords[:, None] / half_height) ** 2
    return inside.clamp(min=0).sqrt()[None, None]


def _with_mirror(x: Tensor, flip: bool) -> Tensor:
    """Stack x (B, C, H, W) with its horizontal mirror (or itself, when ``flip`` is off)."""
    return torch.cat([x, x.flip(-1) if flip else x], dim=0)  # (2B, C, H, W)


def diffuse_shading(decomp: Decomposition, recon: Reconstruction) -> Tensor:
    """The diffuse term ``max(0, n · l)`` of the canonical shading under the predicted light.

    The shading the model applies, ``ka + kd · max(0, n · l)``, lies in [0, 2] and is above 1
    wherever the ambient term is large, so written as an image it is mostly white. The diffuse
    term alone (the original's ``canonical_diffuse_shading``) lies in [0, 1] and shows the
    relief; ``result.json``'s ``light`` gives ``ka`` and ``kd`` to rebuild the full shading.

    Returns:
        (B, 1, H, W) in [0, 1].
    """
    batch = decomp.depth.shape[0]
    normal = recon.canonical_normal[:batch]  # (B, H, W, 3)
    ambient, diffuse = decomp.ambient.new_zeros(batch), decomp.ambient.new_ones(batch)
    return lambertian_shading(normal, decomp.light_direction, ambient, diffuse)
