"""The transitions view: ``(s, a, r, s', terminated, truncated)`` per task, for replay,
TD learning and model fitting.

A :class:`~adaptrl.rollouts.trajectories.Trajectories` batch is time-major
``[T, tasks, episodes, ...]`` with padding after every episode's end. Value-based and
model-based learners want the opposite layout: one flat list of real transitions per task,
``[tasks, N, ...]``, where ``next_obs`` is the true next observation (at an episode's last
step, its true final observation, kept by the samplers) and no transition spans a reset.
:func:`to_transitions` builds it with a handful of tensor ops (no Python loop over steps,
episodes or tasks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

import torch

from adaptrl.rollouts.trajectories import Trajectories, gather_broadcast

FieldSpec = dict[str, tuple[tuple[int, ...], torch.dtype]]
"""Per data field of :class:`Transitions`: the shape of one transition's entry (without
the ``[tasks, N]`` dims) and its dtype."""


@dataclass(frozen=True)
class Transitions:
    """A batch of transitions per task: every data field is ``[tasks, N, ...]``.

    ``obs`` / ``next_obs`` ``[tasks, N, *obs]``, ``action [tasks, N, *act]``, ``reward``
    ``[tasks, N]``, ``terminated`` / ``truncated`` ``[tasks, N]`` bool. ``terminated``: the
    transition reached a terminal state (its TD target does not bootstrap); ``truncated``:
    the episode was cut after it (the target bootstraps from ``V(next_obs)``, the true
    state at truncation). Row order within a task is chronological, episode by episode.

    ``valid [tasks, N]`` (bool) is set when tasks hold different numbers of transitions:
    task ``i``'s real transitions are its first ``valid[i].sum()`` rows and the rest is
    padding that no loss may count. ``None`` means every row is real.
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    valid: torch.Tensor | None = None

    DATA = ("obs", "action", "reward", "next_obs", "terminated", "truncated")
    """The data fields, in order (everything but ``valid``)."""

    @property
    def num_tasks(self) -> int:
        return self.reward.shape[0]

    @property
    def size(self) -> int:
        """``N``: rows per task (padding included)."""
        return self.reward.shape[1]

    @property
    def device(self) -> torch.device:
        return self.reward.device

    def counts(self) -> torch.Tensor:
        """Real transitions per task, ``[tasks]`` (long)."""
        if self.valid is None:
            return torch.full((self.num_tasks,), self.size, dtype=torch.long,
                              device=self.device)
        return self.valid.sum(-1)

    def data(self) -> dict[str, torch.Tensor]:
        """The data fields by name."""
        return {name: getattr(self, name) for name in self.DATA}

    def spec(self) -> FieldSpec:
        """Shape (per transition) and dtype of every data field: what a replay buffer
        allocates from."""
        return {name: (tuple(x.shape[2:]), x.dtype) for name, x in self.data().items()}

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Transitions:
        """``fn`` applied to every field (``valid`` too, when present)."""
        return replace(self, **{f.name: fn(x) for f in fields(self)
                                if (x := getattr(self, f.name)) is not None})

    def select_tasks(self, index: torch.Tensor | slice) -> Transitions:
        return self.map(lambda x: x[index])

    def to(self, device: torch.device | str) -> Transitions:
        return self.map(lambda x: x.to(device))

    @staticmethod
    def cat(parts: Sequence[Transitions]) -> Transitions:
        """Batches of the same tasks one after the other along ``N``. Padded parts
        (``valid`` set) are concatenated as they are: the result's ``valid`` is then no
        longer a prefix, which the replay buffers accept."""
        if any(p.valid is not None for p in parts):
            valid: torch.Tensor | None = torch.cat(
                [torch.ones(p.num_tasks, p.size, dtype=torch.bool, device=p.device)
                 if p.valid is None else p.valid for p in parts], dim=1)
        else:
            valid = None
        data = {name: torch.cat([getattr(p, name) for p in parts], dim=1)
                for name in Transitions.DATA}
        return Transitions(**data, valid=valid)


def to_transitions(traj: Trajectories) -> Transitions:
    """Every live step of ``traj`` as a transition, flat per task: ``[tasks, N, ...]``.

    Rows are in chronological order per task: episode by episode (the episode dimension,
    in order), each episode's steps in time order. ``next_obs`` is the recorded
    observation after the step, at an episode's last step its true final observation, so
    a transition never spans a reset and a truncated episode's last transition can be
    bootstrapped. Padding steps (``masks = 0``) never appear. When tasks have different
    numbers of live steps, ``N`` is the largest count and ``valid`` marks each task's real
    rows (a prefix); otherwise ``valid`` is ``None``.

    Needs a batch from the samplers (``truncated`` and ``next_observations`` recorded).
    Also works on :class:`~adaptrl.rollouts.trial_sampler.Trials` steps (``trials.steps``,
    not compacted): each trial is then a stream of consecutive episodes.
    """
    next_obs = traj._require_next()
    assert traj.truncated is not None  # set together with next_observations
    T, n, e = traj.masks.shape

    def flat(x: torch.Tensor) -> torch.Tensor:  # [T, n, e, ...] -> [n, e * T, ...]
        return x.movedim(0, 2).reshape(n, e * T, *x.shape[3:])

    live = flat(traj.masks > 0)
    per_step = {"obs": traj.observations, "action": traj.actions, "reward": traj.rewards,
                "next_obs": next_obs, "terminated": traj.terminated,
                "truncated": traj.truncated}
    if bool(live.all()):  # no padding anywhere (e.g. fixed-length episodes): no gather
        return Transitions(**{k: flat(v) for k, v in per_step.items()})
    counts = live.sum(-1)
    width = int(counts.max().item())
    order = (~live).to(torch.uint8).argsort(dim=-1, stable=True)[:, :width]  # live first
    out = {k: gather_broadcast(flat(v), 1, order) for k, v in per_step.items()}
    valid = torch.arange(width, device=counts.device) < counts[:, None]
    return Transitions(**out, valid=None if bool(valid.all()) else valid)
