"""The training loop."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation schedule, logging and checkpointing of a training run."""

    seed: int = 0
    """Seed of every random number generator of the run."""
    batch_size: int = 64
    """Images per optimisation step."""
    num_epochs: int = 30
    """Passes over the training split."""
    max_steps: int | None = None
    """Stop after this many optimisation steps in total (None: run all epochs)."""
    lr: float = 1e-4
    """Adam learning rate (constant)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam betas."""
    weight_decay: float = 5e-4
    """L2 penalty added to the gradient inside Adam (not decoupled)."""
    log_every_steps: int = 50
    """Steps between metric records in metrics.jsonl and tensorboard scalars."""
    image_every_steps: int = 500
    """Steps between tensorboard image grids."""
    checkpoint_every_epochs: int = 1
    """Epochs between numbered checkpoints (last.pt is written at every epoch end)."""
    keep_checkpoints: int = 2
    """Numbered checkpoints to keep (-1 keeps all)."""
    validate: bool = True
    """Run a validation pass after every epoch."""
    tensorboard: bool = True
    """Write tensorboard event files under <run_dir>/tb."""
