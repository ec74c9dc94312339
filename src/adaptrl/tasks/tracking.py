"""``tracking-2d``: a point agent keeps close to moving targets while avoiding obstacles.

**Arena.** The square ``[-L, L]^2`` (``L = arena_size``, default 1). The agent starts at
the origin in every episode.

**Task parameters** (a task *is* its parameters: target motion is a closed-form function
of them and of the time step, nothing about it is random once the task is drawn).
``M = max_targets`` target slots and ``K = num_obstacles`` obstacles per task:

==================  ===========  ==========================================================
key                 shape        prior
==================  ===========  ==========================================================
target_start        [n, M, 2]    U[-0.8 L, 0.8 L]^2, position at t = 0
target_speed        [n, M]       U[speed_range] (distance per step), default [0.01, 0.05]
target_heading      [n, M]       U[0, 2 pi), direction of motion at t = 0
target_pattern      [n, M]       int64, uniform over ``patterns``: 0 linear-bounce,
                                 1 circular, 2 zig-zag
target_size         [n, M]       U[size_range], circle radius / zig-zag amplitude,
                                 default [0.1, 0.4]
target_active       [n, M]       bool, the first ``k`` slots, ``k ~ U{num_targets_range}``
obstacle_center     [n, K, 2]    angle U[0, 2 pi), distance from the origin
                                 U[r + 0.1, 0.9 L] (the start is always free)
obstacle_radius     [n, K]       U[obstacle_radius_range], default [0.05, 0.2]
==================  ===========  ==========================================================

**Target motion.** With ``s = speed * t`` the distance travelled, ``d`` the heading unit
vector and ``q`` its left normal, the unfolded path is

* linear-bounce: ``start + s d``;
* circular: counter-clockwise on the circle of radius ``size`` tangent to ``d`` at
  ``start`` (centre ``start + size q``), angular speed ``speed / size``;
* zig-zag: ``start + s d + size * tri(s / (4 size)) q`` with ``tri`` the unit triangle
  wave (period 1, range [-1, 1]): 45-degree zig-zags of amplitude ``size``;

and it is folded into the arena by mirror reflection at the walls (a target bounces off
walls). Targets pass through obstacles. Target velocity ``v_m(t) = x_m(t) - x_m(t-1)``.

**Action.** A velocity in ``Box(-max_action, max_action, (2,))`` (default 0.1), clipped.
The agent's proposed position ``p + a`` is clamped into the arena (a *wall hit* if any
coordinate had to be clamped); if the clamped position lies strictly inside an obstacle
(distance to its centre < radius) the move is cancelled (an *obstacle hit*) and the
agent stays where it was. Agent velocity ``u(t) = p(t) - p(t-1)`` (0 at reset).

**Reward** after the move to ``p(t+1)``, with targets at ``x_m(t+1)``::

    r = - sum_m active_m * ||x_m(t+1) - p(t+1)|| / sum_m active_m
        - collision_penalty * [obstacle hit] - wall_penalty * [wall hit]

(defaults ``collision_penalty = 1``, ``wall_penalty = 0.5``). No terminal states; the
episode is truncated at ``horizon`` (default 100).

**Observation** (float32, size ``2 + 5 M + 3 K``; 26 with the defaults):

* ``[0:2]`` agent position ``p(t)``;
* then for each target slot ``m``, 5 numbers: ``x_m(t) - p(t)`` (2), ``v_m(t) - u(t)``
  (2), ``active_m`` (1) — all zero for an inactive slot;
* then for each obstacle ``k``, 3 numbers: ``centre_k - p(t)`` (2), ``radius_k`` (1).

With ``observe_targets=False`` the target block is left out (size ``2 + 3 K``): the agent
must infer where the targets are and how they move from its rewards alone, which makes
the family a genuine meta-RL problem (a moving-goal navigation with obstacles) rather
than a reactive pursuit that a single non-adaptive policy can solve from its observation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from adaptrl.tasks.base import Split, StepResult, Tasks
from adaptrl.tasks.common import (
    EpisodeClock,
    Range,
    check_int,
    check_positive,
    check_range,
    uniform,
)
from adaptrl.tasks.splits import sample_split

PATTERNS: tuple[str, ...] = ("linear-bounce", "circular", "zig-zag")
START_CLEARANCE = 0.1  # free space between the start (origin) and any obstacle
TARGET_FIELD = 0.8  # targets start in [-0.8 L, 0.8 L]^2
OBSTACLE_FIELD = 0.9  # obstacle centres lie within 0.9 L of the origin


def reflect(x: torch.Tensor, half: float) -> torch.Tensor:
    """Fold the real line into ``[-half, half]`` by mirror reflection at the ends."""
    y = torch.remainder(x + half, 4 * half)
    return half - (y - 2 * half).abs()


def triangle(s: torch.Tensor) -> torch.Tensor:
    """Unit triangle wave: period 1, ``tri(0) = 0``, rising to 1 at 1/4, -1 at 3/4."""
    return 1 - 4 * (torch.remainder(s + 0.25, 1.0) - 0.5).abs()


def target_positions(params: dict[str, torch.Tensor], t: float | torch.Tensor,
                     arena_size: float) -> torch.Tensor:
    """Target positions at time ``t`` (a scalar, or a tensor of times ``[T]``).

    Returns ``[n, M, 2]`` for a scalar ``t`` and ``[T, n, M, 2]`` for a vector.
    """
    t = torch.as_tensor(t, dtype=params["target_speed"].dtype,
                        device=params["target_speed"].device)
    t = t.reshape(*t.shape, 1, 1)  # broadcast against [n, M]
    start = params["target_start"]
    speed, heading, size = (params[k] for k in ("target_speed", "target_heading", "target_size"))
    pattern = params["target_pattern"]
    d = torch.stack([heading.cos(), heading.sin()], -1)
    q = torch.stack([-heading.sin(), heading.cos()], -1)
    s = (speed * t).unsqueeze(-1)
    linear = start + s * d
    angle = heading - math.pi / 2 + speed * t / size
    circular = start + size.unsqueeze(-1) * (q + torch.stack([angle.cos(), angle.sin()], -1))
    zigzag = linear + (size * triangle(speed * t / (4 * size))).unsqueeze(-1) * q
    p = pattern.unsqueeze(-1)
    raw = torch.where(p == 0, linear, torch.where(p == 1, circular, zigzag))
    return reflect(raw, arena_size)


def _squared_gaps(position: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Squared distances ``[n, P, e]`` from agents ``[n, e, 2]`` to per-task points ``[n, P, 2]``.

    Laid out with the episodes innermost so that every op runs over contiguous memory.
    """
    dx = position[..., 0].unsqueeze(1) - points[..., 0].unsqueeze(-1)
    dy = position[..., 1].unsqueeze(1) - points[..., 1].unsqueeze(-1)
    return dx.square_().add_(dy.square_())


