"""Optional TensorBoard scalars (only when the `tensorboard` package is installed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Scalars:
    def __init__(self, log_dir: Path, enabled: bool) -> None:
        self._writer: Any = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                return
            self._writer = SummaryWriter(str(log_dir))

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if self._writer is None:
            return
        for k, v in metrics.items():
            if isinstance(v, (int, float)):
                self._writer.add_scalar(k, v, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
