"""Exponential moving average of a model's weights, kept beside the trained weights."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


class WeightAverage:
    """``average ← d·average + (1 − d)·weights`` after every optimisation step.

    The decay ramps up as ``d_t = min(decay, (1 + t) / (10 + t))`` at update ``t`` (counted from
    0), so the first updates are not held near the random initialisation. Buffers are copied
    from the model as they are, not averaged.

    Args:
        model: the trained model; the average starts as a copy of its weights.
        decay: the long-run decay ``d`` in (0, 1).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the weight-average decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self._names = [name for name, p in model.named_parameters() if p.requires_grad]
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._average = [p.detach().clone() for p in self._params]

    def current_decay(self) -> float:
        """The decay the next :meth:`update` applies."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the model's current weights."""
        weight = 1.0 - self.current_decay()
        torch._foreach_lerp_(self._average, [p.detach() for p in self._params], weight)
        self.updates += 1

    def state_dict(self, model: nn.Module) -> dict[str, Tensor]:
        """``model.state_dict()`` with the averaged weights in place of the trained ones."""
        state = {name: value.detach().clone() for name, value in model.state_dict().items()}
        for name, average in zip(self._names, self._average, strict=True):
            state[name] = average.clone()
        return state

    @torch.no_grad()
    def restore(self, state: dict[str, Tensor], updates: int) -> None:
        """Resume from a :meth:`state_dict` output after ``updates`` updates."""
        self.updates = int(updates)
        for name, average in zip(self._names, self._average, strict=True):
            average.copy_(state[name])

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Hold the averaged weights in the model inside the block, the trained ones after."""
        with torch.no_grad():
            trained = [p.detach().clone() for p in self._params]
            torch._foreach_copy_(self._params, self._average)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self._params, trained)