@dataclass(frozen=True)
class TrackingRules:
    """What every task of a ``tracking-2d`` family shares (module docstring)."""

    horizon: int = 100
    arena_size: float = 1.0
    max_action: float = 0.1
    collision_penalty: float = 1.0
    wall_penalty: float = 0.5
    observe_targets: bool = True


class TrackingEnv:
    """``tasks x episodes`` tracking agents stepped together; no autoreset.

    There are no terminal states, so every slot is live until the horizon and frozen
    after it. The agent's kinematics ``kin = [p, u]`` (``[tasks, episodes, 4]``) enter the
    observation through one gather and one multiply-add: ``obs = base + kin[..., source] *
    sign`` where ``base`` (per task) holds target and obstacle terms and ``sign`` is
    ``+1`` (own position), ``-active`` (target-relative terms), ``-1`` (obstacle-relative
    terms) or 0 — exact elementwise arithmetic, no matrix product.
    """

    def __init__(self, params: dict[str, torch.Tensor], episodes_per_task: int,
                 rules: TrackingRules, device: torch.device) -> None:
        self.device, self.rules = device, rules
        self.params = {k: v.to(device) if not v.is_floating_point()
                       else v.to(device, torch.float32) for k, v in params.items()}
        n = self.params["target_speed"].shape[0]
        self.num_tasks, self.episodes_per_task, self.horizon = n, episodes_per_task, rules.horizon
        self.active = self.params["target_active"].float()  # [n, M]
        self.num_active = self.active.sum(-1, keepdim=True).clamp_min(1.0)  # [n, 1]
        self.centers = self.params["obstacle_center"]  # [n, K, 2]
        self.radii_sq = self.params["obstacle_radius"].square().unsqueeze(-1)  # [n, K, 1]
        self._build_observation_map()
        self.clock = EpisodeClock(n, episodes_per_task, rules.horizon, device)
        self.kin = torch.zeros(n, episodes_per_task, 4, device=device)
        self.reset()

    def _build_observation_map(self) -> None:
        """``source`` (which of p_x, p_y, u_x, u_y), ``sign`` and the obstacle part of ``base``."""
        n, M = self.active.shape
        M = M if self.rules.observe_targets else 0
        K = self.centers.shape[1]
        a = self.active[:, :M]
        one, zero = torch.ones_like(self.active[:, :1]), torch.zeros_like(self.active[:, :1])
        target_sign = torch.stack([-a, -a, -a, -a, torch.zeros_like(a)], -1).reshape(n, 5 * M)
        obstacle_sign = torch.tensor([-1.0, -1.0, 0.0], device=self.device).repeat(K)
        self.sign = torch.cat([one, one, target_sign, obstacle_sign.expand(n, 3 * K)],
                              -1).unsqueeze(1)  # [n, 1, D]
        per_target = [0, 1, 2, 3, 0]  # rel position (p), rel velocity (u), flag
        self.source = torch.tensor([0, 1] + per_target * M + [0, 1, 0] * K, device=self.device)
        radii = self.params["obstacle_radius"].unsqueeze(-1)
        self.obstacle_base = torch.cat([self.centers, radii], -1).reshape(n, 3 * K)
        self.zeros = torch.cat([zero, zero], -1)

    def _targets(self, t: int) -> torch.Tensor:
        return target_positions(self.params, float(t), self.rules.arena_size)

    def _observe(self, now: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
        """The observation (module docstring) given target positions now and a step before."""
        parts = [self.zeros]
        if self.rules.observe_targets:
            a = self.active.unsqueeze(-1)  # [n, M, 1]
            parts.append(torch.cat([now * a, (now - before) * a, a], -1).flatten(1))  # [n, 5 M]
        base = torch.cat([*parts, self.obstacle_base], -1).unsqueeze(1)
        return torch.addcmul(base, self.kin.index_select(-1, self.source), self.sign)

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Start every agent at the origin (deterministic: ``generator`` is not used)."""
        self.clock.reset()
        self.kin.zero_()
        self.target_now = self._targets(0)  # [n, M, 2], shared by a task's episodes
        self.observation = self._observe(self.target_now, self._targets(-1))
        return self.observation.clone()

    def step(self, action: torch.Tensor) -> StepResult:
        live = self.clock.live  # all true before the horizon, all false after it
        if self.clock.t >= self.horizon:
            terminated, truncated = self.clock.tick(live)
            reward = torch.zeros_like(live, dtype=torch.float32)
            return StepResult(self.observation.clone(), reward, terminated, truncated)
        rules, half = self.rules, self.rules.arena_size
        position = self.kin[..., :2]
        proposed = position + action.clamp(-rules.max_action, rules.max_action)
        wall_hit = (proposed.abs() > half).any(-1)
        proposed = proposed.clamp(-half, half)
        obstacle_hit = (_squared_gaps(proposed, self.centers) < self.radii_sq).any(1)  # [n, e]
        moved = torch.where(obstacle_hit.unsqueeze(-1), position, proposed)
        targets = self._targets(self.clock.t + 1)  # [n, M, 2]
        dist = _squared_gaps(moved, targets).sqrt_()  # [n, M, e]
        closeness = (dist * self.active.unsqueeze(-1)).sum(1) / self.num_active
        reward = -(closeness + rules.collision_penalty * obstacle_hit
                   + rules.wall_penalty * wall_hit)
        self.kin = torch.cat([moved, moved - position], -1)
        terminated, truncated = self.clock.tick(live)
        self.observation = self._observe(targets, self.target_now)
        self.target_now = targets
        return StepResult(self.observation, reward, terminated, truncated)


class Tracking2D:
    """Task family ``tracking-2d`` (see the module docstring for the full specification)."""

    name = "tracking-2d"

    def __init__(self, max_targets: int = 3, num_targets_range: tuple[int, int] = (1, 3),
                 num_obstacles: int = 3, speed_range: Range = (0.01, 0.05),
                 size_range: Range = (0.1, 0.4),
                 obstacle_radius_range: Range = (0.05, 0.2),
                 patterns: Sequence[str] = PATTERNS, arena_size: float = 1.0,
                 max_action: float = 0.1, collision_penalty: float = 1.0,
                 wall_penalty: float = 0.5, horizon: int = 100,
                 observe_targets: bool = True) -> None:
        self.max_targets = check_int("max_targets", max_targets, 1)
        lo, hi = (num_targets_range if isinstance(num_targets_range, (tuple, list))
                  and len(num_targets_range) == 2 else (None, None))
        if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi <= max_targets):
            raise ValueError(f"num_targets_range must be integers (low, high) with "
                             f"1 <= low <= high <= max_targets={max_targets}, "
                             f"got {num_targets_range!r}")
        self.num_targets_range = (lo, hi)
        self.num_obstacles = check_int("num_obstacles", num_obstacles, 0)
        self.arena_size = check_positive("arena_size", arena_size)
        self.speed_range = check_range("speed_range", speed_range, 0.0)
        self.size_range = check_range("size_range", size_range, 0.0, strict_minimum=True)
        max_radius = OBSTACLE_FIELD * arena_size - START_CLEARANCE
        self.obstacle_radius_range = check_range("obstacle_radius_range",
                                                 obstacle_radius_range, 0.0, max_radius)
        unknown = [p for p in patterns if p not in PATTERNS]
        if not patterns or unknown:
            raise ValueError(f"patterns must be a non-empty subset of {PATTERNS}, "
                             f"got {tuple(patterns)!r}")
        self.pattern_ids = torch.tensor(sorted({PATTERNS.index(p) for p in patterns}))
        self.max_action = check_positive("max_action", max_action)
        if collision_penalty < 0 or wall_penalty < 0:
            raise ValueError("collision_penalty and wall_penalty must be >= 0, got "
                             f"{collision_penalty!r} and {wall_penalty!r}")
        self.horizon = check_int("horizon", horizon, 1)
        if not isinstance(observe_targets, bool):
            raise ValueError(f"observe_targets must be true or false, got {observe_targets!r}")
        self.rules = TrackingRules(self.horizon, self.arena_size, self.max_action,
                                   float(collision_penalty), float(wall_penalty), observe_targets)
        self.observation_space = self._observation_space()
        self.action_space = gym.spaces.Box(-max_action, max_action, (2,), np.float32)

    def _observation_space(self) -> gym.spaces.Box:
        L = self.arena_size
        max_speed = 2 * self.speed_range[1] + self.max_action  # per-axis bound on v - u
        M = self.max_targets if self.rules.observe_targets else 0
        target = [2 * L, 2 * L, max_speed, max_speed, 1.0]
        obstacle = [2 * L, 2 * L, self.obstacle_radius_range[1]]
        high = np.array([L, L] + target * M + obstacle * self.num_obstacles, dtype=np.float32)
        low = -high
        flags = 2 + 5 * np.arange(M) + 4
        radii = 2 + 5 * M + 3 * np.arange(self.num_obstacles) + 2
        low[flags] = 0.0
        low[radii] = 0.0
        return gym.spaces.Box(low, high, dtype=np.float32)

    def _draw(self, n: int, generator: torch.Generator) -> Tasks:
        M, K, L = self.max_targets, self.num_obstacles, self.arena_size
        lo, hi = self.num_targets_range
        start = uniform(-TARGET_FIELD * L, TARGET_FIELD * L, (n, M, 2), generator)
        speed = uniform(*self.speed_range, (n, M), generator)
        heading = uniform(0.0, 2 * math.pi, (n, M), generator)
        choice = torch.randint(len(self.pattern_ids), (n, M), generator=generator)
        size = uniform(*self.size_range, (n, M), generator)
        count = torch.randint(lo, hi + 1, (n, 1), generator=generator)
        radius = uniform(*self.obstacle_radius_range, (n, K), generator)
        angle = uniform(0.0, 2 * math.pi, (n, K), generator)
        reach = radius + START_CLEARANCE
        distance = reach + (OBSTACLE_FIELD * L - reach) * torch.rand(n, K, generator=generator)
        center = distance.unsqueeze(-1) * torch.stack([angle.cos(), angle.sin()], -1)
        return Tasks({
            "target_start": start, "target_speed": speed, "target_heading": heading,
            "target_pattern": self.pattern_ids[choice], "target_size": size,
            "target_active": torch.arange(M).unsqueeze(0) < count,
            "obstacle_center": center, "obstacle_radius": radius,
        })

    def sample(self, n: int, split: Split, generator: torch.Generator) -> Tasks:
        return sample_split(self._draw, n, split, generator)

    def make_env(self, tasks: Tasks, episodes_per_task: int,
                 device: torch.device | str = "cpu") -> TrackingEnv:
        return TrackingEnv(tasks.params, episodes_per_task, self.rules, torch.device(device))
