"""Pieces shared by the built-in batched families: argument checks, uniform task priors
and the episode-end bookkeeping of :mod:`adaptrl.tasks.base` (no autoreset, freeze after
the end, ``terminated`` and ``truncated`` kept apart).

Every built-in env keeps its flags in an :class:`EpisodeClock` so that the freeze rule is
written once: an env computes its next state for *all* slots, keeps the old state where
``clock.live`` is false, multiplies its reward by ``live`` and calls :meth:`EpisodeClock.tick`.
(An env without terminal states may instead return its frozen result once the horizon
has passed, since then every slot ends at the same step.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from adaptrl.tasks.base import Tasks

Range = tuple[float, float]


def check_int(name: str, value: int, minimum: int) -> int:
    """``value`` as an int, or a ValueError naming ``name`` when it is not an int >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_positive(name: str, value: float) -> float:
    """``value`` as a float, or a ValueError naming ``name`` when it is not finite and > 0."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_range(name: str, value: tuple[float, float], minimum: float | None = None,
                maximum: float | None = None, strict_minimum: bool = False) -> Range:
    """A ``(low, high)`` pair with ``low <= high`` inside ``[minimum, maximum]``.

    ``strict_minimum`` demands ``low > minimum`` (for masses, lengths: a zero would divide).
    The ValueError names ``name`` and what is allowed.
    """
    try:
        if isinstance(value, str):
            raise TypeError
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high) of numbers, got {value!r}") from None
    allowed = ("(" if strict_minimum or minimum is None else "[")
    allowed += f"{minimum if minimum is not None else '-inf'}, "
    allowed += f"{maximum}]" if maximum is not None else "inf)"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if lo > hi:
        raise ValueError(f"{name} must satisfy low <= high, got inverted range {value!r}")
    below = minimum is not None and (lo <= minimum if strict_minimum else lo < minimum)
    above = maximum is not None and hi > maximum
    if below or above:
        raise ValueError(f"{name} must lie within {allowed}, got {value!r}")
    return lo, hi


def check_some_range_varies(family: str, ranges: Mapping[str, Range]) -> None:
    """At least one range must be wider than a point, or a train/test split would be empty."""
    if all(lo == hi for lo, hi in ranges.values()):
        raise ValueError(f"{family}: at least one of {sorted(ranges)} must be a range with "
                         "low < high; with every parameter fixed there is a single task and "
                         "the train / test splits cannot both be non-empty")


def check_ranges(family: str, given: Mapping[str, Range], minimum: float = 0.0,
                 strict_minimum: bool = True, must_vary: bool = True) -> dict[str, Range]:
    """``given`` (``{key: (low, high)}``) checked as ``<key>_range`` constructor arguments,
    each within ``(minimum, inf)`` (``[minimum, inf)`` unless ``strict_minimum``), at least
    one of them wider than a point (:func:`check_some_range_varies`) when ``must_vary``
    (False where separate train / test sets make the tasks vary): a physics family's
    ``ranges`` (:class:`~adaptrl.tasks.base.DeclaresRanges`)."""
    ranges = {k: check_range(f"{k}_range", v, minimum, strict_minimum=strict_minimum)
              for k, v in given.items()}
    if must_vary:
        check_some_range_varies(family, {f"{k}_range": v for k, v in ranges.items()})
    return ranges


def uniform(low: float, high: float, shape: tuple[int, ...],
            generator: torch.Generator) -> torch.Tensor:
    """``U[low, high]`` draws (float32, CPU) from ``generator``."""
    return low + (high - low) * torch.rand(shape, generator=generator)


def draw_uniform_params(ranges: Mapping[str, Range], n: int,
                        generator: torch.Generator) -> Tasks:
    """``n`` tasks whose scalar parameters are independent uniforms over ``ranges``.

    Keys are drawn in sorted order so that the stream a seed gives does not depend on
    the order a caller listed the ranges in.
    """
    return Tasks({key: uniform(*ranges[key], (n,), generator) for key in sorted(ranges)})


class EpisodeClock:
    """The ``terminated`` / ``truncated`` flags and step counter of a batched env.

    ``truncated`` is set at the horizon for slots that did not terminate; once a slot has
    ended, both flags stay as they are until :meth:`reset`.
    """

    def __init__(self, num_tasks: int, episodes_per_task: int, horizon: int,
                 device: torch.device) -> None:
        shape = (num_tasks, episodes_per_task)
        self.horizon = horizon
        self.terminated = torch.zeros(shape, dtype=torch.bool, device=device)
        self.truncated = torch.zeros(shape, dtype=torch.bool, device=device)
        self.t = 0

    def reset(self) -> None:
        self.terminated.zero_()
        self.truncated.zero_()
        self.t = 0

    @property
    def live(self) -> torch.Tensor:
        """``[tasks, episodes]`` bool: the episode has not ended yet."""
        return ~(self.terminated | self.truncated)

    def tick(self, live: torch.Tensor, terminal: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance one step; ``terminal`` marks slots whose new state is terminal.

        ``live`` is the mask from *before* the step. Returns copies of the new flags.
        """
        if terminal is not None:
            self.terminated = self.terminated | (terminal & live)
        self.t += 1
        if self.t >= self.horizon:
            self.truncated = self.truncated | ~self.terminated
        return self.terminated.clone(), self.truncated.clone()


def freeze(live: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``new`` where the slot is live, ``old`` where its episode has ended (``[n, e, ...]``)."""
    mask = live.reshape(*live.shape, *([1] * (new.dim() - live.dim())))
    return torch.where(mask, new, old)


DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}


def check_dtype(name: str, value: str) -> torch.dtype:
    """The torch dtype called ``value`` (``"float32"`` or ``"float64"``)."""
    if value not in DTYPES:
        raise ValueError(f"{name} must be one of {sorted(DTYPES)}, got {value!r}")
    return DTYPES[value]


Dynamics = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(obs [tasks, batch, d], action [tasks, batch, ...]) -> next obs [tasks, batch, d]``."""


def env_step_dynamics(make_env: Callable[[int], Any],
                      set_state: Callable[[Any, torch.Tensor], None]) -> Dynamics:
    """A family's own env step as a dynamics function of observations (the MPC oracle's
    model): ``make_env(batch)`` builds an env of ``batch`` slots per task (once per batch
    size, on first use), ``set_state(env, obs)`` puts the observed state into it; the
    env's clock is reset so that no step is cut by the horizon."""
    envs: dict[int, Any] = {}

    def step(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        batch = obs.shape[1]
        if batch not in envs:
            envs[batch] = make_env(batch)
        env = envs[batch]
        env.clock.reset()
        set_state(env, obs)
        next_obs: torch.Tensor = env.step(action).observation
        return next_obs
    return step
