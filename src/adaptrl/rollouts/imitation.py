"""Imitation of a teacher by a recurrent policy: DAgger over whole trials (Ross et al. 2011).

A *teacher* is any agent that acts from the history of the trial it is in, typically a
classic exploration algorithm (``adaptrl.agents.classic``: BEB, PSRL, UCRL2, ...).
:class:`TeacherEnv` lets it follow a trial as the trial is played, step by step, whoever
acts; :class:`LabellingPolicy` plays the trial with the learner's policy (DAgger: the
learner's own state distribution) and records, at every step, the teacher's action
probabilities in the very state and history the learner is in. :func:`imitation_loss`
is the cross-entropy of the learner's policy to those labels over the live steps.

This is a way to *start* a memory-based meta-learner (RL²) from the behaviour of a
hand-designed algorithm that explores well, so that its reinforcement learning begins
beyond the local optimum of exploiting too soon; the learner is scored on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch.distributions import Distribution

from adaptrl.models.functional import Params
from adaptrl.rollouts.trial_sampler import RecurrentPolicy
from adaptrl.tasks.base import BatchedEnv, StepResult


class Teacher(Protocol):
    """An agent that follows a trial in ``[tasks, trials]`` slots and says how it would act.

    ``begin_trial`` is called once per trial (fresh memory), ``begin_episode`` at every
    episode start, ``observe`` after every step with the live mask (a slot whose episode
    has ended must not learn from the frozen step), ``action_probs`` before every step.
    """

    def begin_trial(self, num_tasks: int, trials: int, device: torch.device) -> None: ...

    def begin_episode(self, obs: torch.Tensor, generator: torch.Generator | None) -> None: ...

    def action_probs(self, obs: torch.Tensor, step: int) -> torch.Tensor: ...

    def observe(self, obs: torch.Tensor, action: torch.Tensor, result: StepResult,
                live: torch.Tensor) -> None: ...


class TeacherEnv:
    """A batched env whose steps a :class:`Teacher` watches; otherwise the env itself.

    ``reset`` starts a new trial for the teacher the first time and a new episode after;
    :meth:`teacher_probs` are the teacher's action probabilities ``[tasks, trials, A]``
    in the current observation at the current step of the episode.
    """

    def __init__(self, env: BatchedEnv, teacher: Teacher) -> None:
        self.env, self.teacher = env, teacher
        self.num_tasks, self.episodes_per_task = env.num_tasks, env.episodes_per_task
        self.horizon, self.device = env.horizon, env.device
        self.teacher.begin_trial(env.num_tasks, env.episodes_per_task, env.device)
        self.obs: torch.Tensor | None = None
        self.live = torch.ones(env.num_tasks, env.episodes_per_task, dtype=torch.bool,
                               device=env.device)
        self.step_in_episode = 0

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        self.obs = self.env.reset(generator)
        self.live = torch.ones_like(self.live)
        self.step_in_episode = 0
        self.teacher.begin_episode(self.obs, generator)
        return self.obs

    def teacher_probs(self) -> torch.Tensor:
        if self.obs is None:
            raise RuntimeError("TeacherEnv.teacher_probs before the first reset()")
        return self.teacher.action_probs(self.obs, self.step_in_episode)

    def step(self, action: torch.Tensor) -> StepResult:
        if self.obs is None:
            raise RuntimeError("TeacherEnv.step before the first reset()")
        result = self.env.step(action)
        self.teacher.observe(self.obs, action, result, self.live)
        self.live = self.live & ~(result.terminated | result.truncated)
        self.obs = result.observation
        self.step_in_episode += 1
        return result


@dataclass
class LabellingPolicy:
    """The learner's recurrent policy for :func:`sample_trials`, labelled by a teacher.

    Before each action it records :meth:`TeacherEnv.teacher_probs` (the label of that
    step); with probability ``beta`` it then takes the teacher's action instead of its own
    (DAgger's mixture; ``beta = 0`` is pure on-policy labelling). Everything else is the
    wrapped policy's.
    """

    policy: RecurrentPolicy
    env: TeacherEnv
    beta: float = 0.0
    labels: list[torch.Tensor] = field(default_factory=list)

    @property
    def input_dim(self) -> int:
        return self.policy.input_dim

    def encode(self, obs: torch.Tensor, prev_action: torch.Tensor, prev_reward: torch.Tensor,
               prev_done: torch.Tensor, clock: torch.Tensor | None = None,
               prev_obs: torch.Tensor | None = None) -> torch.Tensor:
        return self.policy.encode(obs, prev_action, prev_reward, prev_done, clock, prev_obs)

    def initial_feedback(self, batch: tuple[int, ...], device: torch.device
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.policy.initial_feedback(batch, device)

    def initial_state(self, batch: tuple[int, ...], device: torch.device) -> torch.Tensor:
        return self.policy.initial_state(batch, device)

    def step(self, x: torch.Tensor, h: torch.Tensor, params: Params | None = None
             ) -> tuple[Distribution, torch.Tensor]:
        return self.policy.step(x, h, params)

    def mode(self, dist: Distribution) -> torch.Tensor:
        return self.policy.mode(dist)

    def sample(self, dist: Distribution, generator: torch.Generator) -> torch.Tensor:
        probs = self.env.teacher_probs()
        self.labels.append(probs)
        own = self.policy.sample(dist, generator)
        if self.beta <= 0.0:
            return own
        flat = probs.reshape(-1, probs.shape[-1])
        teacher = torch.multinomial(flat, 1, generator=generator).reshape(own.shape)
        use = torch.rand(own.shape, generator=generator, device=own.device) < self.beta
        return torch.where(use, teacher, own)

    def stacked_labels(self, steps: int) -> torch.Tensor:
        """The labels ``[T, tasks, trials, A]`` of a trial of ``steps`` time steps (slots
        not stepped, after every episode ended early, are uniform; they are padding)."""
        if not self.labels:
            raise RuntimeError("no labels recorded: play a trial first")
        labels = torch.stack(self.labels)
        if labels.shape[0] < steps:
            pad = torch.full((steps - labels.shape[0], *labels.shape[1:]),
                             1.0 / labels.shape[-1], dtype=labels.dtype, device=labels.device)
            labels = torch.cat([labels, pad])
        return labels


def imitation_loss(logits: torch.Tensor, targets: torch.Tensor,
                   masks: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cross-entropy ``-sum_a p_teacher(a) log pi(a)`` averaged over the live steps.

    ``logits`` and ``targets`` are ``[T, ..., A]``, ``masks [T, ...]``. Also returns
    ``KL(p_teacher || pi)`` (the cross-entropy less the labels' own entropy, which a teacher
    with tied actions keeps above 0: 0 is a perfect imitation) and the *agreement*: the
    fraction of live steps whose most likely action is one the teacher
    takes with positive probability (for a greedy teacher with ties, any of its ties).
    """
    log_probs = torch.log_softmax(logits, dim=-1)
    per_step = -(targets * log_probs).sum(-1)
    weight = masks / masks.sum().clamp_min(1.0)
    loss = (per_step * weight).sum()
    with torch.no_grad():
        hit = targets.gather(-1, logits.argmax(-1, keepdim=True)).squeeze(-1) > 0
        agreement = (hit.to(weight.dtype) * weight).sum()
        entropy = -(targets * targets.clamp_min(1e-12).log()).sum(-1)
        kl = ((per_step - entropy) * weight).sum()
    return loss, {"imitation_loss": loss.detach(), "kl": kl, "agreement": agreement}
