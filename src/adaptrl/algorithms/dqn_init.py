"""Meta-learned initialisations of DQN's Q-network (unit ``env_steps``).

The learned object is ``theta``, the Q-network's initial weights; at meta-test the agent is
online DQN (Mnih et al. 2015; :class:`~adaptrl.agents.dqn.DQNAgent`, settings ``dqn``)
started from ``theta`` on each held-out task, scored in env steps by
:func:`~adaptrl.evaluation.protocol.online_curve`.

``dqn-reptile`` — Reptile (Nichol, Achiam, Schulman 2018, Algorithm 2, batched) with online
DQN as the inner learner::

    for each meta-iteration:
        sample a batch of training tasks T_1..T_n
        every task at once (DQNAgent batched over tasks; fresh replay, target and Adam
        state per task): phi_i <- theta, then inner.env_steps env steps of online DQN
        theta <- theta + eps (1/n sum_i phi_i - theta)          (or Adam on theta - mean phi)

The inner run is DQN with ``dqn``'s settings, its epsilon schedule and warm-up scaled to the
inner budget (:meth:`DQNInitConfig.inner_dqn`); the outer step is
:func:`~adaptrl.algorithms.common.averaging_step`, as for policy-gradient Reptile.

``dqn-fomaml`` — first-order MAML (Finn et al. 2017; its first-order form as in Nichol et al.
2018, §2) on the TD loss::

    per task, from theta: inner.env_steps steps of play fill a support replay (no learning),
    phi_i = inner.gradient_steps DQN (Adam) steps from theta on it,
    g_i = grad of the TD loss of a query batch (from the same replay) at phi_i,
    theta <- outer optimizer step on 1/n sum_i g_i

``dqn-pretrained`` — the multi-task baseline (``dqn_pretrained``): one Q-network trained by
online DQN on every iteration's tasks pooled (one parameter set and one replay,
:class:`~adaptrl.tasks.wrappers.PooledTasks`), its learning state kept from one iteration to
the next; at meta-test fine-tuned online like the others. ``dqn_scratch`` is the same
Q-network at a random initialisation (:mod:`adaptrl.algorithms.baselines`); ``dqn_tuned`` the
same with the DQN hyperparameters of the file ``tuned`` (searched on the training tasks:
:mod:`adaptrl.algorithms.dqn_hparams`); ``dqn_metatuned`` the same with ``gamma`` and ``lr``
meta-learned across the training tasks by meta-gradients (the file ``metatuned``:
:mod:`adaptrl.algorithms.dqn_meta_hparams`); ``dqn_metagrad`` the tuned DQN adapting
``gamma`` and ``lr`` online by meta-gradients (Xu et al. 2018,
:class:`~adaptrl.agents.dqn_metagrad.MetaGradientDQN`; ``adapt_online``).
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from pydantic import Field, ValidationError, model_validator

from adaptrl.agents.contract import AdaptationUnit
from adaptrl.agents.dqn import DQNAgent, DQNConfig, DQNState
from adaptrl.agents.dqn_metagrad import (
    MetaGradientConfig,
    MetaGradientDQN,
    MetaGradientDQNConfig,
)
from adaptrl.algorithms.base import AlgorithmConfig
from adaptrl.algorithms.common import averaging_step
from adaptrl.algorithms.registry import register_algorithm
from adaptrl.models.functional import named_params
from adaptrl.models.q_networks import QNetwork
from adaptrl.optim.ppo import load_optimizer_state, optimizer_state
from adaptrl.rollouts.online import OnlineRun, play_online
from adaptrl.schema import ConfigModel
from adaptrl.tasks.base import TaskFamily, Tasks
from adaptrl.tasks.wrappers import PooledTasks

DQN_FAMILY_BASELINES = ("dqn_pretrained", "dqn_scratch", "dqn_tuned", "dqn_metagrad",
                        "dqn_metatuned")
"""The baselines a meta-learned DQN initialisation admits (:mod:`adaptrl.algorithms.baselines`)."""


class InnerDQNConfig(ConfigModel):
    """The inner run: online DQN per task from ``theta`` (``dqn``'s settings, rescaled)."""

    env_steps: int = Field(1000, ge=1, description="env steps of online DQN per task per "
                           "meta-iteration (the inner budget)")
    learning_starts: int | None = Field(
        None, ge=0, description="warm-up of the inner run; null: dqn.learning_starts x "
        "env_steps / dqn.total_steps (the meta-test warm-up scaled to the inner budget)")
    gradient_steps: int = Field(8, ge=1, description="dqn-fomaml: inner TD steps on the "
                                "support replay")
    query_batch_size: int | None = Field(None, ge=1, description="dqn-fomaml: transitions "
                                         "per task in the query batch (null: dqn.batch_size)")


class OuterConfig(ConfigModel):
    """The outer step on ``theta``."""

    optimizer: Literal["sgd", "adam"] = Field(
        "sgd", description="sgd: Reptile's theta += lr (mean phi - theta), FOMAML's SGD; "
                           "adam: Adam on the same (pseudo-)gradient (Nichol et al. 2018, §3)")
    lr: float = Field(0.5, gt=0, description="outer step size (Reptile's epsilon)")


class DQNInitConfig(AlgorithmConfig):
    """What every learner of a DQN initialisation has: the meta-test DQN and the inner run."""

    meta_batch_size: int = Field(8, ge=1, description="tasks per meta-iteration")
    dqn: DQNConfig = Field(default_factory=DQNConfig, description="the DQN run from theta "
                           "at meta-test (and, rescaled, in the inner runs)")
    inner: InnerDQNConfig = Field(default_factory=InnerDQNConfig)
    tuned: str | None = Field(
        None, description="a file of DQN hyperparameters tuned on the training tasks "
        "(python -m adaptrl.experiment.hyperparameter_search), relative to the working "
        "directory: what the dqn_tuned baseline runs from scratch")
    metatuned: str | None = Field(
        None, description="a file of gamma and lr meta-learned across the training tasks by "
        "meta-gradients (python -m adaptrl.experiment.dqn_meta_tune), relative to the "
        "working directory: what the dqn_metatuned baseline runs from scratch")
    metagrad: MetaGradientConfig = Field(
        default_factory=MetaGradientConfig, description="the online meta-gradient's "
        "settings (Xu et al. 2018): the dqn_metagrad baseline's, and the meta-training of "
        "the metatuned file")
    adapt_online: bool = Field(
        False, description="the meta-test DQN adapts gamma and lr online by meta-gradients "
        "(metagrad's settings), from theta with zero weights on its gamma input (what the "
        "dqn_metagrad baseline sets)")

    @model_validator(mode="after")
    def _online_meta_gradient(self) -> DQNInitConfig:
        if self.adapt_online:
            try:
                self.meta_gradient_dqn()
            except ValidationError as err:
                msgs = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
                raise ValueError(f"adapt_online: the meta-gradient DQN refuses these "
                                 f"settings: {msgs}") from None
        return self

    def meta_gradient_dqn(self) -> MetaGradientDQNConfig:
        """The meta-test DQN with ``metagrad``'s online meta-gradient (validated)."""
        return MetaGradientDQNConfig(dqn=self.dqn, meta=self.metagrad)

    def inner_dqn(self) -> DQNConfig:
        """``dqn`` with its epsilon schedule over the inner budget and its warm-up scaled to
        it (or ``inner.learning_starts``)."""
        steps = self.inner.env_steps
        start = self.inner.learning_starts
        if start is None:
            start = round(self.dqn.learning_starts * steps / self.dqn.total_steps)
        return self.dqn.model_copy(update={"total_steps": steps, "learning_starts": start})


class DQNReptileConfig(DQNInitConfig):
    name: Literal["dqn-reptile"] = "dqn-reptile"
    outer: OuterConfig = Field(default_factory=OuterConfig)


class DQNFOMAMLConfig(DQNInitConfig):
    name: Literal["dqn-fomaml"] = "dqn-fomaml"
    outer: OuterConfig = Field(default_factory=lambda: OuterConfig(optimizer="adam", lr=1e-3))


class DQNPretrainedConfig(DQNInitConfig):
    name: Literal["dqn-pretrained"] = "dqn-pretrained"


class _LoggedDQN(DQNAgent):
    """A :class:`DQNAgent` that keeps the mean TD loss of every gradient step it takes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.losses: list[float] = []

    def learn(self, state: DQNState, generator: torch.Generator) -> torch.Tensor:
        loss = super().learn(state, generator)
        self.losses.append(float(loss.mean()))
        return loss


def online_metrics(run: OnlineRun, losses: list[float]) -> dict[str, float]:
    """``return`` (mean return of the episodes the inner runs finished), ``return_pre`` /
    ``return_post`` (of each task's first / last finished episode, mean over tasks) and
    ``td_loss`` (mean over the gradient steps); a metric with no data is left out."""
    out: dict[str, float] = {}
    log = run.episodes
    if len(log.returns):
        per_task = [log.of_task(i)[1] for i in range(int(run.steps.shape[0]))]
        done = [r for r in per_task if len(r)]
        out["return"] = float(log.returns.mean())
        out["return_pre"] = sum(float(r[0]) for r in done) / len(done)
        out["return_post"] = sum(float(r[-1]) for r in done) / len(done)
    if losses:
        out["td_loss"] = sum(losses) / len(losses)
    return out


class DQNInitLearner:
    """``theta`` (a Q-network), the meta-test agent from it, and checkpointing."""

    optimizer: torch.optim.Optimizer | None = None

    def __init__(self, family: TaskFamily, config: DQNInitConfig, generator: torch.Generator,
                 device: torch.device) -> None:
        self.family, self.config, self.generator, self.device = family, config, generator, device
        self.network: QNetwork = DQNAgent(config.dqn, family.observation_space,
                                          family.action_space).network.to(device)
        self.env_steps = 0

    @property
    def policy(self) -> QNetwork:
        """``theta``: the Q-network every task's online DQN starts from."""
        return self.network

    def dqn(self, config: DQNConfig, network: QNetwork | None = None) -> _LoggedDQN:
        """A DQN with ``config`` starting from ``network`` (default: ``theta`` itself)."""
        return _LoggedDQN(config, self.family.observation_space, self.family.action_space,
                          network=self.network if network is None else network)

    def agent(self, step_sizes: list[float] | None = None) -> DQNAgent | MetaGradientDQN:
        """Online DQN (``config.dqn``) from a copy of ``theta``; with ``adapt_online`` the
        meta-gradient DQN from ``theta`` (its gamma input's weights zero); ``step_sizes``
        (a gradient agent's schedule) do not apply."""
        if self.config.adapt_online:
            return MetaGradientDQN.starting_from(
                self.config.meta_gradient_dqn(), self.family.observation_space,
                self.family.action_space, self.network)
        return DQNAgent(self.config.dqn, self.family.observation_space,
                        self.family.action_space, network=copy.deepcopy(self.network))

    def load_initial_policy(self, state: dict[str, torch.Tensor]) -> None:
        """``init_from``: ``theta`` from another run's Q-network."""
        self.network.load_state_dict(state)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"policy": self.network.state_dict(),
                                 "env_steps": self.env_steps}
        if self.optimizer is not None:
            state["optimizer"] = optimizer_state(self.optimizer)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["policy"])
        self.env_steps = int(state["env_steps"])
        if self.optimizer is not None:
            load_optimizer_state(self.optimizer, state["optimizer"])

    def outer_optimizer(self, outer: OuterConfig) -> torch.optim.Optimizer:
        opt = torch.optim.SGD if outer.optimizer == "sgd" else torch.optim.Adam
        return opt(self.network.parameters(), lr=outer.lr)


