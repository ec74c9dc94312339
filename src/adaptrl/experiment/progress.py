"""What a run shows while it trains (``logging.progress``).

* On a terminal: a rich progress bar with the elapsed time, the ETA and the latest returns.
* When stdout is not a terminal (a file, a pipe, a batch job's log), or with
  ``logging.progress: lines``: a bar shows nothing useful there, so a plain line every
  ``logging.every_iterations`` iterations or ``logging.every_seconds`` seconds, whichever
  comes first, and one at the last iteration::

      iter 40/500  return_pre -38.21  return_post -12.04  env_steps 4.39M  elapsed 1:32  eta 15:10

  ``iter`` counts finished iterations; the returns are those the metrics hold (2
  decimals); ``elapsed`` is this session's time (a resumed run starts it again) and the
  ETA extrapolates this session's mean time per iteration.
* ``logging.progress: false``: nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Literal, TextIO

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

RETURN_KEYS = ("return_pre", "return_post", "return_trial", "validation_return",
               "stream/retained")
"""The metrics a progress line or the bar shows, in this order, when an iteration has them."""

Mode = Literal["bar", "lines", "off"]


def progress_mode(setting: bool | str, stream: TextIO | None = None) -> Mode:
    """``logging.progress`` (true, false or ``"lines"``) on ``stream`` (default stdout):
    true is a bar on a terminal and plain lines anywhere else."""
    if setting is False or setting == "off":
        return "off"
    if setting == "lines":
        return "lines"
    stream = sys.stdout if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        tty = False
    return "bar" if tty else "lines"


def format_duration(seconds: float) -> str:
    """``m:ss`` under an hour, ``h:mm:ss`` from then on."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_count(n: float) -> str:
    """``950``, ``12.35K``, ``4.39M``, ``1.20G``."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= size:
            return f"{n / size:.2f}{suffix}"
    return f"{int(n)}"


def returns_shown(metrics: dict[str, float]) -> list[tuple[str, float]]:
    return [(k, float(metrics[k])) for k in RETURN_KEYS if k in metrics]


class TrainingProgress:
    """The progress of one training (``total`` iterations, ``start`` of them done already).

    ``enabled`` is ``logging.progress``; ``every_iterations`` / ``every_seconds`` set the
    cadence of plain lines; ``stream`` (default stdout) and ``clock`` (default
    ``time.monotonic``) can be replaced, e.g. by tests."""

    def __init__(self, total: int, start: int, label: str, enabled: bool | str = True, *,
                 every_iterations: int = 10, every_seconds: float = 60.0,
                 stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.label = total, label
        self.mode = progress_mode(enabled, stream)
        self.every_iterations, self.every_seconds = every_iterations, every_seconds
        self._stream = stream
        self._clock = clock
        self._start = self._done = start
        self._t0 = self._last_time = 0.0
        self._progress: Progress | None = None
        if self.mode == "bar":
            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(),
                                      TextColumn("eta"), TimeRemainingColumn(),
                                      TextColumn("{task.fields[info]}"))
            self._task = self._progress.add_task(label, total=total, completed=start, info="")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def __enter__(self) -> TrainingProgress:
        self._t0 = self._last_time = self._clock()
        if self._progress is not None:
            self._progress.start()
        elif self.mode == "lines":
            self._print(f"{self.label}: iterations {self._start}..{self.total}")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, metrics: dict[str, float], env_steps: int | None = None) -> None:
        """One more iteration finished, with its ``metrics`` and the env steps so far."""
        self._done += 1
        if self._progress is not None:
            info = "  ".join(f"{k.removeprefix('return_')} {v:.2f}"
                             for k, v in returns_shown(metrics))
            self._progress.update(self._task, advance=1, info=info)
            return
        if self.mode != "lines":
            return
        now = self._clock()
        if (self._done % self.every_iterations == 0 or self._done >= self.total
                or now - self._last_time >= self.every_seconds):
            self._print(self.line(metrics, env_steps, now))
            self._last_time = now

    def line(self, metrics: dict[str, float], env_steps: int | None, now: float) -> str:
        """``iter 40/500  return_pre -38.21  ...  env_steps 4.39M  elapsed 1:32  eta 15:10``"""
        parts = [f"iter {self._done}/{self.total}"]
        parts += [f"{k} {v:.2f}" for k, v in returns_shown(metrics)]
        if env_steps is not None:
            parts.append(f"env_steps {format_count(env_steps)}")
        elapsed = now - self._t0
        parts.append(f"elapsed {format_duration(elapsed)}")
        ran = self._done - self._start
        if ran > 0:
            parts.append(f"eta {format_duration(elapsed / ran * (self.total - self._done))}")
        return "  ".join(parts)

    def _print(self, text: str) -> None:
        stream = sys.stdout if self._stream is None else self._stream
        print(text, file=stream, flush=True)
