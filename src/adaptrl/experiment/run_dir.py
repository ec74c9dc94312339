"""The run directory (DESIGN.md): config, metrics log, checkpoints, evaluation, plots.

    runs/<name>/config.yaml        the resolved config
    runs/<name>/metrics.jsonl      one JSON object per iteration, flushed
    runs/<name>/checkpoints/       latest.pt (resumes exactly), best.pt
    runs/<name>/baselines/         sub-runs of trained baselines (pretrained)
    runs/<name>/eval.json          the evaluation protocol's result
    runs/<name>/plots/*.png
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def latest(self) -> Path:
        return self.checkpoints / "latest.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    def checkpoint_file(self, which: str) -> Path:
        """The file behind ``evaluation.checkpoint``: best.pt, or latest.pt for ``latest`` and
        ``average`` (the weight average is kept in the latest checkpoint)."""
        return self.best if which == "best" else self.latest

    @property
    def eval_json(self) -> Path:
        return self.path / "eval.json"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    def baseline(self, name: str) -> RunDir:
        return RunDir(self.path / "baselines" / name)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """Append-only JSON-lines log, flushed after every record."""

    def __init__(self, path: Path, keep_iterations_below: int | None = None) -> None:
        """Open for appending; when resuming, drop records at or past the checkpoint's iteration."""
        self.path = Path(path)
        if keep_iterations_below is not None and self.path.exists():
            kept = [line for line in read_metrics(self.path)
                    if line["iteration"] < keep_iterations_below]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self._f = self.path.open("a")

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All complete records of a metrics log (a torn last line is ignored)."""
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
