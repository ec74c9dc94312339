"""Tune DQN's hyperparameters on a preset's *training* tasks by a black-box search, and write
them to the file the ``dqn_tuned`` baseline reads (:mod:`adaptrl.algorithms.dqn_hparams`).

Why Optuna's TPE (Bergstra et al. 2011, "Algorithms for hyper-parameter optimization"): a
trial is a whole DQN run (tens of seconds to minutes on 2 CPU cores), so the search can
afford a few dozen evaluations; TPE models good and bad regions of the space from the
trials so far and spends later trials where the good ones were, which is more
sample-efficient than random search at that budget, handles log-scale, bounded and
categorical dimensions together, and needs no gradient (the epsilon schedule, the target
period and the update frequency have none). Evolution strategies need a population per
generation: tens of runs before the first step.

A trial: online DQN from scratch (:class:`~adaptrl.agents.dqn.DQNAgent`, the preset's
``algorithm.dqn`` with the trial's hyperparameters, ``total_steps`` = the budget) on
``tasks`` training tasks at once, one env slot each, for ``env_steps`` env steps; its score
is the greedy return (:func:`~adaptrl.evaluation.protocol.online_curve`, ``episodes``
evaluation episodes per task) at ``checkpoints`` equally spaced points of the budget, the
last after it, averaged over them, the tasks and ``seeds``: an area under the learning
curve, which rewards reaching a good return early as well as the final return (the final
return alone saturates where training tasks are easy: cartpole reaches its horizon with
most settings, and the search could not tell them apart; ``checkpoints: 1`` is the final
return). Every trial sees the same tasks and seeds (common random numbers: the trials'
differences are the hyperparameters'). The preset's own hyperparameters are one of the
trials (``enqueue_base``), so the result is at least as good as them on the training
tasks, by this score. The study lives in an SQLite file beside the output, so an
interrupted search resumes where it stopped; the output is rewritten (atomically) after
every trial.

Run::

    python -m adaptrl.experiment.hyperparameter_search configs/dqn-reptile-catcher.yaml \\
        --out configs/tuned/dqn-catcher.yaml --trials 24
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import Field

from adaptrl.agents.dqn import DQNAgent, DQNConfig
from adaptrl.algorithms.dqn_hparams import DQNSearchSpace, TunedDQN, tuned_dqn_config
from adaptrl.algorithms.dqn_init import DQNInitConfig
from adaptrl.evaluation.protocol import online_curve
from adaptrl.experiment.atomic import atomic_write_text
from adaptrl.experiment.config import ConfigError, ExperimentConfig, load_config
from adaptrl.experiment.learners import build_family
from adaptrl.experiment.seeding import seeded_init
from adaptrl.schema import ConfigModel
from adaptrl.tasks.base import TaskFamily, Tasks

SAMPLER = "optuna TPESampler"
OBJECTIVE = ("greedy return of online DQN at `checkpoints` equally spaced points of the budget "
             "(the last: after env_steps), mean over them, training tasks and seeds")


class SearchConfig(ConfigModel):
    """The search's settings."""

    trials: int = Field(24, ge=1, description="DQN runs in all (a resumed search counts "
                        "the finished ones)")
    startup_trials: int = Field(8, ge=1, description="random trials before TPE's model")
    tasks: int = Field(8, ge=1, description="training tasks per trial")
    task_seed: int = Field(0, ge=0, description="seed of the training tasks' draw")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1,
                             description="run seeds per trial (init, exploration, replay)")
    env_steps: int | None = Field(None, ge=1, description="env steps per task per trial; "
                                  "null: the preset's evaluation budget, steps x "
                                  "env_steps_per_unit")
    episodes: int = Field(4, ge=1, description="greedy evaluation episodes per task")
    checkpoints: int = Field(4, ge=1, description="scored points, equally spaced over the "
                             "budget (1: the final return only)")
    sampler_seed: int = Field(0, ge=0, description="TPE's seed")
    space: DQNSearchSpace = Field(default_factory=DQNSearchSpace)
    enqueue_base: bool = Field(True, description="the preset's own hyperparameters are "
                               "among the trials (where the space holds them), so that the "
                               "tuned ones score at least as well on the training tasks")


