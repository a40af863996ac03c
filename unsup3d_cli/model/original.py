"""Weights of the original Unsup3D code (``netD``, ``netA``, ``netL``, ``netV``, ``netC``) → ours.

The original networks keep their layers in ``nn.Sequential`` containers named ``network``
(``out_net1``/``out_net2`` for the confidence heads); ours split the same layers, in the same
order and with the same shapes, into named parts. :data:`MODULE_TABLE` maps every original
parameterised layer to ours, and :func:`convert_original_weights` checks the mapping name by
name and shape by shape before anything is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

ORIGINAL_NETWORKS = ("netD", "netA", "netL", "netV", "netC")
"""State-dict keys of the original checkpoints; ``netC`` is absent without confidence."""
REQUIRED_NETWORKS = ("netD", "netA", "netL", "netV")
"""The networks every original checkpoint has."""

NETWORK_NAMES = {
    "netD": "depth_net",
    "netA": "albedo_net",
    "netL": "light_net",
    "netV": "view_net",
    "netC": "confidence_net",
}
"""Original network → attribute of :class:`~unsup3d_cli.model.Unsup3D`."""

_ENCODER_DECODER = {
    # image encoder: conv, GroupNorm, LReLU ×3; conv, LReLU; conv, ReLU
    "network.0": "encoder.0", "network.1": "encoder.1",
    "network.3": "encoder.3", "network.4": "encoder.4",
    "network.6": "encoder.6", "network.7": "encoder.7",
    "network.9": "encoder.9",
    "network.11": "encoder.11",
    # decoder: deconv, ReLU; conv, ReLU; then (deconv, GN, ReLU, conv, GN, ReLU) ×3 ...
    "network.13": "decoder.0",
    "network.15": "decoder.2",
    "network.17": "decoder.4", "network.18": "decoder.5",
    "network.20": "decoder.7", "network.21": "decoder.8",
    "network.23": "decoder.10", "network.24": "decoder.11",
    "network.26": "decoder.13", "network.27": "decoder.14",
    "network.29": "decoder.16", "network.30": "decoder.17",
    "network.32": "decoder.19", "network.33": "decoder.20",
    # ... nearest ×2 upsampling (network.35 = decoder.22), conv, GN, ReLU ×2, output conv
    "network.36": "decoder.23", "network.37": "decoder.24",
    "network.39": "decoder.26", "network.40": "decoder.27",
    "network.42": "decoder.29",
}  # fmt: skip

_ENCODER = {f"network.{i}": f"layers.{i}" for i in (0, 2, 4, 6, 8, 10)}  # conv, ReLU ×5; conv

_CONFIDENCE = {
    **{k: v for k, v in _ENCODER_DECODER.items() if v.startswith("encoder.")},
    "network.13": "trunk.0",
    "network.15": "trunk.2", "network.16": "trunk.3",
    "network.18": "trunk.5", "network.19": "trunk.6",
    "out_net1.0": "photometric_head.0", "out_net1.1": "photometric_head.1",
    "out_net1.3": "photometric_head.3", "out_net1.4": "photometric_head.4",
    "out_net1.6": "photometric_head.6",
    "out_net2.0": "perceptual_head.0",
}  # fmt: skip

MODULE_TABLE: dict[str, dict[str, str]] = {
    "netD": _ENCODER_DECODER,
    "netA": _ENCODER_DECODER,
    "netL": _ENCODER,
    "netV": _ENCODER,
    "netC": _CONFIDENCE,
}
"""Per original network: its layer prefix → the same layer's prefix in our network. The
parameter names inside a layer (``weight``, ``bias``) are the same on both sides."""


class WeightMappingError(ValueError):
    """Original weights that do not fit the model (the message names the key)."""


def is_original_checkpoint(state: object) -> bool:
    """Whether a loaded checkpoint is laid out like the original's (``netD``/``netA``/...)."""
    return isinstance(state, Mapping) and all(
        isinstance(state.get(name), Mapping) for name in REQUIRED_NETWORKS
    )


def _map_key(network: str, key: str) -> str:
    prefix, _, param = key.rpartition(".")
    mapped = MODULE_TABLE[network].get(prefix)
    if mapped is None:
        raise WeightMappingError(f"{network}.{key}: no such layer in the original {network}")
    return f"{NETWORK_NAMES[network]}.{mapped}.{param}"


def convert_original_weights(
    networks: Mapping[str, Mapping[str, Tensor]], model: nn.Module
) -> dict[str, Tensor]:
    """Rename the original networks' weights to ``model``'s state-dict keys, checking all.

    Args:
        networks: ``{"netD": state_dict, ...}``; ``netC`` only if the model has confidence.
        model: the :class:`~unsup3d_cli.model.Unsup3D` to receive them (not modified).

    Returns:
        A complete state dict for ``model.load_state_dict`` (the same tensor objects).

    Raises:
        WeightMappingError: a missing or unexpected network or key, or a shape that differs;
            the message names the original key.
    """
    target = model.state_dict()
    wanted = [n for n in ORIGINAL_NETWORKS if getattr(model, NETWORK_NAMES[n], None) is not None]
    for name in networks:
        if name not in wanted:
            raise WeightMappingError(f"the checkpoint has {name}, which this model has no use for")
    converted: dict[str, Tensor] = {}
    for name in wanted:
        if name not in networks:
            raise WeightMappingError(f"the checkpoint has no {name}")
        for key, tensor in networks[name].items():
            ours = _map_key(name, key)
            if ours not in target:
                raise WeightMappingError(f"{name}.{key}: no matching parameter {ours}")
            if tuple(tensor.shape) != tuple(target[ours].shape):
                raise WeightMappingError(
                    f"{name}.{key}: shape {tuple(tensor.shape)}, the model's {ours} has "
                    f"{tuple(target[ours].shape)}"
                )
            converted[ours] = tensor
    missing = [key for key in target if key not in converted]
    if missing:
        raise WeightMappingError(f"the checkpoint has no weights for {missing[0]}")
    return converted
