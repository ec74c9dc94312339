"""GrBAL's configuration: the dynamics model, the inner loop on it and the learner's
settings (:mod:`adaptrl.algorithms.grbal` says what each is for)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from adaptrl.algorithms.base import AlgorithmConfig
from adaptrl.models.dynamics import DynamicsModel
from adaptrl.planning.mpc import ActionDomain, PlannerSettings
from adaptrl.schema import ConfigModel
from adaptrl.tasks.base import TaskFamily


class DynamicsConfig(ConfigModel):
    """The dynamics model (:class:`~adaptrl.models.dynamics.DynamicsModel`)."""

    hidden: list[int] = Field(default_factory=lambda: [200, 200], min_length=1)
    activation: Literal["relu", "tanh", "elu", "gelu", "silu"] = "relu"
    gaussian: bool = Field(False, description="predict a std too; Gaussian NLL loss")
    ensemble: int = Field(1, ge=1, description="members, averaged")
    context: int = Field(0, ge=0, description="ReBAL's recurrent context: the hidden size of "
                         "a GRU reading the last M transitions, an input of the model (0: "
                         "none, GrBAL's model)")

    def build(self, family: TaskFamily) -> DynamicsModel:
        obs_shape = family.observation_space.shape
        domain = ActionDomain.of(family.action_space)
        if obs_shape is None or len(obs_shape) != 1 or len(domain.shape) > 1:
            raise ValueError(f"family {family.name!r}: a dynamics model needs flat "
                             f"observations and actions, got {family.observation_space}")
        return DynamicsModel(obs_shape[0], action_dim=0 if domain.discrete else domain.shape[0],
                             choices=domain.choices, hidden=tuple(self.hidden),
                             activation=self.activation, gaussian=self.gaussian,
                             ensemble=self.ensemble, context=self.context)


class ModelInnerConfig(ConfigModel):
    """The inner loop on the model: ``steps`` SGD steps of size ``lr`` on the past M."""

    steps: int = Field(1, ge=0, description="SGD steps on the past M transitions (0: no "
                       "meta-learning, the model is fitted on every transition)")
    lr: float = Field(0.01, gt=0, description="inner step size alpha")
    first_order: bool = Field(False, description="treat the inner gradient as a constant")
    learn_lr: bool = Field(False, description="meta-learn a step size per weight, starting "
                           "at lr (Meta-SGD, Li et al. 2017, eq. 2)")


class GrBALConfig(AlgorithmConfig):
    """GrBAL's settings (module docstring); REFERENCES.md "GrBAL / ReBAL details"."""

    name: Literal["grbal"] = "grbal"
    meta_batch_size: int = Field(10, ge=1, description="tasks whose episodes are collected "
                                 "per iteration")
    episodes_per_task: int = Field(1, ge=1, description="episodes collected per task")
    past: int = Field(16, ge=1, description="M: transitions the model adapts on")
    future: int = Field(16, ge=1, description="K: transitions the adapted model is scored on")
    inner: ModelInnerConfig = Field(default_factory=ModelInnerConfig)
    outer_loss: Literal["one_step", "open_loop"] = Field(
        "one_step", description="what the outer loss scores on the future K: each transition "
        "one step ahead (GrBAL's eq. 3), or the model rolled out open-loop from the first "
        "future state along the K actions, as the planner uses it (not GrBAL's: "
        "docs/model_based.md, lever 5); with inner.steps 0, each of the past M and the "
        "future K is rolled out")
    outer_lr: float = Field(1e-3, gt=0, description="Adam step size of the outer loop")
    outer_steps: int = Field(50, ge=1, description="Adam steps per iteration")
    batch_windows: int = Field(32, ge=1, description="windows (each from one episode, one "
                               "task) per outer step")
    buffer_episodes: int = Field(1000, ge=1, description="episodes kept (the oldest dropped)")
    random_iterations: int = Field(1, ge=0, description="first iterations collected with "
                                   "random actions")
    adapt_at_test: bool = Field(True, description="adapt online at every step at meta-test "
                                "(false: the model as trained)")
    test_inner: ModelInnerConfig | None = Field(
        None, description="the online adaptation at meta-test (default: inner); the "
        "mb_finetune baseline trains with inner.steps 0 and adapts with this")
    test_past: int | None = Field(
        None, ge=1, description="M at meta-test: the window of last transitions the model "
        "adapts on online (default: past); the mb_finetune baseline adapts on it too")
    oracle: bool = Field(False, description="plan with the simulator (the MPC oracle)")
    dynamics: DynamicsConfig = Field(default_factory=DynamicsConfig)
    planner: PlannerSettings = Field(default_factory=PlannerSettings)


class ReBALConfig(GrBALConfig):
    """ReBAL (Nagabandi, Clavera et al. 2019, §4): GrBAL's learner with a recurrent update
    rule. The model reads the past M transitions with a GRU (``dynamics.context`` wide) and
    predicts the next K from its hidden state (:meth:`DynamicsModel.encode`); the GRU and
    the model are meta-trained together on GrBAL's windows, and at test the context is
    recomputed from the last ``test_past`` (default ``past``) transitions at every step.
    ``inner`` / ``test_inner`` do not adapt ReBAL's model: they set the ``mb_finetune``
    baseline's gradient step. ReBAL's baselines are GrBAL's: the same model without the
    context (:func:`adaptrl.algorithms.baselines.mb_config`)."""

    name: Literal["rebal"] = "rebal"  # type: ignore[assignment]

    @model_validator(mode="after")
    def _needs_context(self) -> ReBALConfig:
        if self.dynamics.context < 1:
            raise ValueError(f"algorithm.dynamics.context: ReBAL needs a recurrent context "
                             f"of at least 1 unit, got {self.dynamics.context}")
        return self