def suggest(trial: Any, space: DQNSearchSpace) -> dict[str, float | int]:
    """The trial's hyperparameters from ``space`` (an ``optuna.Trial``)."""
    return {
        "lr": trial.suggest_float("lr", *space.lr, log=True),
        "gamma": 1.0 - trial.suggest_float("one_minus_gamma", *space.one_minus_gamma,
                                           log=True),
        "exploration_fraction": trial.suggest_float("exploration_fraction",
                                                    *space.exploration_fraction),
        "epsilon_end": trial.suggest_float("epsilon_end", *space.epsilon_end),
        "target_period": trial.suggest_int("target_period", *space.target_period, log=True),
        "train_frequency": trial.suggest_categorical("train_frequency",
                                                     list(space.train_frequency)),
    }


def base_params(dqn: DQNConfig, space: DQNSearchSpace) -> dict[str, float | int] | None:
    """``dqn``'s own values as a trial of ``space`` (its raw dimensions), or ``None`` where
    one lies outside the space."""
    params: dict[str, float | int] = {
        "lr": dqn.lr, "one_minus_gamma": 1.0 - dqn.gamma,
        "exploration_fraction": dqn.exploration_fraction, "epsilon_end": dqn.epsilon_end,
        "target_period": dqn.target_period, "train_frequency": dqn.train_frequency}
    for name, value in params.items():
        bounds = getattr(space, name)
        inside = value in bounds if name == "train_frequency" else \
            bounds[0] <= value <= bounds[1]
        if not inside:
            return None
    return params