class DQNReptile(DQNInitLearner):
    """Reptile over online DQN runs (see the module doc; Nichol et al. 2018)."""

    config: DQNReptileConfig

    def __init__(self, family: TaskFamily, config: DQNReptileConfig,
                 generator: torch.Generator, device: torch.device) -> None:
        super().__init__(family, config, generator, device)
        self.optimizer = self.outer_optimizer(config.outer)

    def inner_runs(self, tasks: Tasks) -> tuple[OnlineRun, list[float]]:
        """``inner.env_steps`` of online DQN from ``theta`` on every task (one env slot
        each), from the run's generator; the run (``state.params``: the phi_i) and the TD
        losses of its gradient steps."""
        learner = self.dqn(self.config.inner_dqn())
        env = self.family.make_env(tasks, 1, self.device)
        run = play_online(env, learner, self.config.inner.env_steps, self.generator)
        return run, learner.losses

    def meta_update(self, tasks: Tasks) -> dict[str, float]:
        run, losses = self.inner_runs(tasks)
        self.env_steps += int(run.steps.sum())
        assert self.optimizer is not None
        uniform = torch.full((len(tasks),), 1.0 / len(tasks))
        # outer_distance: the norm of the pseudo-gradient theta - mean_i phi_i
        info = averaging_step(self.optimizer, named_params(self.network), run.state.params,
                              uniform)
        return {**online_metrics(run, losses), **info}


