"""The original Unsup3D networks and decoding, rebuilt from facts, as a test reference.

Nothing here imports ``unsup3d_cli``'s model code: the layer sequences below are the facts of
the original ``networks.py`` (layer index in its ``nn.Sequential``, kind, channels, kernel,
stride, padding, GroupNorm groups), from which the state-dict key names and shapes follow;
:func:`reference_decomposition` runs them with ``torch.nn.functional`` and decodes the outputs
as the original ``model.py`` forward does (reference §2).
"""

from __future__ import annotations

import math
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# One layer: (sequential name, index, kind, args). Kinds with weights:
#   conv / deconv: (cin, cout, kernel, stride, padding), bias-free
#   gn: (groups, channels), weight and bias
# Kinds without: relu, lrelu, tanh, softplus, up (nearest ×2).
Layer = tuple[str, int, str, tuple[int, ...]]


def _sequence(name: str, spec: list[tuple]) -> list[Layer]:
    return [(name, index, item[0], tuple(item[1:])) for index, item in enumerate(spec)]


def _image_encoder(nf: int, zdim: int) -> list[tuple]:
    return [
        ("conv", 3, nf, 4, 2, 1), ("gn", 16, nf), ("lrelu",),
        ("conv", nf, 2 * nf, 4, 2, 1), ("gn", 32, 2 * nf), ("lrelu",),
        ("conv", 2 * nf, 4 * nf, 4, 2, 1), ("gn", 64, 4 * nf), ("lrelu",),
        ("conv", 4 * nf, 8 * nf, 4, 2, 1), ("lrelu",),
        ("conv", 8 * nf, zdim, 4, 1, 0), ("relu",),
    ]  # fmt: skip


def encoder_decoder(cout: int, tanh: bool, zdim: int = 256, nf: int = 64) -> list[Layer]:
    """The original ``EDDeconv(cin=3, cout, zdim, nf)``: 43 layers (+ Tanh for albedo)."""
    spec = _image_encoder(nf, zdim) + [
        ("deconv", zdim, 8 * nf, 4, 1, 0), ("relu",),
        ("conv", 8 * nf, 8 * nf, 3, 1, 1), ("relu",),
        ("deconv", 8 * nf, 4 * nf, 4, 2, 1), ("gn", 64, 4 * nf), ("relu",),
        ("conv", 4 * nf, 4 * nf, 3, 1, 1), ("gn", 64, 4 * nf), ("relu",),
        ("deconv", 4 * nf, 2 * nf, 4, 2, 1), ("gn", 32, 2 * nf), ("relu",),
        ("conv", 2 * nf, 2 * nf, 3, 1, 1), ("gn", 32, 2 * nf), ("relu",),
        ("deconv", 2 * nf, nf, 4, 2, 1), ("gn", 16, nf), ("relu",),
        ("conv", nf, nf, 3, 1, 1), ("gn", 16, nf), ("relu",),
        ("up",),
        ("conv", nf, nf, 3, 1, 1), ("gn", 16, nf), ("relu",),
        ("conv", nf, nf, 5, 1, 2), ("gn", 16, nf), ("relu",),
        ("conv", nf, cout, 5, 1, 2),
    ]  # fmt: skip
    if tanh:
        spec.append(("tanh",))
    return _sequence("network", spec)


def encoder(cout: int, nf: int = 32) -> list[Layer]:
    """The original ``Encoder(cin=3, cout, nf)`` (viewpoint: 6, light: 4)."""
    spec = [
        ("conv", 3, nf, 4, 2, 1), ("relu",),
        ("conv", nf, 2 * nf, 4, 2, 1), ("relu",),
        ("conv", 2 * nf, 4 * nf, 4, 2, 1), ("relu",),
        ("conv", 4 * nf, 8 * nf, 4, 2, 1), ("relu",),
        ("conv", 8 * nf, 8 * nf, 4, 1, 0), ("relu",),
        ("conv", 8 * nf, cout, 1, 1, 0), ("tanh",),
    ]  # fmt: skip
    return _sequence("network", spec)


def confidence_net(zdim: int = 128, nf: int = 64) -> dict[str, list[Layer]]:
    """The original ``ConfNet(cin=3, cout=2, zdim, nf)``: trunk and its two heads."""
    trunk = _image_encoder(nf, zdim) + [
        ("deconv", zdim, 8 * nf, 4, 1, 0), ("relu",),
        ("deconv", 8 * nf, 4 * nf, 4, 2, 1), ("gn", 64, 4 * nf), ("relu",),
        ("deconv", 4 * nf, 2 * nf, 4, 2, 1), ("gn", 32, 2 * nf), ("relu",),
    ]  # fmt: skip
    head64 = [
        ("deconv", 2 * nf, nf, 4, 2, 1), ("gn", 16, nf), ("relu",),
        ("deconv", nf, nf, 4, 2, 1), ("gn", 16, nf), ("relu",),
        ("conv", nf, 2, 5, 1, 2), ("softplus",),
    ]  # fmt: skip
    head16 = [("conv", 2 * nf, 2, 3, 1, 1), ("softplus",)]
    return {
        "trunk": _sequence("network", trunk),
        "head64": _sequence("out_net1", head64),
        "head16": _sequence("out_net2", head16),
    }


