"""DQN's discount and learning rate meta-learned *across* training tasks by meta-gradients
(issue 28, item 5a), for a DQN from scratch on held-out tasks: the ``dqn_metatuned`` baseline.

The issue asks for the hyperparameters to be "chosen on the training tasks by
meta-gradients where they are differentiable and by a black-box search otherwise". The
differentiable ones are ``gamma`` and ``lr``; they are learned here by the online
meta-gradient DQN (:class:`~adaptrl.agents.dqn_metagrad.MetaGradientDQN`; Xu, van Hasselt,
Silver 2018, eq. 1-4) run on a batch of training tasks with **one** ``eta = (logit gamma,
log lr)`` shared by all of them (``MetaGradientConfig.share_eta``): every task takes its
own DQN step ``theta_i' = theta_i + f(tau_i, theta_i, eta)``, the meta-objective is the
mean over tasks of the next batch's TD loss under the reference ``gamma_bar``, and its
gradient with respect to the shared ``eta`` is the mean of the per-task meta-gradients
(:func:`~adaptrl.adaptation.meta_gradient.shared_meta_gradient`). After the budget (the
protocol's env steps, what one trial of the black-box search runs) the final ``eta``
gives fixed ``gamma`` and ``lr``. The others — the epsilon schedule, the target period and
the env steps per gradient step — have no meta-gradient; they, and ``eta``'s starting
point, are taken from the black-box search's file (``algorithm.tuned``:
:mod:`adaptrl.experiment.hyperparameter_search`), or the preset's values where it names
none. The result, :class:`MetaTunedDQN`, is a file like the search's, with its own
provenance (method, base, meta-gradient settings, ``eta``'s trajectory, time); the
``dqn_metatuned`` baseline reads it (``algorithm.metatuned``) and runs DQN from the same
random initialisation as ``dqn_tuned``, differing from it in ``gamma`` and ``lr`` only.

:func:`meta_tune` runs one seed, resumable from a checkpoint written after every unit;
:mod:`adaptrl.experiment.dqn_meta_tune` runs it for a preset and writes the file.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch
from pydantic import Field, model_validator

from adaptrl.agents.dqn_metagrad import MetaGradientDQN, MetaGradientDQNConfig
from adaptrl.algorithms.dqn_hparams import check_fields, read_file
from adaptrl.experiment.atomic import atomic_write
from adaptrl.experiment.seeding import seeded_init
from adaptrl.rollouts.online import play_online
from adaptrl.schema import ConfigModel
from adaptrl.tasks.base import TaskFamily, Tasks

METHOD = ("online meta-gradients (Xu, van Hasselt, Silver 2018) with one eta = (logit gamma, "
          "log lr) shared across the training tasks, its meta-gradient the mean of the "
          "tasks'; the final eta")
WRITER = "adaptrl.experiment.dqn_meta_tune"


class MetaTuneConfig(ConfigModel):
    """The meta-training's settings (the meta-gradient's own are ``algorithm.metagrad``)."""

    tasks: int = Field(8, ge=1, description="training tasks sharing eta (one env slot each)")
    task_seed: int = Field(0, ge=0, description="seed of the training tasks' draw (the "
                           "search's default: the same tasks)")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1,
                             description="runs; the learned eta is their mean (raw scale)")
    env_steps: int | None = Field(None, ge=1, description="env steps per task per run; null: "
                                  "the preset's evaluation budget, steps x env_steps_per_unit")


class MetaTunedDQN(ConfigModel):
    """What the meta-training wrote (``python -m adaptrl.experiment.dqn_meta_tune``)."""

    family: str = Field(description="the task family meta-trained on")
    preset: str = Field(description="the experiment config whose DQN settings were the base")
    method: str = Field(description="how gamma and lr were learned")
    base: str = Field(description="where the other hyperparameters and eta's start came from")
    env_steps: int = Field(ge=1, description="env steps of meta-gradient DQN per run and task")
    tasks: int = Field(ge=1, description="training tasks sharing eta")
    task_seed: int = Field(ge=0)
    seeds: list[int] = Field(min_length=1)
    meta: dict[str, Any] = Field(description="the meta-gradient's settings (MetaGradientConfig)")
    learned: list[str] = Field(description="the hyperparameters learned by meta-gradients")
    hyperparameters: dict[str, float | int] = Field(
        description="the DQN's hyperparameters: the learned ones and the base's")
    trajectory: list[dict[str, float]] = Field(
        default_factory=list, description="gamma and lr (mean over seeds) after every unit")
    wall_s: float = Field(ge=0)
    cpu_s: float = Field(ge=0)

    @model_validator(mode="after")
    def _known_fields(self) -> MetaTunedDQN:
        check_fields(self.hyperparameters)
        return self


def read_meta_tuned(path: str | Path) -> MetaTunedDQN:
    """The meta-tuned file at ``path`` (YAML), validated; a missing or invalid file is a
    ``ValueError`` naming it."""
    return read_file(path, MetaTunedDQN, WRITER)


def shared(config: MetaGradientDQNConfig, env_steps: int) -> MetaGradientDQNConfig:
    """``config`` with one eta shared across tasks and its DQN's schedule over
    ``env_steps``."""
    return config.model_copy(update={
        "dqn": config.dqn.model_copy(update={"total_steps": env_steps}),
        "meta": config.meta.model_copy(update={"share_eta": True})})


def meta_tune(family: TaskFamily, config: MetaGradientDQNConfig, tasks: Tasks, env_steps: int,
              unit: int, seed: int, device: torch.device = torch.device("cpu"),
              checkpoint: Path | None = None) -> tuple[torch.Tensor, list[dict[str, float]]]:
    """Run the meta-gradient DQN (``config``, made :func:`shared`) on ``tasks`` for
    ``env_steps`` env steps each, from a Q-network drawn from ``seed`` and a generator
    seeded ``seed``; returns the final shared raw ``eta`` ``[2]`` and the trajectory of
    ``gamma`` and ``lr`` after every ``unit`` env steps. With ``checkpoint``, the run's
    state is saved there after every unit and a run that finds it resumes from it."""
    if unit < 1:
        raise ValueError(f"unit must be >= 1, got {unit}")
    if config.meta.window > 1:
        raise ValueError(f"metagrad.window: the meta-tuned file is a fixed-hyperparameter "
                         f"DQN's (gamma and lr), which has no lambda-returns: window must be "
                         f"1 here, got {config.meta.window}")
    with seeded_init(seed):
        agent = MetaGradientDQN(shared(config, env_steps), family.observation_space,
                                family.action_space)
    agent.network.to(device)
    env = family.make_env(tasks, 1, device)
    generator = torch.Generator().manual_seed(seed)
    state = agent.begin(env)

    def point(done: int) -> dict[str, float]:
        hp = agent.hyperparameters(state)
        return {"env_steps": float(done), "gamma": float(hp["gamma"][0]),
                "lr": float(hp["lr"][0])}

    done, trajectory = 0, [point(0)]
    if checkpoint is not None and checkpoint.is_file():
        saved = torch.load(checkpoint, weights_only=True)
        if saved["env_steps"] > env_steps or saved["seed"] != seed:
            raise ValueError(f"{checkpoint}: a checkpoint of another run (seed "
                             f"{saved['seed']}, {saved['env_steps']} env steps)")
        state.load_state_dict(saved["state"])
        generator.set_state(saved["generator"])
        done, trajectory = int(saved["env_steps"]), list(saved["trajectory"])
    while done < env_steps:
        n = min(unit, env_steps - done)
        state = play_online(env, agent, n, generator, state=state).state
        done += n
        trajectory.append(point(done))
        if checkpoint is not None:
            record = {"state": state.state_dict(), "generator": generator.get_state(),
                      "env_steps": done, "seed": seed, "trajectory": trajectory}
            atomic_write(checkpoint, partial(torch.save, record))
    if not bool((state.eta == state.eta[:1]).all()):  # share_eta keeps the rows equal
        raise RuntimeError("the shared eta diverged across tasks")
    return state.eta[0].detach().clone(), trajectory
