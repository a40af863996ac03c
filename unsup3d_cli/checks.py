"""Cheap boundary checks used at public entry points (a leaf module: imports nothing of ours)."""

from __future__ import annotations

from torch import Tensor


def check_shape(x: Tensor, spec: str, name: str = "tensor") -> None:
    """Raise ``ValueError`` unless ``x`` matches a shape spec such as ``"B 1 H W"``.

    Each token is either an integer (that exact size), a name (any size, but equal to the
    size of every other occurrence of the same name), or ``*`` (any size).

    Args:
        x: the tensor to check.
        spec: whitespace-separated tokens, one per dimension.
        name: what to call the tensor in the error message.
    """
    tokens = spec.split()
    if x.dim() != len(tokens):
        raise ValueError(f"{name}: expected shape ({spec}), got {tuple(x.shape)}")
    bound: dict[str, int] = {}
    for token, size in zip(tokens, x.shape, strict=True):
        if token == "*":
            continue
        if token.isdigit():
            if size != int(token):
                raise ValueError(f"{name}: expected shape ({spec}), got {tuple(x.shape)}")
        elif bound.setdefault(token, size) != size:
            raise ValueError(
                f"{name}: expected shape ({spec}) with equal '{token}' sizes, got {tuple(x.shape)}"
            )
