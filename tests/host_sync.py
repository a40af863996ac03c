"""A CPU check that code never makes a GPU wait: run it on the meta device under ``no_host_sync``.

A CUDA step stalls when the host needs a value or a size that only the device knows, or
copies host data to the device with a blocking copy. Both can be seen without a GPU:

- On the ``meta`` device tensors have shapes but no values, so every operation whose output
  *size* depends on the data (``nonzero``, boolean-mask indexing, ``repeat_interleave``
  without ``output_size``, ``unique``) and every read of a value (``item``, ``int(t)``,
  ``bool(t)``, ``tolist``) fails there.
- :class:`no_host_sync` also refuses, by name, the calls that build a device tensor from
  host data (``torch.tensor``, ``Tensor.new_tensor``, ``torch.as_tensor``) or copy a device
  tensor to the host, which the meta device would let pass.

``torch.cuda.set_sync_debug_mode("error")`` is the same check on a real GPU (see
``test_distributed.py``); this one runs in CI. What it cannot see: copies made inside C++
(indexing a device tensor with a CPU index tensor or a list, ``copy_`` or ``__setitem__`` from
a CPU tensor), kernels of static output size that synchronise internally (``torch.linalg``
solvers that check their ``info``), and real collectives across processes.
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

_BUILDERS = {torch.tensor, torch.as_tensor, torch.Tensor.new_tensor}
"""Build a tensor from host data: on a GPU, a blocking host-to-device copy."""
_READS = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.numpy,
    torch.Tensor.cpu,
    torch.Tensor.__bool__,
    torch.Tensor.__int__,
    torch.Tensor.__float__,
    torch.Tensor.__index__,
    torch.nonzero,
    torch.Tensor.nonzero,
}
"""Read a device tensor's value (or a size that depends on it) on the host."""


class HostSyncError(AssertionError):
    """The code under check would make the host wait for the device."""


def _on_device(args: tuple, kwargs: dict) -> bool:
    """Whether any tensor argument lives off the CPU."""
    values = [*args, *kwargs.values()]
    return any(isinstance(x, torch.Tensor) and x.device.type != "cpu" for x in values)


class no_host_sync(TorchFunctionMode):  # noqa: N801 (used like a function: ``with no_host_sync():``)
    """Raise :class:`HostSyncError` at any call that would synchronise a GPU with the host."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__qualname__", getattr(func, "__name__", repr(func)))
        positional = args[2] if func is torch.as_tensor and len(args) > 2 else None
        device = kwargs.get("device", positional)
        if func in _BUILDERS and device is not None and str(device) != "cpu":
            raise HostSyncError(f"{name} copies host data to the device")
        if func is torch.Tensor.new_tensor and _on_device(args, {}):
            raise HostSyncError(f"{name} copies host data to the device")
        if func in _READS and _on_device(args, kwargs):
            raise HostSyncError(f"{name} reads a device value on the host")
        if func in (torch.Tensor.to, torch.Tensor.cuda) and _crosses_host(func, args, kwargs):
            raise HostSyncError(f"{name} copies between the host and the device")
        return func(*args, **kwargs)


def _target_device(func, args: tuple, kwargs: dict) -> torch.device | None:
    """The device a ``Tensor.to`` / ``Tensor.cuda`` call moves its tensor to (None: same)."""
    if func is torch.Tensor.cuda:
        return torch.device("cuda")
    for x in (*args[1:], kwargs.get("device"), kwargs.get("other")):
        if isinstance(x, torch.Tensor):
            return x.device
        if isinstance(x, (str, torch.device)):
            return torch.device(x)
    return None


def _crosses_host(func, args: tuple, kwargs: dict) -> bool:
    """Whether a move goes from the CPU to another device or back."""
    source, target = args[0].device, _target_device(func, args, kwargs)
    return target is not None and (source.type == "cpu") != (target.type == "cpu")