class DQNFOMAML(DQNInitLearner):
    """First-order MAML on the TD loss (see the module doc; Finn et al. 2017, Nichol et al.
    2018)."""

    config: DQNFOMAMLConfig

    def __init__(self, family: TaskFamily, config: DQNFOMAMLConfig,
                 generator: torch.Generator, device: torch.device) -> None:
        super().__init__(family, config, generator, device)
        self.optimizer = self.outer_optimizer(config.outer)

    def meta_update(self, tasks: Tasks) -> dict[str, float]:
        cfg = self.config
        steps = cfg.inner.env_steps
        # the support: play from theta with the inner epsilon schedule, no learning yet
        learner = self.dqn(cfg.inner_dqn().model_copy(update={"learning_starts": steps}))
        env = self.family.make_env(tasks, 1, self.device)
        run = play_online(env, learner, steps, self.generator)
        self.env_steps += int(run.steps.sum())
        state = run.state
        for _ in range(cfg.inner.gradient_steps):
            learner.learn(state, self.generator)
        query = learner.sample(state, self.generator, cfg.inner.query_batch_size)
        grads, loss = learner.td_gradients(state, query, state.params)
        assert self.optimizer is not None
        sq = 0.0
        for k, p in named_params(self.network).items():
            p.grad = grads[k].mean(0).detach()
            sq += float(p.grad.square().sum())
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {**online_metrics(run, learner.losses), "query_td_loss": float(loss.mean()),
                "meta_grad_norm": sq ** 0.5}


