"""RL²'s configuration: the recurrent policy, the imitation stage and the learner's settings
(:mod:`adaptrl.algorithms.rl2` says what each choice is for)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from adaptrl.algorithms.base import AlgorithmConfig
from adaptrl.models.policies import LayerSizes
from adaptrl.models.recurrent import RecurrentPolicy, ValueTrunk
from adaptrl.optim.imitation import ImitationUpdate
from adaptrl.optim.ppo import PPOConfig
from adaptrl.schema import ConfigModel
from adaptrl.tasks.base import TaskFamily

DEFAULT_EPISODES_PER_TRIAL = 2
"""Episodes per trial for a family that does not say (no ``trial_length`` attribute)."""


class RecurrentPolicyConfig(ConfigModel):
    """The GRU policy of RL² (:class:`~adaptrl.models.recurrent.RecurrentPolicy`)."""

    hidden_size: int = Field(128, ge=1, description="GRU hidden units (the paper: 256)")
    head_hidden: LayerSizes = Field(default_factory=list,
                                   description="hidden layers of the action and value heads "
                                               "after the GRU ([] = linear heads)")
    activation: Literal["relu", "tanh", "elu", "gelu", "silu"] = Field(
        "tanh", description="activation of the head hidden layers")
    init_std: float = Field(1.0, gt=0, description="initial std of a Gaussian head")
    value_trunk: ValueTrunk = Field(
        "shared", description="'shared': the value head reads the policy GRU; "
                              "'separate': the critic has its own GRU")
    clock_input: bool = Field(
        False, description="also feed the GRU the fractions of the episode and of the trial "
                           "elapsed (not in the paper's (s, a, r, d) input)")
    transition_input: bool = Field(
        False, description="also feed the GRU the previous transition as outer-product "
                           "features p = [1, o_{t-1}] x a_{t-1} and r_{t-1} p (one unit per "
                           "(state, action) for one-hot spaces; not in the paper's input)")
    critic_task_input: bool = Field(
        False, description="a privileged critic: the critic GRU (value_trunk 'separate') "
                           "also reads the task's parameters at every step (asymmetric "
                           "actor-critic); training only, the policy never sees them")

    @model_validator(mode="after")
    def _privileged_critic_is_separate(self) -> RecurrentPolicyConfig:
        if self.critic_task_input and self.value_trunk != "separate":
            raise ValueError("critic_task_input: true needs value_trunk: separate (allowed "
                             f"with it: 'separate'; got {self.value_trunk!r}): a shared trunk "
                             "would let the policy read the task")
        return self

    def build(self, family: TaskFamily) -> RecurrentPolicy:
        context = task_feature_dim(family) if self.critic_task_input else 0
        return RecurrentPolicy(family.observation_space, family.action_space,
                               self.hidden_size, tuple(self.head_hidden), self.activation,
                               self.init_std, self.value_trunk, self.clock_input,
                               self.transition_input, context)


def task_feature_dim(family: TaskFamily) -> int:
    """Width of :meth:`Tasks.features` for ``family`` (from one task drawn with a private
    generator, so the run's random streams are untouched)."""
    return family.sample(1, "train", torch.Generator().manual_seed(0)).features().shape[-1]


class ImitationConfig(ImitationUpdate):
    """DAgger from a teacher for RL²'s first iterations (see :mod:`adaptrl.algorithms.rl2`);
    the update's own settings (lr, epochs, minibatches, max_grad_norm) are
    :class:`~adaptrl.optim.imitation.ImitationUpdate`'s."""

    teacher: str = Field(description="the classic algorithm imitated, by its table name "
                                     "(tabular-mdp: beb, greedy, psrl, optimistic_psrl, ucrl2, "
                                     "epsilon_greedy, myopic_greedy, random)")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="the teacher's hyperparameters, e.g. {beta: 1.0}")
    iterations: int = Field(ge=1, description="first meta-iterations that imitate; PPO after")
    beta: float = Field(0.0, ge=0, le=1,
                        description="probability that the teacher acts instead of the policy "
                                    "at the first iteration, annealed linearly to 0 at the "
                                    "last imitation iteration (DAgger's mixture; 0: the "
                                    "policy always acts, labelled by the teacher)")

    def mixture(self, iteration: int) -> float:
        """DAgger's ``beta`` at ``iteration`` (< :attr:`iterations`)."""
        return self.beta * (1.0 - iteration / self.iterations)


class RL2Config(AlgorithmConfig):
    """RL² with a recurrent PPO outer loop."""

    name: Literal["rl2"] = "rl2"
    meta_batch_size: int = Field(
        64, ge=1, description="tasks sampled per meta-iteration (trials per iteration = "
                              "meta_batch_size * trials_per_task)")
    trials_per_task: int = Field(1, ge=1, description="independent trials per task per iteration")
    episodes_per_trial: int | None = Field(
        None, ge=1, description="episodes in one trial (default: the family's trial_length, "
                                f"else {DEFAULT_EPISODES_PER_TRIAL})")
    gamma: float = Field(0.99, gt=0, le=1, description="discount, applied across the "
                                                       "episodes of a trial")
    gae_lambda: float = Field(0.95, ge=0, le=1, description="GAE lambda")
    reward_scale: float = Field(
        1.0, gt=0, description="rewards are multiplied by this for the value targets and "
                               "advantages only (the GRU sees raw rewards; metrics are raw): "
                               "keeps trial returns of tens or hundreds in a range where the "
                               "value loss does not swamp the policy gradient")
    policy: RecurrentPolicyConfig = Field(default_factory=RecurrentPolicyConfig)
    ppo: PPOConfig = Field(default_factory=PPOConfig)
    test_actions: Literal["sample", "mode"] = Field(
        "sample", description="how the evaluated agent acts: 'sample' from its policy, as in "
                              "training, or take the policy's most likely action ('mode'); "
                              "training always samples")
    init_from: str | None = Field(
        None, description="a run directory whose best policy (same architecture) initialises "
                          "this run, e.g. an RL² run on shorter trials as a curriculum, or "
                          "one of its checkpoint files (checkpoints/latest.pt: a run "
                          "evaluated at its last policy); applied when training starts")
    init_critic: bool = Field(
        True, description="with init_from: also take the source's critic (value head, and "
                          "its GRU if separate); false keeps this run's fresh critic, e.g. "
                          "to give a trained agent a separate critic for a new discount")
    init_widen: bool = Field(
        False, description="with init_from: allow a source with a narrower GRU "
                           "(policy.hidden_size) and widen it function-preservingly (the new "
                           "units start fresh and silent: adaptrl.models.widening), e.g. to "
                           "continue a 128-unit agent at 256 units")
    critic_warmup_iterations: int = Field(
        0, ge=0, description="first iterations (after any imitation) that fit only the "
                             "critic (value loss, policy unchanged), so that a critic new "
                             "to the policy or to gamma gives sound advantages before the "
                             "policy moves")
    imitation: ImitationConfig | None = Field(
        None, description="DAgger from a classic algorithm for the first iterations "
                          "(ImitationConfig); none: PPO from the start, the paper's RL²")

    @model_validator(mode="after")
    def _minibatches_fit_the_batch(self) -> RL2Config:
        # one row per trial: an empty minibatch would be a NaN loss, caught here, not mid-run
        rows = self.meta_batch_size * self.trials_per_task
        for section in ("ppo", "imitation"):
            update = getattr(self, section)
            if update is not None and update.minibatches > rows:
                raise ValueError(f"{section}.minibatches must be <= the trials per batch "
                                 f"(meta_batch_size x trials_per_task = {rows}), got "
                                 f"{update.minibatches}")
        return self
