"""RL²: fast RL via slow RL (Duan et al. 2016, Algorithm in §2.2, with PPO as the slow RL).

    for each meta-iteration:
        sample a batch of training tasks T_i                      (meta_batch_size)
        for each task, all at once: play trials_per_task trials of E episodes with the
            recurrent policy, hidden state carried across the episodes of a trial and
            reset between trials                                   ("fast" RL, in memory)
        compute advantages over each whole trial (GAE)
        PPO update of the recurrent policy, re-running every trial through the GRU
            (backpropagation through the whole trial)              ("slow" RL, in weights)

Choices (see also :class:`RL2Config`):

* The paper optimises the *total discounted reward of a trial*: the trial is one long
  episode for the return, so the discount and the GAE recursion run across episode
  boundaries (an episode end, even a terminal state, is not a terminal of the trial),
  and only the end of the trial stops bootstrapping. This is what rewards exploring in
  episode 1 for the sake of episode 2.
* The outer optimiser is PPO (the paper used TRPO with GAE; PPO is the common modern
  substitute): clipped surrogate, value loss, entropy bonus, Adam, gradient clipping,
  minibatches of whole trials.
* Changing the discount of a trained agent (a curriculum from the myopic gamma ~ 0 to the
  paper's 0.99) first refits the critic alone (``critic_warmup_iterations``; with
  ``init_critic: false`` and a separate critic GRU the new critic starts fresh): PPO on
  advantages from a critic fitted for another discount pulls a good policy down.
* Memory can be added the same way: ``init_widen`` continues a trained agent at a larger
  ``hidden_size``, widened so that it starts as the same function (models/widening.py).
* ``policy.critic_task_input`` gives the separate critic the task's parameters
  (:meth:`Tasks.features`), an asymmetric actor-critic (Pinto et al. 2018; not in the
  paper): the critic need not infer the task from the trial, so the advantages carry less
  of the noise of that inference. The policy, and so the agent as evaluated, is unchanged.
  When the policy joins, the full optimiser takes over the critic's Adam state, so the
  fitted critic is not jolted by a fresh Adam's first step (``lr * sign(g)`` on every
  weight: the value loss of the n = 25 MDP stage jumped from 0.06 to 2.5 without it).
* ``imitation`` starts the agent by DAgger (Ross et al. 2011; not in the paper): for its
  first ``imitation.iterations`` meta-iterations the policy plays the trials and learns,
  by cross-entropy, the action probabilities that a *teacher* (a classic algorithm of
  ``adaptrl.agents.classic``, e.g. BEB on tabular MDPs, built from the config by
  :func:`~adaptrl.agents.classic.teachers.build_teacher`) gives in the state and history
  the policy is in; PPO on the paper's objective
  follows (after the critic warm-up). It is a start beyond the local optimum of
  exploiting too soon, from which PPO alone did not move the n = 25 MDP agent.
* Every trial starts from a zero hidden state, so sequences are independent and the
  update re-runs each trial from its first step: no truncation of the backpropagation
  and no stale stored hidden states.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from adaptrl.agents.classic.teachers import build_teacher
from adaptrl.agents.contract import AdaptationUnit
from adaptrl.algorithms.registry import register_algorithm
from adaptrl.algorithms.rl2_config import (
    DEFAULT_EPISODES_PER_TRIAL,
    ImitationConfig,
    RecurrentPolicyConfig,
    RL2Config,
    task_feature_dim,
)
from adaptrl.models.widening import gru_width, widen_recurrent_state
from adaptrl.optim.imitation import imitation_update
from adaptrl.optim.ppo import (
    hand_over_state,
    load_optimizer_state,
    make_optimizer,
    optimizer_state,
    ppo_update,
)
from adaptrl.rollouts.imitation import LabellingPolicy, Teacher, TeacherEnv
from adaptrl.rollouts.returns import gae
from adaptrl.rollouts.trial_sampler import RecurrentActor, Trials, flatten_trials, sample_trials
from adaptrl.tasks.base import TaskFamily, Tasks

__all__ = ["DEFAULT_EPISODES_PER_TRIAL", "RL2", "RL2Agent", "RL2Config", "ImitationConfig",
           "RecurrentPolicyConfig", "task_feature_dim", "trial_advantages"]

@dataclass(frozen=True)
class RL2Agent(RecurrentActor):
    """The adapting agent of RL²: it adapts within a trial, in its hidden state.

    A :class:`~adaptrl.rollouts.trial_sampler.RecurrentActor` (``begin`` / ``act`` /
    ``observe`` over a trial) whose adaptation unit is the episode: the evaluation protocol
    scores the ``k``-th episode of a trial (:func:`adaptrl.evaluation.protocol.trial_curve`).
    """

    unit: AdaptationUnit = AdaptationUnit.EPISODES

    def trials(self, family: TaskFamily, tasks: Tasks, num_episodes: int,
               trials_per_task: int, generator: torch.Generator,
               device: torch.device | str = "cpu") -> Trials:
        """Play ``trials_per_task`` trials of ``num_episodes`` episodes on every task."""
        env = family.make_env(tasks, trials_per_task, device)
        return sample_trials(env, self.policy, self.params, num_episodes, generator,
                             self.deterministic)

    def trial_returns(self, family: TaskFamily, tasks: Tasks, num_episodes: int,
                      trials_per_task: int, generator: torch.Generator,
                      device: torch.device | str = "cpu") -> torch.Tensor:
        """Mean total reward of a trial of ``num_episodes`` episodes, per task: ``[tasks]``
        (the score of the paper's bandit and MDP tables)."""
        trials = self.trials(family, tasks, num_episodes, trials_per_task, generator, device)
        return trials.trial_returns().mean(-1)


def trial_advantages(trials: Trials, values: torch.Tensor, gamma: float, lam: float,
                     reward_scale: float = 1.0) -> torch.Tensor:
    """GAE over whole trials (the trial is one episode): ``trials`` must be compacted.

    After :meth:`Trials.compact` the live steps of a trial are contiguous, so ``gae``
    with no terminal flags chains across episode boundaries and bootstraps 0 after the
    last step of the trial. Rewards are multiplied by ``reward_scale`` (the scale the
    value head learns in).
    """
    return gae(trials.steps.rewards * reward_scale, values, trials.steps.masks, gamma, lam)


class RL2:
    """RL² (Duan et al. 2016) with a GRU policy and a PPO outer loop."""

    def __init__(self, family: TaskFamily, config: RL2Config, generator: torch.Generator,
                 device: torch.device) -> None:
        self.family, self.config, self.generator, self.device = family, config, generator, device
        default = getattr(family, "trial_length", DEFAULT_EPISODES_PER_TRIAL)
        self.episodes_per_trial = config.episodes_per_trial or int(default)
        self.policy = config.policy.build(family).to(device)  # the trainer seeds the init
        self.optimizer = make_optimizer(list(self.policy.parameters()), config.ppo)
        self.critic_optimizer = make_optimizer(self.policy.critic_parameters(), config.ppo)
        self.imitation_optimizer = torch.optim.Adam(
            self.policy.actor_parameters(),
            lr=config.imitation.lr if config.imitation else config.ppo.lr)
        self.teacher: Teacher | None = (  # imitation's teacher: a classic algorithm
            None if config.imitation is None else
            build_teacher(family, config.imitation.teacher, config.imitation.params))
        self.env_steps = 0
        self.iterations = 0

    def load_initial_policy(self, state: dict[str, torch.Tensor]) -> None:
        """``init_from``: load a trained policy, its critic too unless ``init_critic`` is off;
        a narrower one is widened first if ``init_widen`` allows it."""
        width = gru_width(state)
        if width is not None and width != self.policy.hidden_size:
            if not self.config.init_widen:
                raise RuntimeError(f"its GRU has {width} units, policy.hidden_size is "
                                   f"{self.policy.hidden_size}; set algorithm.init_widen: true "
                                   "to widen a narrower agent")
            state = widen_recurrent_state(state, self.policy.state_dict())
        if self.config.init_critic:
            self.policy.load_state_dict(state)
        else:
            self.policy.load_actor_state(state)

    def meta_update(self, tasks: Tasks) -> dict[str, float]:
        """Sample trials on ``tasks`` and take the PPO epochs (or, in the first
        ``imitation.iterations``, the imitation epochs); returns metrics: the mean total
        reward of a trial (``return_trial``; while imitating, of the trials as played by
        DAgger's mixture), of its first and last episodes, the env steps of this iteration
        and the update's diagnostics (``ppo/...`` or ``imitation/...``)."""
        cfg = self.config
        imitating = cfg.imitation is not None and self.iterations < cfg.imitation.iterations
        trials, labels = self._play(tasks, imitating)
        self.env_steps += trials.num_steps
        per_episode = trials.episode_returns().mean((1, 2))
        metrics = {"return_trial": float(trials.trial_returns().mean()),
                   "return_first_episode": float(per_episode[0]),
                   "return_last_episode": float(per_episode[-1]),
                   "env_steps_iteration": float(trials.num_steps)}
        if imitating:
            assert labels is not None
            info = self._imitation_update(trials, labels)
            self.iterations += 1
            return {**metrics, **{f"imitation/{k}": v for k, v in info.items()}}

        batch = trials.flatten().compact()  # one row per trial, live steps first
        context = None  # the privileged critic's input: the task of every row
        if cfg.policy.critic_task_input:
            context = tasks.features().to(self.device).repeat_interleave(
                cfg.trials_per_task, 0).unsqueeze(1)
        with torch.no_grad():
            _, values = self.policy.sequence(batch.inputs, critic_context=context)
        adv = trial_advantages(batch, values, cfg.gamma, cfg.gae_lambda, cfg.reward_scale)
        returns = (adv + values) * batch.steps.masks

        def evaluate(rows: torch.Tensor) -> tuple[Any, torch.Tensor]:
            return self.policy.sequence(batch.inputs[:, rows], critic_context=(
                None if context is None else context[rows]))

        policy_starts = self.ppo_start() + cfg.critic_warmup_iterations
        warmup = self.iterations < policy_starts
        if warmup:  # fit the critic alone: the policy's parameters get no gradient
            info = ppo_update(self.policy.critic_parameters(), self.critic_optimizer,
                              batch.steps, adv, returns, evaluate, cfg.ppo, self.generator,
                              value_only=True)
        else:
            if self.iterations == policy_starts and cfg.critic_warmup_iterations > 0:
                hand_over_state(self.critic_optimizer, self.optimizer,  # the first full update
                                self.policy.critic_parameters())
            info = ppo_update(list(self.policy.parameters()), self.optimizer, batch.steps,
                              adv, returns, evaluate, cfg.ppo, self.generator)
        self.iterations += 1
        return {**metrics, "critic_warmup": float(warmup), "ppo/lr": cfg.ppo.lr,
                **{f"ppo/{k}": v for k, v in info.items()}}

    def ppo_start(self) -> int:
        """The first iteration of the PPO stage (the critic warm-up, if any, then PPO)."""
        return self.config.imitation.iterations if self.config.imitation else 0

    def _play(self, tasks: Tasks, imitating: bool) -> tuple[Trials, torch.Tensor | None]:
        """The iteration's trials, played by the policy; while imitating, also the teacher's
        labels ``[T, tasks, trials, A]`` of every step (and the teacher acts with DAgger's
        mixture probability)."""
        cfg = self.config
        if not imitating:
            trials = RL2Agent(self.policy).trials(self.family, tasks, self.episodes_per_trial,
                                                  cfg.trials_per_task, self.generator,
                                                  self.device)
            return trials, None
        assert cfg.imitation is not None and self.teacher is not None
        env = TeacherEnv(self.family.make_env(tasks, cfg.trials_per_task, self.device),
                         self.teacher)
        labeller = LabellingPolicy(self.policy, env, cfg.imitation.mixture(self.iterations))
        trials = sample_trials(env, labeller, None, self.episodes_per_trial, self.generator)
        return trials, labeller.stacked_labels(trials.steps.masks.shape[0])

    def _imitation_update(self, trials: Trials, labels: torch.Tensor) -> dict[str, float]:
        """The imitation epochs on the actor alone (the critic is fitted in the PPO stage's
        warm-up): :func:`~adaptrl.optim.imitation.imitation_update` over whole trials."""
        im = self.config.imitation
        assert im is not None
        batch, (targets,) = trials.flatten().compact_with(flatten_trials(labels))
        info = imitation_update(self.policy.actor_parameters(), self.imitation_optimizer,
                                batch.inputs, targets, batch.steps.masks,
                                self.policy.action_distribution, im, self.generator)
        return {"beta": im.mixture(self.iterations), **info}

    def agent(self, step_sizes: list[float] | None = None) -> RL2Agent:
        """The recurrent agent as evaluated (``test_actions``); ``step_sizes`` is ignored
        (RL² adapts without gradients)."""
        return RL2Agent(self.policy, deterministic=self.config.test_actions == "mode")

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(),
                "optimizer": optimizer_state(self.optimizer),
                "critic_optimizer": optimizer_state(self.critic_optimizer),
                "imitation_optimizer": optimizer_state(self.imitation_optimizer),
                "env_steps": self.env_steps, "iterations": self.iterations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        load_optimizer_state(self.optimizer, state["optimizer"])
        # checkpoints from before the critic warm-up existed hold neither entry
        load_optimizer_state(self.critic_optimizer, state.get("critic_optimizer", {}))
        load_optimizer_state(self.imitation_optimizer, state.get("imitation_optimizer", {}))
        self.env_steps = int(state["env_steps"])
        self.iterations = int(state.get("iterations", 0))


register_algorithm("rl2", RL2Config, RL2,
                   "RL² (Duan et al. 2016): GRU policy adapting in memory over a trial, PPO",
                   unit=AdaptationUnit.EPISODES)
