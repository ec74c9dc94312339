"""Atomic checkpoints: write to a temporary file in the same folder, then rename.

A crash or Ctrl-C mid-write leaves the previous checkpoint intact. Loading uses
``torch.load(weights_only=True)``: checkpoints hold tensors and plain Python values only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint safely (tensors and plain values only)."""
    state: dict[str, Any] = torch.load(Path(path), map_location="cpu", weights_only=True)
    return state
