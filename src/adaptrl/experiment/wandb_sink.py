"""Weights & Biases beside TensorBoard (``logging.wandb``; ``pip install 'adaptrl[wandb]'``).

The run's keys are those of TensorBoard (:mod:`.scalars`): ``train/...``, ``trpo/...``,
``eval/<method>/return_after_<k>``; every row also holds ``iteration`` and ``env_steps``,
the x-axes to choose from (``iteration`` is the default one). The W&B run's config is the
resolved experiment config and its files live in ``RUN_DIR/wandb``; the W&B run id is
kept there too (``RUN_DIR/wandb/adaptrl-run-id``), so a resumed training and the run's
evaluation continue the same W&B run. ``mode: offline`` writes nothing to the network
(upload later with ``wandb sync RUN_DIR/wandb/offline-run-*``); ``mode: disabled`` logs
nothing and does not need wandb installed.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptrl.errors import UserError

if TYPE_CHECKING:
    from adaptrl.experiment.config import WandbConfig

RUN_ID_FILE = "adaptrl-run-id"


class WandbSink:
    """One W&B run; :meth:`start` opens it (or None when ``mode`` is ``disabled``)."""

    def __init__(self, run: Any) -> None:
        self._run = run

    @classmethod
    def start(cls, cfg: WandbConfig, run_path: Path, name: str,
              config: Mapping[str, Any]) -> WandbSink | None:
        if cfg.mode == "disabled":
            return None
        try:
            import wandb
        except ImportError:
            raise UserError("logging.wandb is set but wandb is not installed: pip install "
                            "'adaptrl[wandb]' (or remove the logging.wandb section)") from None
        folder = run_path / "wandb"
        folder.mkdir(parents=True, exist_ok=True)
        id_file = folder / RUN_ID_FILE
        run_id = id_file.read_text().strip() if id_file.exists() else ""
        if not run_id:
            run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits)
                             for _ in range(8))  # W&B's own alphabet
            id_file.write_text(run_id + "\n")
        try:
            run = wandb.init(project=cfg.project, entity=cfg.entity, mode=cfg.mode,
                             tags=list(cfg.tags), name=name, id=run_id, resume="allow",
                             dir=str(run_path), config=dict(config))
        except (wandb.Error, OSError) as err:
            raise UserError(f"logging.wandb: cannot start the W&B run ({err}); run `wandb "
                            "login`, or set logging.wandb.mode: offline") from None
        run.define_metric("iteration")
        run.define_metric("env_steps")
        run.define_metric("*", step_metric="iteration")
        return cls(run)

    def log(self, tags: Mapping[str, float], iteration: int, env_steps: int | None) -> None:
        row: dict[str, Any] = {**tags, "iteration": iteration}
        if env_steps is not None:
            row["env_steps"] = env_steps
        self._run.log(row)

    def summary(self, values: Mapping[str, float]) -> None:
        for k, v in values.items():
            self._run.summary[k] = v

    def finish(self) -> None:
        self._run.finish()