def score_dqn(family: TaskFamily, dqn: DQNConfig, tasks: Tasks, env_steps: int, seed: int,
              episodes: int, checkpoints: int = 1,
              device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """The greedy return per task ``[checkpoints, tasks]`` after ``k env_steps /
    checkpoints`` env steps (``k = 1..checkpoints``) of online DQN (``dqn``, its
    ``total_steps`` set to ``env_steps``) from a random initialisation drawn from ``seed``,
    learning and evaluation seeded by ``seed``."""
    if env_steps % checkpoints:
        raise ValueError(f"env_steps {env_steps} is not a multiple of checkpoints "
                         f"{checkpoints}")
    dqn = dqn.model_copy(update={"total_steps": env_steps})
    with seeded_init(seed):
        agent = DQNAgent(dqn, family.observation_space, family.action_space)
    agent.network.to(device)
    curve = online_curve(family, agent, tasks, checkpoints, episodes,
                         env_steps // checkpoints, torch.Generator().manual_seed(seed),
                         seed + 1, device)
    return curve[1:]


@dataclass
class DQNPreset:
    """What the DQN hyperparameter tools (this search and
    :mod:`adaptrl.experiment.dqn_meta_tune`) take from a preset: its configs, family,
    device, the budget per run (the protocol's unless given) and the training tasks."""

    config: ExperimentConfig
    algo: DQNInitConfig
    family: TaskFamily
    device: torch.device
    env_steps: int
    tasks: Tasks


def load_dqn_preset(preset: Path, overrides: list[str] | None, purpose: str,
                    env_steps: int | None, num_tasks: int, task_seed: int) -> DQNPreset:
    """``preset`` loaded for ``purpose`` ("tune", "meta-tune"): a DQN-initialisation
    algorithm's (else a :class:`ConfigError` naming it), ``num_tasks`` training tasks drawn
    with ``task_seed`` (every run of a tool sees the same tasks)."""
    config, algo_cfg = load_config(preset, overrides)
    if not isinstance(algo_cfg, DQNInitConfig):
        raise ConfigError(f"{preset}: algorithm {algo_cfg.name!r} has no DQN settings to "
                          f"{purpose} (a DQN-initialisation algorithm: dqn-reptile, "
                          "dqn-fomaml, dqn-pretrained)")
    family = build_family(config)
    ev = config.evaluation
    tasks = family.sample(num_tasks, "train", torch.Generator().manual_seed(task_seed))
    return DQNPreset(config, algo_cfg, family, torch.device(config.device),
                     env_steps or ev.steps * ev.env_steps_per_unit, tasks)


def run_search(preset: Path, search: SearchConfig, out: Path,
               overrides: list[str] | None = None) -> TunedDQN:
    """Run (or resume) the search for ``preset``'s DQN on its training tasks; write the
    result to ``out`` after every trial and return it."""
    import optuna  # the optional extra `optuna`

    p = load_dqn_preset(preset, overrides, "tune", search.env_steps, search.tasks,
                        search.task_seed)
    config, algo_cfg, family, device = p.config, p.algo, p.family, p.device
    env_steps, tasks = p.env_steps, p.tasks
    out.parent.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{out.with_suffix('.db')}"
    study = optuna.create_study(study_name="dqn", storage=storage, load_if_exists=True,
                                direction="maximize")
    # the sampler's seed moves on with the trials the study already holds: a resumed
    # search seeded as the first would draw the first run's random trials again
    study.sampler = optuna.samplers.TPESampler(seed=search.sampler_seed + len(study.trials),
                                               n_startup_trials=search.startup_trials)

    def objective(trial: optuna.Trial) -> float:
        hp = suggest(trial, search.space)
        dqn = DQNConfig.model_validate({**algo_cfg.dqn.model_dump(), **hp})
        start, cpu = time.time(), time.process_time()
        scores = torch.stack([score_dqn(family, dqn, tasks, env_steps, s, search.episodes,
                                        search.checkpoints, device) for s in search.seeds])
        trial.set_user_attr("final", float(scores[:, -1].mean()))
        trial.set_user_attr("wall_s", time.time() - start)
        trial.set_user_attr("cpu_s", time.process_time() - cpu)
        trial.set_user_attr("hyperparameters", hp)
        return float(scores.mean())

    def write(study: optuna.Study, _trial: Any = None) -> None:
        result = tuned_result(study, config.family.name, str(preset), env_steps, search)
        if result is not None:
            atomic_write_text(out, yaml.safe_dump(result.model_dump(), sort_keys=False))

    if not study.trials and search.enqueue_base:
        base = base_params(algo_cfg.dqn, search.space)
        if base is not None:
            study.enqueue_trial(base)
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    if search.trials > done:
        study.optimize(objective, n_trials=search.trials - done, callbacks=[write])
    write(study)
    result = tuned_result(study, config.family.name, str(preset), env_steps, search)
    if result is None:
        raise RuntimeError("the search finished no trial")
    tuned_dqn_config(algo_cfg.dqn, result)  # the result is a valid DQN config
    return result


def tuned_result(study: Any, family: str, preset: str, env_steps: int,
                 search: SearchConfig) -> TunedDQN | None:
    """The file's content from a study's finished trials (``None`` before the first)."""
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return None
    best = max(done, key=lambda t: t.value)
    trials = [{"number": t.number, "value": t.value, "final": t.user_attrs["final"],
               **t.user_attrs["hyperparameters"],
               "wall_s": round(t.user_attrs["wall_s"], 1),
               "cpu_s": round(t.user_attrs["cpu_s"], 1)} for t in done]
    return TunedDQN(family=family, preset=preset, env_steps=env_steps, tasks=search.tasks,
                    seeds=search.seeds, sampler=SAMPLER, objective=OBJECTIVE,
                    best_value=float(best.value),
                    hyperparameters=best.user_attrs["hyperparameters"], trials=trials)


def preset_parser(description: str, base: str, out: str) -> argparse.ArgumentParser:
    """The command line shared by the DQN hyperparameter tools (this search and
    :mod:`adaptrl.experiment.dqn_meta_tune`): a preset, the output file, the training tasks,
    the seeds, the budget and ``--set`` overrides; ``base`` says what of the preset is used."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("preset", type=Path, help="experiment config of a DQN-initialisation "
                        f"algorithm (its family and {base} are the base)")
    parser.add_argument("--out", type=Path, required=True, help=out)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--env-steps", type=int, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="override a preset key: KEY=VALUE")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = preset_parser(__doc__.split("\n\n")[0], "algorithm.dqn", "the tuned file (YAML)")
    parser.add_argument("--trials", type=int, default=24)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    search = SearchConfig(trials=args.trials, tasks=args.tasks, seeds=args.seeds,
                          env_steps=args.env_steps)
    result = run_search(args.preset, search, args.out, args.overrides)
    print(f"best {result.best_value:.3f}: {result.hyperparameters} -> {args.out}")


if __name__ == "__main__":
    main()
