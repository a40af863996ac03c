"""The model that ships inside the package, used when a command is given no ``--checkpoint``.

An install has one when ``synth_faces.safetensors`` sits next to this file (``setup.cfg``
packages ``unsup3d_cli/weights/*.safetensors`` into the wheel). Its format, float16 weights
with the config that builds the model, is :mod:`unsup3d_cli.weights.bundle`.
"""

from __future__ import annotations

from pathlib import Path

from unsup3d_cli.engine.checkpoint import CheckpointError

BUNDLED_MODEL = Path(__file__).with_name("synth_faces.safetensors")
"""Where the bundled model lives in an install that has one."""


def bundled_model_path() -> Path:
    """The bundled model file, for commands given no checkpoint.

    Raises:
        CheckpointError: this install has no bundled model (the message names the path it
            looked for and says to pass ``--checkpoint``).
    """
    if not BUNDLED_MODEL.is_file():
        raise CheckpointError(
            f"no bundled model in this install ({BUNDLED_MODEL}); pass --checkpoint"
        )
    return BUNDLED_MODEL
