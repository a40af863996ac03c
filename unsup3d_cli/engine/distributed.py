"""Training over several processes with PyTorch's own DDP, as started by ``torchrun``.

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in each process it starts; with
more than one process, :func:`init_distributed` joins them in a process group (``nccl`` on
CUDA, ``gloo`` on the CPU) and gives each its device (``cuda:LOCAL_RANK``). Everything here is
also correct for a single plain process, where every collective is the identity.

Collectives of the training loop go through :class:`ProcessGroup`: sums of loss normalisers
(so that the objective over all processes equals the objective of one process on the whole
batch), means of logged metrics, and the stop decision, which every process must take at the
same step. Host-side values (a signal received, the time budget) are agreed over a ``gloo``
group on the CPU, so agreeing on them never waits for a GPU.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

ENV_KEYS = ("RANK", "LOCAL_RANK", "WORLD_SIZE")
"""Environment variables ``torchrun`` sets in every process it starts."""


class DistributedError(RuntimeError):
    """The process group cannot be set up as asked (the message says why)."""


@dataclass(frozen=True)
class Launch:
    """Where this process stands among the processes of a run.

    Attributes:
        rank: global rank, 0 … world_size − 1.
        local_rank: rank on this machine (selects the GPU).
        world_size: number of processes.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The process that writes the run's files."""
        return self.rank == 0


def launch_from_env(environ: dict[str, str] | None = None) -> Launch:
    """Read ``torchrun``'s environment; a plain process (no variables) is rank 0 of 1.

    Raises:
        DistributedError: a variable that is not a number, or ranks out of range.
    """
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return Launch()
    try:
        values = {key: int(env.get(key, "0")) for key in ENV_KEYS}
    except ValueError as err:
        raise DistributedError(f"torchrun environment: {err}") from None
    launch = Launch(values["RANK"], values["LOCAL_RANK"], values["WORLD_SIZE"])
    if launch.world_size < 1 or not 0 <= launch.rank < launch.world_size:
        raise DistributedError(
            f"torchrun environment: rank {launch.rank} of world size {launch.world_size}"
        )
    return launch


def backend_for(device: torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` for the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


@dataclass
class ProcessGroup:
    """The collectives of a training run; the identity for a single process.

    Attributes:
        launch: this process's rank and the world size.
        device: the device of this process's tensors.
        backend: 'nccl', 'gloo', or 'none' for a single process.
    """

    launch: Launch = field(default_factory=Launch)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str = "none"
    _host_group: Any = None

    @property
    def world_size(self) -> int:
        """Number of processes."""
        return self.launch.world_size

    @property
    def is_main(self) -> bool:
        """This process writes the run's files."""
        return self.launch.is_main

    def sum(self, value: Tensor) -> Tensor:
        """Sum of a (detached) tensor over the processes; ``value`` itself on one process."""
        if not self.launch.is_distributed:
            return value
        total = value.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    def mean(self, value: Tensor) -> Tensor:
        """Mean of a (detached) tensor over the processes."""
        if not self.launch.is_distributed:
            return value
        return self.sum(value) / self.world_size

    def any_host(self, *flags: bool) -> list[bool]:
        """For each host-side flag, whether any process has it set (one CPU collective)."""
        if not self.launch.is_distributed:
            return list(flags)
        values = torch.tensor([float(f) for f in flags])
        dist.all_reduce(values, op=dist.ReduceOp.MAX, group=self._host_group)
        return [bool(v) for v in values.tolist()]

    def broadcast(self, value: Any) -> Any:
        """The main process's ``value`` (picklable; our own values only), on every process."""
        if not self.launch.is_distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self._host_group)
        return box[0]

    def barrier(self) -> None:
        """Wait until every process gets here (on the CPU group: no GPU wait)."""
        if self.launch.is_distributed:
            dist.barrier(group=self._host_group)

    def close(self) -> None:
        """Leave the process group."""
        if self.launch.is_distributed and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(launch: Launch, device: torch.device, timeout_min: float = 30) -> ProcessGroup:
    """Join the run's process group (nothing to do for a single process).

    Args:
        launch: from :func:`launch_from_env`.
        device: this process's device (``cuda:LOCAL_RANK`` or the CPU).
        timeout_min: how long a collective may wait for the slowest process.

    Returns:
        The :class:`ProcessGroup` of this run.
    """
    if not launch.is_distributed:
        return ProcessGroup(launch, device)
    backend = backend_for(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = timedelta(minutes=timeout_min)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timeout)
    host = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
    return ProcessGroup(launch, device, backend, host)


class _TrainingForward(nn.Module):
    """The model's forward as DDP sees it: the decomposition minus the unused outputs.

    DDP finds the parameters that get no gradient from what the forward returns, so an output
    that the objective leaves unused must not be returned.
    """

    def __init__(self, model: nn.Module, drop_perceptual_confidence: bool) -> None:
        super().__init__()
        self.model = model
        self.drop_perceptual_confidence = drop_perceptual_confidence

    def forward(self, image: Tensor) -> Any:
        """The model's decomposition of ``image``, minus the unused outputs."""
        decomp = self.model(image)
        if self.drop_perceptual_confidence:
            decomp = dataclasses.replace(decomp, perceptual_confidence=None)
        return decomp


def wrap_ddp(
    model: nn.Module, device: torch.device, *, drop_perceptual_confidence: bool
) -> nn.Module:
    """The model's training forward wrapped in ``DistributedDataParallel``.

    The model's five networks hold every trained parameter (the frozen VGG16 is not part of
    it). Without the perceptual term the perceptual confidence head gets no gradient, as on
    one process: pass ``drop_perceptual_confidence`` and DDP is told to expect that.
    """
    from torch.nn.parallel import DistributedDataParallel  # noqa: PLC0415 (only under torchrun)

    return DistributedDataParallel(
        _TrainingForward(model, drop_perceptual_confidence),
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=drop_perceptual_confidence,
    )
