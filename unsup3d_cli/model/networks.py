"""The five networks of Unsup3D (reference §2): integers in, no config objects.

All convolutions are bias-free; GroupNorm uses 4 channels per group; no skip connections.
Every network takes a 64×64 image in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def widen(x: Tensor) -> Tensor:
    """``x`` as float32 if of a narrower float type (bfloat16 under autocast), else as is.

    float64 stays float64, so double-precision checks run the same code.
    """
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


class GroupNorm(nn.GroupNorm):
    """:class:`torch.nn.GroupNorm` computed in float32 whatever the input's dtype.

    Under bfloat16 autocast the convolutions hand it bfloat16 maps; PyTorch's CPU GroupNorm
    backward on those runs ~2.7× slower than on float32 ones, and its statistics lose precision.
    Same parameters and state dict as the parent.
    """

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` (B, C, H, W) in float32 (float64 stays float64)."""
        return F.group_norm(widen(x), self.num_groups, self.weight, self.bias, self.eps)


def _gn(channels: int) -> GroupNorm:
    return GroupNorm(channels // 4, channels)


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)


def _deconv(cin: int, cout: int, stride: int, padding: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 4, stride=stride, padding=padding, bias=False)


def _check_width(width: int) -> None:
    if width < 4 or width % 4:
        raise ValueError(f"network width must be a positive multiple of 4, got {width}")


class Encoder(nn.Module):
    """Image → vector in (−1, 1): the viewpoint and lighting networks.

    Args:
        out_channels: size of the output vector (6 for viewpoint, 7 with a scale; 4 for light).
        width: channels of the first layer (doubling to 8× at 4×4).
    """

    def __init__(self, out_channels: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.layers = nn.Sequential(
            _conv(3, w, 4, 2, 1), nn.ReLU(inplace=True),  # 64 → 32
            _conv(w, 2 * w, 4, 2, 1), nn.ReLU(inplace=True),  # → 16
            _conv(2 * w, 4 * w, 4, 2, 1), nn.ReLU(inplace=True),  # → 8
            _conv(4 * w, 8 * w, 4, 2, 1), nn.ReLU(inplace=True),  # → 4
            _conv(8 * w, 8 * w, 4), nn.ReLU(inplace=True),  # → 1
            _conv(8 * w, out_channels, 1), nn.Tanh(),
        )  # fmt: skip

    def forward(self, image: Tensor) -> Tensor:
        """Map images (B, 3, 64, 64) to vectors (B, out_channels)."""
        return self.layers(image).flatten(1)  # (B, out_channels)


def _image_encoder(width: int, zdim: int) -> nn.Sequential:
    """64×64 image → (zdim, 1, 1) code, shared by the depth/albedo and confidence networks."""
    w = width
    return nn.Sequential(
        _conv(3, w, 4, 2, 1), _gn(w), nn.LeakyReLU(0.2, inplace=True),  # 64 → 32
        _conv(w, 2 * w, 4, 2, 1), _gn(2 * w), nn.LeakyReLU(0.2, inplace=True),  # → 16
        _conv(2 * w, 4 * w, 4, 2, 1), _gn(4 * w), nn.LeakyReLU(0.2, inplace=True),  # → 8
        _conv(4 * w, 8 * w, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),  # → 4, no GroupNorm
        _conv(8 * w, zdim, 4), nn.ReLU(inplace=True),  # → 1
    )  # fmt: skip


def _up_block(cin: int, cout: int) -> list[nn.Module]:
    """Transposed conv ×2 then a 3×3 conv, each with GroupNorm and ReLU."""
    return [
        _deconv(cin, cout, 2, 1), _gn(cout), nn.ReLU(inplace=True),
        _conv(cout, cout, 3, 1, 1), _gn(cout), nn.ReLU(inplace=True),
    ]  # fmt: skip


class EncoderDecoder(nn.Module):
    """Image → 64×64 map: the depth (no activation) and albedo (Tanh) networks.

    Args:
        out_channels: 1 for depth, 3 for albedo.
        width: channels at 32×32 (8× at the 4×4 bottleneck side).
        zdim: size of the 1×1 code.
        use_tanh: end with Tanh.
    """

    def __init__(self, out_channels: int, width: int = 64, zdim: int = 256, use_tanh: bool = False):
        super().__init__()
        _check_width(width)
        w = width
        decoder: list[nn.Module] = [
            _deconv(zdim, 8 * w, 1, 0), nn.ReLU(inplace=True),  # 1 → 4
            _conv(8 * w, 8 * w, 3, 1, 1), nn.ReLU(inplace=True),
            *_up_block(8 * w, 4 * w),  # → 8
            *_up_block(4 * w, 2 * w),  # → 16
            *_up_block(2 * w, w),  # → 32
            nn.Upsample(scale_factor=2, mode="nearest"),  # → 64
            _conv(w, w, 3, 1, 1), _gn(w), nn.ReLU(inplace=True),
            _conv(w, w, 5, 1, 2), _gn(w), nn.ReLU(inplace=True),
            _conv(w, out_channels, 5, 1, 2),
        ]  # fmt: skip
        if use_tanh:
            decoder.append(nn.Tanh())
        self.encoder = _image_encoder(width, zdim)
        self.decoder = nn.Sequential(*decoder)

    @property
    def output_layer(self) -> nn.Conv2d:
        """The last convolution (before the optional Tanh)."""
        return next(m for m in reversed(self.decoder) if isinstance(m, nn.Conv2d))

    def forward(self, image: Tensor) -> Tensor:
        """Map images (B, 3, 64, 64) to maps (B, out_channels, 64, 64)."""
        return self.decoder(self.encoder(image))


class ConfidenceNet(nn.Module):
    """Image → confidence (σ) maps for the photometric (64×64) and perceptual (16×16) losses.

    Channel 0 is σ of the reconstruction from the un-flipped canonical frame, channel 1 of the
    flipped one; both are in the input-image frame.

    Args:
        width: channels at 32×32.
        zdim: size of the 1×1 code.
    """

    def __init__(self, width: int = 64, zdim: int = 128) -> None:
        super().__init__()
        _check_width(width)
        w = width
        self.encoder = _image_encoder(width, zdim)
        self.trunk = nn.Sequential(
            _deconv(zdim, 8 * w, 1, 0), nn.ReLU(inplace=True),  # 1 → 4
            _deconv(8 * w, 4 * w, 2, 1), _gn(4 * w), nn.ReLU(inplace=True),  # → 8
            _deconv(4 * w, 2 * w, 2, 1), _gn(2 * w), nn.ReLU(inplace=True),  # → 16
        )  # fmt: skip
        self.photometric_head = nn.Sequential(
            _deconv(2 * w, w, 2, 1), _gn(w), nn.ReLU(inplace=True),  # → 32
            _deconv(w, w, 2, 1), _gn(w), nn.ReLU(inplace=True),  # → 64
            _conv(w, 2, 5, 1, 2), nn.Softplus(),
        )  # fmt: skip
        self.perceptual_head = nn.Sequential(_conv(2 * w, 2, 3, 1, 1), nn.Softplus())

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """Map images (B, 3, 64, 64) to σ maps (B, 2, 64, 64) and (B, 2, 16, 16)."""
        features = self.trunk(self.encoder(image))  # (B, 2w, 16, 16)
        return self.photometric_head(features), self.perceptual_head(features)