def all_layers(name: str) -> list[Layer]:
    """Every layer of one original network ('netD', 'netA', 'netL', 'netV', 'netC')."""
    if name == "netD":
        return encoder_decoder(1, tanh=False)
    if name == "netA":
        return encoder_decoder(3, tanh=True)
    if name == "netL":
        return encoder(4)
    if name == "netV":
        return encoder(6)
    if name == "netC":
        return [layer for part in confidence_net().values() for layer in part]
    raise ValueError(name)


def key_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """The state-dict keys of an original network and their shapes, in order."""
    shapes: dict[str, tuple[int, ...]] = {}
    for seq, index, kind, args in all_layers(name):
        prefix = f"{seq}.{index}"
        if kind == "conv":
            cin, cout, k = args[:3]
            shapes[f"{prefix}.weight"] = (cout, cin, k, k)
        elif kind == "deconv":
            cin, cout, k = args[:3]
            shapes[f"{prefix}.weight"] = (cin, cout, k, k)
        elif kind == "gn":
            shapes[f"{prefix}.weight"] = (args[1],)
            shapes[f"{prefix}.bias"] = (args[1],)
    return shapes


def random_state_dict(name: str, generator: torch.Generator) -> OrderedDict[str, Tensor]:
    """Random weights for an original network: convolutions scaled by 1/√fan-in, GroupNorm
    affine parameters near (1, 0), so activations neither vanish nor saturate."""
    state: OrderedDict[str, Tensor] = OrderedDict()
    for key, shape in key_shapes(name).items():
        if len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=generator) * (1.5 / math.sqrt(fan_in))
        elif key.endswith(".weight"):
            state[key] = 1 + 0.1 * torch.randn(shape, generator=generator)
        else:
            state[key] = 0.1 * torch.randn(shape, generator=generator)
    return state


def run_layers(layers: list[Layer], state: dict[str, Tensor], x: Tensor) -> Tensor:
    """Apply a layer sequence with ``torch.nn.functional``, weights looked up by key."""
    for seq, index, kind, args in layers:
        prefix = f"{seq}.{index}"
        if kind == "conv":
            x = F.conv2d(x, state[f"{prefix}.weight"], stride=args[3], padding=args[4])
        elif kind == "deconv":
            x = F.conv_transpose2d(x, state[f"{prefix}.weight"], stride=args[3], padding=args[4])
        elif kind == "gn":
            weight, bias = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
            x = F.group_norm(x, args[0], weight, bias, eps=1e-5)
        elif kind == "relu":
            x = F.relu(x)
        elif kind == "lrelu":
            x = F.leaky_relu(x, 0.2)
        elif kind == "tanh":
            x = torch.tanh(x)
        elif kind == "softplus":
            x = F.softplus(x)
        elif kind == "up":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        else:
            raise ValueError(kind)
    return x


@dataclass
class OriginalSettings:
    """The ranges of the original ``model.py`` (defaults: its CelebA training settings)."""

    min_depth: float = 0.9
    max_depth: float = 1.1
    border_depth: float = 0.7 * 1.1 + 0.3 * 0.9
    xyz_rotation_range: float = 60.0
    xy_translation_range: float = 0.1
    z_translation_range: float = 0.0
    min_amb_light: float = 0.0
    max_amb_light: float = 1.0
    min_diff_light: float = 0.0
    max_diff_light: float = 1.0


def reference_decomposition(
    nets: dict[str, dict[str, Tensor]], image01: Tensor, s: OriginalSettings
) -> dict[str, Tensor]:
    """The original forward's decoded canonical factors for images in [0, 1] (B, 3, 64, 64).

    Returns depth (B, H, W) after the border fill, albedo (B, 3, H, W) in [-1, 1], ambient
    and diffuse (B, 1), light direction (B, 3), view (B, 6) and, with ``netC``, the σ maps.
    """
    im = image01 * 2.0 - 1.0
    b, _, h, w = im.shape
    raw = run_layers(all_layers("netD"), nets["netD"], im).squeeze(1)  # (B, H, W)
    depth = (raw - raw.view(b, -1).mean(1).view(b, 1, 1)).tanh()
    depth = (1 + depth) / 2 * s.max_depth + (1 - depth) / 2 * s.min_depth
    border = F.pad(im.new_zeros(1, h, w - 4), (2, 2), mode="constant", value=1)
    depth = depth * (1 - border) + border * s.border_depth
    albedo = run_layers(all_layers("netA"), nets["netA"], im)
    light = run_layers(all_layers("netL"), nets["netL"], im).flatten(1)  # (B, 4)
    ambient = (1 + light[:, :1]) / 2 * s.max_amb_light + (1 - light[:, :1]) / 2 * s.min_amb_light
    diffuse = (1 + light[:, 1:2]) / 2 * s.max_diff_light + (
        1 - light[:, 1:2]
    ) / 2 * s.min_diff_light
    direction = torch.cat([light[:, 2:], im.new_ones(b, 1)], 1)
    direction = direction / ((direction**2).sum(1, keepdim=True)) ** 0.5
    view = run_layers(all_layers("netV"), nets["netV"], im).flatten(1)  # (B, 6)
    view = torch.cat(
        [
            view[:, :3] * math.pi / 180 * s.xyz_rotation_range,
            view[:, 3:5] * s.xy_translation_range,
            view[:, 5:] * s.z_translation_range,
        ],
        1,
    )
    out = {"depth": depth, "albedo": albedo, "ambient": ambient, "diffuse": diffuse,
           "light_direction": direction, "view": view}  # fmt: skip
    if "netC" in nets:
        parts = confidence_net()
        features = run_layers(parts["trunk"], nets["netC"], im)
        out["sigma_l1"] = run_layers(parts["head64"], nets["netC"], features)
        out["sigma_percl"] = run_layers(parts["head16"], nets["netC"], features)
    return out


