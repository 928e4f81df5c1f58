"""The bundled flag configuration (`app/flags/data/`: the base file and its environment
overrides) copied where a test may write it."""

from __future__ import annotations

import shutil
from pathlib import Path

from app.flags.loader import BUNDLED_CONFIG

__all__ = ["copy_bundled_config"]


def copy_bundled_config(directory: Path, *, keep_existing: bool = False) -> Path:
    """Copy every bundled `feature_flags*.yaml` into `directory` (contents and modification
    times; with `keep_existing`, a file already there is left as it is); return the path
    of the base file."""
    for source in BUNDLED_CONFIG.parent.glob("feature_flags*.yaml"):
        target = directory / source.name
        if not (keep_existing and target.exists()):
            shutil.copy2(source, target)
    return directory / BUNDLED_CONFIG.name
