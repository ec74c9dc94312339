"""The trajectory container: everything sampled from a batched env, time-major."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import torch


@dataclass(frozen=True)
class Trajectories:
    """Tensors shaped ``[T, tasks, episodes, ...]`` (``T`` = time steps).

    ``masks[t]`` is 1 where step ``t`` was taken in a live episode (before termination or
    truncation) and 0 for the frozen padding after it: losses weight by ``masks`` so no
    transition after an episode's end ever counts. ``terminated[t]`` marks that step ``t``
    reached a terminal state (no bootstrapping past it).

    Two optional fields, filled by the samplers (``None`` in a hand-built batch), make the
    batch a source of transitions ``(s, a, r, s')`` for replay, TD targets and models:

    * ``truncated[t]`` marks that step ``t`` was the last of its episode and the episode
      was *cut* rather than terminated: the env's horizon or time limit, or the sampler's
      end. Bootstrap from ``next_observations[t]`` there. An episode ends at exactly one
      step, with exactly one of ``terminated`` / ``truncated`` set (terminated wins, as
      gymnasium's bootstrapping rule has it).
    * ``next_observations[t]`` is the observation the env returned after step ``t``: the
      next step's observation inside an episode, and at an episode's last step its *true
      final observation* (the terminal state, or the state at truncation). The envs never
      autoreset (:mod:`adaptrl.tasks.base`), so no reset observation ever appears here.
      On padding steps (``masks = 0``) it is whatever the frozen env returned, or zeros.
    """

    observations: torch.Tensor  # [T, n, e, *obs]
    actions: torch.Tensor  # [T, n, e, *act]
    rewards: torch.Tensor  # [T, n, e]
    masks: torch.Tensor  # [T, n, e] float
    terminated: torch.Tensor  # [T, n, e] bool
    log_probs: torch.Tensor  # [T, n, e] (behaviour policy, detached)
    truncated: torch.Tensor | None = None  # [T, n, e] bool
    next_observations: torch.Tensor | None = None  # [T, n, e, *obs]

    @property
    def horizon(self) -> int:
        return self.rewards.shape[0]

    @property
    def num_tasks(self) -> int:
        return self.rewards.shape[1]

    @property
    def episodes_per_task(self) -> int:
        return self.rewards.shape[2]

    @property
    def num_steps(self) -> int:
        """Environment steps actually taken (live transitions)."""
        return int(self.masks.sum().item())

    def episode_mask(self) -> torch.Tensor:
        """``[tasks, episodes]``: 1 for a sampled episode, 0 for a fully masked padding
        episode (a batch counted in steps holds a different number of episodes per task)."""
        return self.masks[0]

    def episode_returns(self) -> torch.Tensor:
        """Undiscounted return of every episode, ``[tasks, episodes]`` (0 for padding)."""
        return (self.rewards * self.masks).sum(0)

    def task_returns(self) -> torch.Tensor:
        """Mean undiscounted episode return per task over its sampled episodes, ``[tasks]``."""
        valid = self.episode_mask()
        return (self.episode_returns() * valid).sum(-1) / valid.sum(-1).clamp_min(1.0)

    def final_observations(self) -> torch.Tensor:
        """``[tasks, episodes, *obs]``: every episode's true final observation (the
        terminal state, or the state at truncation), for batches whose episodes start at
        ``t = 0`` (:func:`~adaptrl.rollouts.sampler.rollout`; for trials see
        :meth:`~adaptrl.rollouts.trial_sampler.Trials.final_observations`). A fully masked
        padding episode gets its first entry (zeros or junk)."""
        return last_live(self._require_next(), self.masks)

    def _require_next(self) -> torch.Tensor:
        if self.next_observations is None:
            raise ValueError("this batch has no next_observations (it was built by hand, not "
                             "by a sampler): pass next_observations and truncated")
        return self.next_observations

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Trajectories:
        """``fn`` applied to every per-step field (the optional ones only where present)."""
        return replace(self, **{f.name: fn(x) for f in fields(self)
                                if (x := getattr(self, f.name)) is not None})

    def select_tasks(self, index: torch.Tensor | slice) -> Trajectories:
        return self.map(lambda x: x[:, index])

    def select_episodes(self, index: torch.Tensor | slice) -> Trajectories:
        return self.map(lambda x: x[:, :, index])

    def take_episodes(self, index: torch.Tensor) -> Trajectories:
        """Per task, the episodes ``index[task]`` (``[tasks, k]``, long): a different
        selection for every task, gathered along the episode dimension."""
        return self.map(lambda x: gather_broadcast(x, 2, index))

    def to(self, device: torch.device | str) -> Trajectories:
        return self.map(lambda x: x.to(device))

    @staticmethod
    def cat_episodes(parts: Sequence[Trajectories]) -> Trajectories:
        """Batches of the same tasks and horizon side by side, along the episode dimension
        (an optional field is kept only if every part has it)."""
        if len(parts) == 1:
            return parts[0]

        def cat(name: str) -> torch.Tensor | None:
            values = [getattr(p, name) for p in parts]
            return None if any(v is None for v in values) else torch.cat(values, dim=2)
        changes: dict[str, Any] = {f.name: cat(f.name) for f in fields(Trajectories)}
        return replace(parts[0], **changes)


def gather_broadcast(x: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """``x.gather(dim, ...)`` with ``index`` naming the dimensions of ``x`` that end at
    ``dim`` (e.g. ``[tasks, k]`` for the episode dim of ``[T, tasks, episodes, ...]``) and
    broadcast over the others, which are kept whole."""
    lead = dim + 1 - index.dim()
    view = index.view(*([1] * lead), *index.shape, *([1] * (x.dim() - dim - 1)))
    return x.gather(dim, view.expand(*x.shape[:dim], index.shape[-1], *x.shape[dim + 1:]))


def pack_live_steps(traj: Trajectories, per_step: torch.Tensor
                    ) -> tuple[Trajectories, torch.Tensor]:
    """Every task's live steps moved into one long column: ``[L, tasks, 1, ...]``, with
    ``L`` the most live steps of any task and the rest of a shorter task's column masked.

    Step-counted batches hold many short episodes, each padded to the horizon; a loss that
    is a mean of per-step terms over live steps (the policy-gradient losses of
    :mod:`adaptrl.rollouts.losses`) has the same value on the packed batch without the
    padding's memory and compute. Only for per-step losses of a stateless policy:
    anything that needs the time structure (returns, baselines) must be computed before.
    ``per_step``, shaped like ``traj.masks`` (e.g. the advantages), is packed alike.
    """
    T, n, e = traj.masks.shape
    live = traj.masks.transpose(0, 1).reshape(n, T * e) > 0
    width = int(live.sum(-1).max().item())
    order = (~live).to(torch.uint8).argsort(dim=-1, stable=True)[:, :width]  # live first

    def pack(x: torch.Tensor) -> torch.Tensor:
        flat = x.transpose(0, 1).reshape(n, T * e, *x.shape[3:])
        return gather_broadcast(flat, 1, order).transpose(0, 1).unsqueeze(2)

    return traj.map(pack), pack(per_step)


def last_live(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``x [T, *batch, ...]`` at every episode's last live step: ``[*batch, ...]``.

    ``masks [T, *batch]`` must be prefixes (an episode's live steps are ``0..len-1``, as the
    samplers lay them out); an episode with no live step gives ``x[0]``.
    """
    last = (masks > 0).sum(0).sub_(1).clamp_(min=0)  # [*batch]
    index = last.view(1, *last.shape, *([1] * (x.dim() - masks.dim())))
    return x.gather(0, index.expand(1, *x.shape[1:])).squeeze(0)


def episode_ends(observations: torch.Tensor, masks: torch.Tensor, terminated: torch.Tensor,
                 finals: torch.Tensor, steps: Sequence[int]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(truncated, next_observations)`` of a freshly sampled batch, built after sampling
    so that the per-step hot loop pays nothing for them.

    The time axis ``T = K x H`` holds ``K`` consecutive blocks (episodes) of ``H`` steps
    per slot, every block started by ``env.reset()`` (``K = 1`` for a rollout; the episodes
    of a trial for :func:`~adaptrl.rollouts.trial_sampler.sample_trials`). In block ``k`` the
    sampler ran ``steps[k]`` env steps (fewer than ``H`` when every slot had ended) and
    ``finals[k]`` (``[n, e, *obs]``) is the observation the env returned after the last
    of them. ``observations`` must be zero after a block's ``steps[k]`` (never written).

    The observation after step ``t`` of a block is the one recorded at ``t + 1``, or
    ``finals[k]`` after the block's last step run: since the envs never autoreset, it is at
    an episode's end its true final observation, whatever the env does to a slot after the
    end. An episode ends at its last live step (the next step of the block is padding or
    beyond the block); it was truncated there unless it terminated, which also covers an
    episode the sampler cut at the end of a block without the env saying so.
    """
    K = len(steps)
    block = observations.view(K, -1, *observations.shape[1:])
    nxt = torch.zeros_like(block)
    nxt[:, :-1] = block[:, 1:]
    ran = torch.as_tensor(steps, device=observations.device) - 1
    nxt[torch.arange(K, device=observations.device), ran] = finals.to(nxt.dtype)
    live = (masks > 0).view(K, -1, *masks.shape[1:])
    live_next = torch.zeros_like(live)
    live_next[:, :-1] = live[:, 1:]
    truncated = (live & ~live_next).view_as(terminated) & ~terminated
    return truncated, nxt.view_as(observations)

