"""A progress bar with ETA and the latest returns (rich), or nothing when disabled."""

from __future__ import annotations

from types import TracebackType

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)


class TrainingProgress:
    def __init__(self, total: int, start: int, label: str, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
                                  TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                  disable=not enabled)
        self._task = self._progress.add_task(label, total=total, completed=start, info="")

    def __enter__(self) -> TrainingProgress:
        self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def update(self, metrics: dict[str, float]) -> None:
        shown = [f"{k.removeprefix('return_')} {metrics[k]:.2f}"
                 for k in ("return_pre", "return_post", "return_trial") if k in metrics]
        self._progress.update(self._task, advance=1, info="  ".join(shown))