class DQNPretrained(DQNInitLearner):
    """The multi-task baseline: online DQN on every iteration's tasks pooled (module doc)."""

    config: DQNPretrainedConfig

    def __init__(self, family: TaskFamily, config: DQNPretrainedConfig,
                 generator: torch.Generator, device: torch.device) -> None:
        super().__init__(family, config, generator, device)
        self.learner = self.dqn(config.inner_dqn())
        self.state: DQNState | None = None

    def _fresh_state(self) -> DQNState:
        # the state's shape only: one pooled task, a slot per task of the batch
        n = self.config.meta_batch_size
        tasks = self.family.sample(n, "train", torch.Generator().manual_seed(0))
        return self.learner.begin(PooledTasks(self.family.make_env(tasks, 1, self.device)))

    def meta_update(self, tasks: Tasks) -> dict[str, float]:
        if len(tasks) != self.config.meta_batch_size:
            raise ValueError(f"dqn-pretrained pools meta_batch_size = "
                             f"{self.config.meta_batch_size} tasks, got {len(tasks)}")
        env = PooledTasks(self.family.make_env(tasks, 1, self.device))
        state = self.state if self.state is not None else self._fresh_state()
        self.learner.losses.clear()
        run = play_online(env, self.learner, self.config.inner.env_steps, self.generator,
                          state=state)
        self.state = run.state
        self.env_steps += int(run.steps.sum())
        with torch.no_grad():
            for k, p in named_params(self.network).items():
                p.copy_(self.state.params[k][0])
        metrics = online_metrics(run, self.learner.losses)
        metrics.pop("return_pre", None)  # one pooled "task": first / last are not per task
        metrics.pop("return_post", None)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.state is not None:
            state["dqn_state"] = self.state.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.state = None
        if "dqn_state" in state:
            self.state = self._fresh_state()
            self.state.load_state_dict(state["dqn_state"])


register_algorithm("dqn-reptile", DQNReptileConfig, DQNReptile,
                   "Reptile (Nichol et al. 2018) over online DQN runs: the Q-network's "
                   "initialisation, theta += eps (mean phi - theta) or Adam on it",
                   unit=AdaptationUnit.ENV_STEPS, baselines=DQN_FAMILY_BASELINES)
register_algorithm("dqn-fomaml", DQNFOMAMLConfig, DQNFOMAML,
                   "first-order MAML (Finn et al. 2017) on DQN's TD loss: the Q-network's "
                   "initialisation, K TD steps on a support replay, the query loss's gradient",
                   unit=AdaptationUnit.ENV_STEPS, baselines=DQN_FAMILY_BASELINES)
register_algorithm("dqn-pretrained", DQNPretrainedConfig, DQNPretrained,
                   "multi-task DQN: one Q-network trained online on the training tasks "
                   "pooled, fine-tuned online at meta-test (the dqn_pretrained baseline)",
                   unit=AdaptationUnit.ENV_STEPS)
