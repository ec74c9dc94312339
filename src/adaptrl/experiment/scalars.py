"""A run's scalars: TensorBoard by default, Weights & Biases when configured.

TensorBoard (``logging.tensorboard``, on by default) writes to ``RUN_DIR/tensorboard``;
without the ``tensorboard`` package (``pip install 'adaptrl[tensorboard]'``) a run warns
once and goes on. Weights & Biases (``logging.wandb``, :mod:`.wandb_sink`) gets the same
keys.

Keys are namespaced, as TensorBoard groups its charts by the part before the first ``/``:

* ``train/<metric>``: a training metric without a namespace (``train/return_post``);
  an algorithm's own namespaced keys (``trpo/kl``, ``ppo/...``, ``imitation/...``,
  ``stream/...``) are kept as they are;
* ``eval/<method>/return_after_<k>`` (and ``success_after_<k>``): the evaluation's mean
  score after k adaptation units, at the evaluated checkpoint's iteration;
* ``config``: the resolved config as YAML text; after an evaluation the config is also
  written as hyperparameters (dotted keys, the HPARAMS tab) with the final eval score.

Every scalar is logged twice, against the iteration (``step = iteration``, 0-based like
metrics.jsonl) and against env steps, as ``by_env_steps/<tag>`` with ``step = env_steps``.
TensorBoard has no custom x-axis (only step, relative and wall time), and a second writer
folder holding the same tag would be a second *run* that TensorBoard draws in the same
chart as the first: iterations (hundreds) and env steps (millions) on one x-axis. A tag
prefix gives each x-axis its own charts, in its own section, for every run compared. In
W&B the iteration and env steps are logged with every row (``iteration``, ``env_steps``),
and either can be the x-axis.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from adaptrl.errors import UserError
from adaptrl.experiment.run_dir import read_metrics

if TYPE_CHECKING:
    from adaptrl.experiment.config import LoggingConfig
    from adaptrl.experiment.wandb_sink import WandbSink

log = logging.getLogger(__name__)

ENV_STEPS_PREFIX = "by_env_steps/"
_warned_missing = False


def tag(key: str) -> str:
    """A metric's key as logged: ``train/<key>`` unless it has a namespace already."""
    return key if "/" in key else f"train/{key}"


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None for what is not a number (or a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and None as text (hparams take scalars)."""
    flat: dict[str, Any] = {}
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            flat.update(flatten(v, f"{name}."))
        elif isinstance(v, (bool, int, float, str)):
            flat[name] = v
        else:
            flat[name] = str(v)
    return flat


def eval_scalars(result: Mapping[str, Any]) -> dict[str, float]:
    """eval.json's scores as ``eval/<method>/return_after_<k>`` (and ``success_after_<k>``)."""
    out: dict[str, float] = {}
    for method, summary in result.get("methods", {}).items():
        for what, key in (("return", "mean"), ("success", "success_mean")):
            for k, value in enumerate(summary.get(key) or []):
                v = number(value)
                if v is not None:
                    out[f"eval/{method}/{what}_after_{k}"] = v
    return out


def env_steps_at(metrics_file: Path, iteration: int) -> int | None:
    """The env steps metrics.jsonl records at ``iteration`` (None if it has no such row)."""
    try:
        rows = read_metrics(metrics_file) if metrics_file.exists() else []
    except (OSError, ValueError):
        return None
    for row in rows:
        if row.get("iteration") == iteration and isinstance(row.get("env_steps"), int):
            return int(row["env_steps"])
    return None


def _summary_writer(log_dir: Path) -> Any:
    """A TensorBoard SummaryWriter, or None (warned once) without the tensorboard package."""
    global _warned_missing
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if not _warned_missing:
            log.warning("logging.tensorboard: the tensorboard package is not installed, so "
                        "no TensorBoard scalars are written (pip install "
                        "'adaptrl[tensorboard]', or set logging.tensorboard: false)")
            _warned_missing = True
        return None
    return SummaryWriter(str(log_dir))


class Scalars:
    """Scalars to TensorBoard (in ``log_dir`` when ``enabled``) and to ``wandb`` if given."""

    def __init__(self, log_dir: Path, enabled: bool, wandb: WandbSink | None = None) -> None:
        self._writer: Any = _summary_writer(Path(log_dir)) if enabled else None
        self._wandb = wandb

    @classmethod
    def for_run(cls, run_path: Path, cfg: LoggingConfig, config: Mapping[str, Any] | None,
                name: str, config_text: bool = True) -> Scalars:
        """The sinks ``cfg`` asks for in the run directory ``run_path``. ``config`` (the
        resolved experiment config) is written as text (``config_text``) and given to W&B;
        a run without it (a baseline's sub-run) logs to TensorBoard only."""
        sink = None
        if cfg.wandb is not None and config is not None:
            from adaptrl.experiment.wandb_sink import WandbSink
            sink = WandbSink.start(cfg.wandb, Path(run_path), name, config)
        scalars = cls(Path(run_path) / "tensorboard", cfg.tensorboard, sink)
        if config is not None and config_text and scalars._writer is not None:
            scalars._writer.add_text("config", "```yaml\n" + yaml.safe_dump(
                dict(config), sort_keys=False) + "```")
        return scalars

    @property
    def active(self) -> bool:
        return self._writer is not None or self._wandb is not None

    def write(self, step: int, metrics: Mapping[str, Any], env_steps: int | None = None) -> None:
        """One iteration's ``metrics`` (numbers only) at iteration ``step``."""
        numbers = {tag(k): number(v) for k, v in metrics.items()}
        tags = {k: v for k, v in numbers.items() if v is not None}
        self._scalars(tags, step, env_steps)

    def write_eval(self, result: Mapping[str, Any], iteration: int, env_steps: int | None,
                   config: Mapping[str, Any] | None = None) -> None:
        """An evaluation's scores (eval.json's ``result``) at the evaluated ``iteration``,
        and ``config`` as hyperparameters with the agent's final score."""
        scores = eval_scalars(result)
        self._scalars(scores, iteration, env_steps)
        final = {k: v for k, v in scores.items()
                 if k.startswith("eval/agent/return_after_")}
        last = max(final, key=lambda k: int(k.rsplit("_", 1)[1]), default=None)
        if self._wandb is not None:
            self._wandb.summary(scores)
        if config is not None and self._writer is not None and last is not None:
            from torch.utils.tensorboard.summary import hparams
            for summary in hparams(flatten(config), {last: final[last]}):
                self._writer.file_writer.add_summary(summary)
            self._writer.flush()

    def _scalars(self, tags: Mapping[str, float], step: int, env_steps: int | None) -> None:
        if self._writer is not None:
            for k, v in tags.items():
                self._writer.add_scalar(k, v, step)
                if env_steps is not None:
                    self._writer.add_scalar(ENV_STEPS_PREFIX + k, v, env_steps)
        if self._wandb is not None:
            self._wandb.log(tags, step, env_steps)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def log_evaluation(run_path: Path, cfg: LoggingConfig, config: Mapping[str, Any],
                   result: Mapping[str, Any]) -> None:
    """Log a run's evaluation (eval.json's ``result``) to its TensorBoard log and W&B run,
    at the evaluated checkpoint's iteration and env steps, with the config as
    hyperparameters. eval.json is written already: a W&B run that cannot start is a
    warning here, not an error."""
    if not cfg.tensorboard and cfg.wandb is None:
        return
    iteration = int(result.get("checkpoint_iteration") or 0)
    try:
        scalars = Scalars.for_run(run_path, cfg, config, Path(run_path).name, config_text=False)
    except UserError as err:
        log.warning("%s; the evaluation is not logged to W&B", err)
        scalars = Scalars(Path(run_path) / "tensorboard", cfg.tensorboard)
    try:
        scalars.write_eval(result, iteration, env_steps_at(Path(run_path) / "metrics.jsonl",
                                                           iteration), config)
    finally:
        scalars.close()