class MetricsTrace:
    """Stand-in for the original ``unsup3d.meters.MetricsTrace`` (pickled under that name)."""

    def __init__(self) -> None:
        self.data = {"train": [{"loss": 0.61}], "val": [{"loss": 0.64}]}


@contextmanager
def original_modules() -> Iterator[None]:
    """Make ``unsup3d.meters.MetricsTrace`` importable while a test pickles one, then forget
    it, so that loading cannot find the class by importing."""
    package, meters = types.ModuleType("unsup3d"), types.ModuleType("unsup3d.meters")
    MetricsTrace.__module__ = "unsup3d.meters"
    meters.MetricsTrace = MetricsTrace
    package.meters = meters
    saved = {name: sys.modules.get(name) for name in ("unsup3d", "unsup3d.meters")}
    sys.modules.update({"unsup3d": package, "unsup3d.meters": meters})
    try:
        yield
    finally:
        MetricsTrace.__module__ = __name__
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def adam_state(state: dict[str, Tensor], generator: torch.Generator) -> dict:
    """An optimizer state dict shaped like ``torch.optim.Adam(net.parameters()).state_dict()``
    after some steps of the original training (PyTorch 1.2 layout: int steps)."""
    params = {
        index: {
            "step": 1000,
            "exp_avg": 1e-3 * torch.randn(tensor.shape, generator=generator),
            "exp_avg_sq": 1e-6 * torch.rand(tensor.shape, generator=generator),
        }
        for index, tensor in enumerate(state.values())
    }
    group = {"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 5e-4,
             "amsgrad": False, "params": list(params)}  # fmt: skip
    return {"state": params, "param_groups": [group]}


def original_training_checkpoint(
    path, nets: dict[str, dict[str, Tensor]], epoch: int = 30, zip_format: bool = False
) -> None:
    """Write a checkpoint laid out as the original trainer's ``save_checkpoint`` does: the five
    network state dicts, their optimizers, ``epoch`` and a pickled ``MetricsTrace``. PyTorch
    1.2 (the original's) wrote the legacy, non-zip format."""
    generator = torch.Generator().manual_seed(7)
    payload: dict = dict(nets)
    for name, state in nets.items():
        payload[name.replace("net", "optimizer")] = adam_state(state, generator)
    payload["epoch"] = epoch
    with original_modules():
        payload["metrics_trace"] = MetricsTrace()
        torch.save(payload, path, _use_new_zipfile_serialization=zip_format)


def decomposition_errors(ours, ref: dict[str, Tensor]) -> dict[str, float]:
    """Largest absolute difference per factor between our ``Decomposition`` and the
    reference's decoded outputs (albedo compared in the original's [-1, 1])."""
    pairs = {
        "depth": (ours.depth.squeeze(1), ref["depth"]),
        "albedo": (ours.albedo * 2 - 1, ref["albedo"]),
        "ambient": (ours.ambient, ref["ambient"].squeeze(1)),
        "diffuse": (ours.diffuse, ref["diffuse"].squeeze(1)),
        "light_direction": (ours.light_direction, ref["light_direction"]),
        "rotation": (ours.view_angles, ref["view"][:, :3]),
        "translation": (ours.view_translation, ref["view"][:, 3:]),
    }
    if "sigma_l1" in ref:
        pairs["confidence"] = (ours.confidence, ref["sigma_l1"])
        pairs["perceptual_confidence"] = (ours.perceptual_confidence, ref["sigma_percl"])
    elif ours.confidence is not None:
        raise AssertionError("our model predicts confidence maps the reference has not")
    errors = {}
    for name, (a, b) in pairs.items():
        if a.shape != b.shape:
            raise AssertionError(f"{name}: shape {tuple(a.shape)} against {tuple(b.shape)}")
        errors[name] = (a - b).abs().max().item()
    return errors
