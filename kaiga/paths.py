"""Where kaiga keeps things on disk: the user's directory, its models, and the bundled models.

The bottom floor of the package (no torch, no other kaiga module), so the store, the server and the
CLI can find the data directory without importing any model code.

Example:
    >>> user_models_dir() == model_home() / "models"
    True
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

BUNDLED_DIR = Path(__file__).parent / "bundled"
DEFAULT_MODEL = "scenes-diffusion"


def model_home() -> Path:
    """The user's kaiga directory: $KAIGA_HOME, else the platform's user data dir."""
    return Path(os.environ.get("KAIGA_HOME") or platformdirs.user_data_dir("kaiga"))


def user_models_dir() -> Path:
    """Models the user added by name: `$KAIGA_HOME/models/<name>`."""
    return model_home() / "models"
