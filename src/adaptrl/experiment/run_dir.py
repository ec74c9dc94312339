"""The run directory (DESIGN.md): config, metrics log, checkpoints, evaluation, plots.

    runs/<name>/config.yaml        the resolved config
    runs/<name>/metrics.jsonl      one JSON object per iteration, flushed
    runs/<name>/checkpoints/       latest.pt (resumes exactly), previous.pt (the one
                                   before, a fallback), best.pt
    runs/<name>/.lock              held by the one process training in it (lock.py)
    runs/<name>/baselines/         sub-runs of trained baselines (pretrained)
    runs/<name>/eval.json          the evaluation protocol's result
    runs/<name>/plots/*.png
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptrl.experiment.atomic import atomic_write_text, is_temp_of, write_fault
from adaptrl.experiment.lock import LOCK_NAME


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
    def previous(self) -> Path:
        """The latest checkpoint before ``latest.pt`` (kept as a fallback if it is damaged)."""
        return self.checkpoints / "previous.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def resume_candidates(self) -> tuple[Path, Path, Path]:
        """Where a resume may start, most wanted first: latest, previous, best."""
        return self.latest, self.previous, self.best

    def contents(self) -> list[str]:
        """What the directory holds (relative names, checkpoints listed one by one),
        leaving out the lock file and stray temporaries: anything here is a run's (or the
        user's) data that starting a new run would overwrite."""
        if not self.path.is_dir():
            return []
        names = []
        for entry in sorted(self.path.iterdir()):
            if entry.name == LOCK_NAME or _is_stray_temp(entry.name):
                continue
            if entry == self.checkpoints and entry.is_dir():
                names += [f"checkpoints/{c.name}" for c in sorted(entry.iterdir())
                          if not _is_stray_temp(c.name)]  # an empty folder holds nothing
            else:
                names.append(entry.name + ("/" if entry.is_dir() else ""))
        return names

    def checkpoint_file(self, which: str) -> Path:
        """The file behind ``evaluation.checkpoint``: best.pt, or latest.pt for ``latest``."""
        return self.best if which == "best" else self.latest

    @property
    def eval_json(self) -> Path:
        return self.path / "eval.json"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    def baseline(self, name: str) -> RunDir:
        return RunDir(self.path / "baselines" / name)


TRAINER_FILES = ("config.yaml", "metrics.jsonl", "latest.pt", "previous.pt", "best.pt")
"""The files the trainer writes whole (atomically), whose stray temporaries it removes."""


def _is_stray_temp(name: str) -> bool:
    return any(is_temp_of(name, target) for target in TRAINER_FILES)


def _json_line(record: dict[str, Any]) -> str:
    """One record as a JSON line; a non-finite number is an error (``ValueError``), never
    a ``NaN`` token (the trainer stops a diverged run before it logs)."""
    return json.dumps(record, allow_nan=False) + "\n"


class MetricsLog:
    """Append-only JSON-lines log, flushed after every record."""

    def __init__(self, path: Path, keep_iterations_below: int | None = None) -> None:
        """Open for appending; when resuming, drop records at or past the checkpoint's
        iteration (and a torn last line), rewriting the file atomically."""
        self.path = Path(path)
        if keep_iterations_below is not None and self.path.exists():
            kept = [line for line in read_metrics(self.path)
                    if line["iteration"] < keep_iterations_below]
            atomic_write_text(self.path, "".join(_json_line(r) for r in kept))
        try:
            self._f = self.path.open("a")
        except OSError as err:
            raise write_fault(self.path, err) from err

    def write(self, record: dict[str, Any]) -> None:
        try:
            self._f.write(_json_line(record))
            self._f.flush()
        except OSError as err:
            raise write_fault(self.path, err) from err

    def sync(self) -> None:
        """Make the records written so far durable (before a checkpoint that counts them)."""
        try:
            os.fsync(self._f.fileno())
        except OSError as err:
            raise write_fault(self.path, err) from err

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
