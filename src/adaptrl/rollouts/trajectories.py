"""The trajectory container: everything sampled from a batched env, time-major."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass(frozen=True)
class Trajectories:
    """Tensors shaped ``[T, tasks, episodes, ...]`` (``T`` = time steps).

    ``masks[t]`` is 1 where step ``t`` was taken in a live episode (before termination or
    truncation) and 0 for the frozen padding after it: losses weight by ``masks`` so no
    transition after an episode's end ever counts. ``terminated[t]`` marks that step ``t``
    reached a terminal state (no bootstrapping past it).
    """

    observations: torch.Tensor  # [T, n, e, *obs]
    actions: torch.Tensor  # [T, n, e, *act]
    rewards: torch.Tensor  # [T, n, e]
    masks: torch.Tensor  # [T, n, e] float
    terminated: torch.Tensor  # [T, n, e] bool
    log_probs: torch.Tensor  # [T, n, e] (behaviour policy, detached)

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

    def select_tasks(self, index: torch.Tensor | slice) -> Trajectories:
        return replace(self, **{f.name: getattr(self, f.name)[:, index] for f in fields(self)})

    def select_episodes(self, index: torch.Tensor | slice) -> Trajectories:
        return replace(self, **{f.name: getattr(self, f.name)[:, :, index] for f in fields(self)})

    def take_episodes(self, index: torch.Tensor) -> Trajectories:
        """Per task, the episodes ``index[task]`` (``[tasks, k]``, long): a different
        selection for every task, gathered along the episode dimension."""
        return replace(self, **{f.name: gather_broadcast(getattr(self, f.name), 2, index)
                                for f in fields(self)})

    def to(self, device: torch.device | str) -> Trajectories:
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})


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

    packed = Trajectories(*(pack(getattr(traj, f.name)) for f in fields(traj)))
    return packed, pack(per_step)

