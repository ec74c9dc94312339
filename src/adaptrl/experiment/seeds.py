"""Train one config once per seed: the runs behind statistics across seeds.

``adaptrl train CONFIG --seeds 1-5`` trains CONFIG with seed 1, 2, ..., 5, one after the
other, each into its own ordinary run directory ``<run_root>/<name>-s<seed>`` (the run's
``name`` is ``<name>-s<seed>`` too, as ``adaptrl train`` would name it), evaluates it, and
``adaptrl compare`` then finds the runs to be one *group* (the same config apart from seed
and name) and reports their interquartile mean and mean with stratified-bootstrap CIs
(Agarwal et al. 2021, NeurIPS, "Deep Reinforcement Learning at the Edge of the Statistical
Precipice"; :mod:`adaptrl.evaluation.across_seeds`).

An interrupted launcher is started again with the same command: a *finished* seed (its
checkpoint at the config's last iteration and, when evaluating, an ``eval.json`` written
after it) is skipped, a *partial* one is resumed from its checkpoint by the trainer
(exactly, as ``--resume`` does), a *new* one is trained. Without evaluation, finished means
the meta-training reached its last iteration (a trained baseline cut short is then
completed by ``adaptrl train --resume`` of that run). A run directory holding another
config's run is refused before anything is trained, never overwritten.
"""

from __future__ import annotations

import copy
import enum
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from adaptrl.algorithms.base import AlgorithmConfig
from adaptrl.errors import UserError
from adaptrl.experiment.checkpoints import CheckpointError, newest_good_checkpoint
from adaptrl.experiment.config import (
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    read_yaml,
    validate_config,
)
from adaptrl.experiment.run_dir import RunDir
from adaptrl.schema import SEED_LIMIT

MAX_SEEDS = 1000
"""The most seeds one spec may name (a typo such as ``1-10000`` fails at once)."""

_ITEM = re.compile(r"(\d+)(?:-(\d+))?")


def parse_seeds(spec: str) -> list[int]:
    """The seeds of a spec such as ``1-5``, ``1,3,7`` or ``1-3,8``, in the order given.

    Comma-separated items, each a seed ``N`` or an inclusive range ``A-B`` with ``A <= B``;
    seeds are integers in ``[0, 2**64)``, none twice. A :class:`UserError` names the item
    that is wrong."""
    items = [item.strip() for item in spec.split(",")]
    if not spec.strip():
        raise UserError("--seeds: empty seed list; give e.g. 1-5, 1,3,7 or 1-3,8")
    seeds: list[int] = []
    for item in items:
        match = _ITEM.fullmatch(item)
        if match is None:
            raise UserError(f"--seeds {spec!r}: {item!r} is not a seed N or a range A-B of "
                            "non-negative integers (e.g. 1-5, 1,3,7 or 1-3,8)")
        low = int(match.group(1))
        high = low if match.group(2) is None else int(match.group(2))
        if high < low:
            raise UserError(f"--seeds {spec!r}: range {item!r} runs backwards; write "
                            f"{high}-{low}")
        if high >= SEED_LIMIT:
            raise UserError(f"--seeds {spec!r}: {high} is not a seed; seeds are in [0, 2**64)")
        if len(seeds) + high - low + 1 > MAX_SEEDS:
            raise UserError(f"--seeds {spec!r}: more than {MAX_SEEDS} seeds")
        seeds.extend(range(low, high + 1))
    repeated = sorted(s for s, n in Counter(seeds).items() if n > 1)
    if repeated:
        raise UserError(f"--seeds {spec!r}: seed {', '.join(map(str, repeated))} given twice; "
                        "each seed is one run")
    return seeds


def seed_run_name(name: str, seed: int) -> str:
    """The name (and run directory) of ``name``'s run with ``seed``."""
    return f"{name}-s{seed}"


class SeedState(enum.Enum):
    """How far a seed's run directory got."""

    NEW = "new"
    PARTIAL = "partial"
    FINISHED = "finished"


def seed_state(path: Path, config: ExperimentConfig, evaluate: bool = True) -> SeedState:
    """Whether the run in ``path`` is not started, partial or finished (module docstring).

    A damaged checkpoint counts as partial: the trainer's resume falls back to the newest
    good one, or says why it cannot."""
    run = RunDir(Path(path))
    if not run.contents() or not any(p.exists() for p in run.resume_candidates):
        return SeedState.NEW if not run.contents() else SeedState.PARTIAL
    try:
        _, state = newest_good_checkpoint(run.resume_candidates)
    except CheckpointError:
        return SeedState.PARTIAL
    if int(state["iteration"]) < config.iterations:
        return SeedState.PARTIAL
    if evaluate and (not run.eval_json.exists() or
                     run.eval_json.stat().st_mtime < run.latest.stat().st_mtime):
        return SeedState.PARTIAL
    return SeedState.FINISHED


def _differences(a: object, b: object, prefix: str = "") -> list[str]:
    """The dotted keys where two config dumps differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b), key=str)
                for d in _differences(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [] if a == b else [prefix.rstrip(".")]


def _check_same_run(path: Path, config: ExperimentConfig) -> None:
    """Refuse ``path`` if it holds the run of a config other than ``config``."""
    run = RunDir(Path(path))
    if not run.config.is_file():
        return
    held, _ = validate_config(read_yaml(run.config))
    keys = _differences(held.model_dump(mode="json"), config.model_dump(mode="json"))
    if keys:
        raise ConfigError(f"{path} holds a run of another config (it differs in "
                          f"{', '.join(keys[:6])}); move it away or change the config's "
                          "name; nothing was trained")


def seed_configs(config_path: Path, seeds: Sequence[int], overrides: Sequence[str] = ()
                 ) -> list[tuple[ExperimentConfig, AlgorithmConfig]]:
    """CONFIG with ``overrides``, once per seed: ``seed`` set and ``name`` suffixed."""
    data = apply_overrides(read_yaml(Path(config_path)), list(overrides))
    base, _ = validate_config(data)  # its errors once, not once per seed
    return [validate_config({**copy.deepcopy(data), "seed": seed,
                             "name": seed_run_name(base.name, seed)}) for seed in seeds]


SeedCallback = Callable[[int, Path, SeedState], None]
"""Told ``(seed, run directory, state before)`` after each seed (a skipped one too)."""


def train_seeds(config_path: Path, seeds: Sequence[int], run_root: Path = Path("runs"),
                overrides: Sequence[str] = (), *, evaluate: bool = True,
                after_seed: SeedCallback | None = None) -> list[Path]:
    """Train CONFIG once per seed, sequentially, into ``run_root/<name>-s<seed>``; evaluate
    each (``eval.json``) unless ``evaluate`` is false; the run directories, in seed order.

    Finished seeds are skipped and partial ones resumed (module docstring). Every run
    directory is checked before the first seed trains: one holding another config's run
    is a :class:`ConfigError`."""
    from adaptrl.experiment.evaluate import evaluate_run
    from adaptrl.experiment.trainer import train

    if not seeds:
        raise UserError("train_seeds: no seeds")
    plan = [(exp, algo, Path(run_root) / exp.name)
            for exp, algo in seed_configs(config_path, seeds, overrides)]
    for exp, _, path in plan:
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{path} exists and is not a directory; nothing was trained")
        _check_same_run(path, exp)
    for exp, algo, path in plan:
        state = seed_state(path, exp, evaluate)
        if state is not SeedState.FINISHED:
            train(exp, algo, path, resume=state is SeedState.PARTIAL)
            if evaluate:
                evaluate_run(path)
        if after_seed is not None:
            after_seed(exp.seed, path, state)
    return [path for _, _, path in plan]
