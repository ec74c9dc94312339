"""``flappy-bird``: the PyGame Learning Environment's FlappyBird (Tasfi 2016) in batched
torch, with a task-varied pipe gap, gravity and flap strength.

A bird at a fixed x flaps through gaps in pipes that scroll towards it. The facts taken from
PLE (the project's REFERENCES.md, "PyGame Learning Environment games"): a 288 x 512
screen at 30 fps; pipe gap 100 px; gravity 1 px per step^2; a flap sets the velocity to -9;
the fall speed is at most 10; pipes move 4 px per step; the ground at ``0.79 H``; a pipe's
gap top ``~ U[gap / 4, 0.79 H * 0.6 - gap / 2]``; +1 per pipe passed, -5 on death; an
8-number state. Riemer et al. (2019, MER) narrow the gap over 5 stages
(``adaptrl.rollouts.schedule.parameter_stream`` on ``gap``, ``order="decreasing"``).

One step, for every ``[task, episode]`` slot at once (``y`` is the bird's top edge, screen
coordinates, y down; action 0 = no-op, 1 = flap)::

    v' = -flap_speed if flap else min(v + gravity, 10)      y' = min(y + v', ground - 24)
    every pipe's x -= 4

The bird (34 x 24 px, left edge at ``x = 0.2 W``) **crashes** when it overlaps a pipe (its
box reaches above the gap's top or below its bottom while it overlaps the pipe's 52 px
width) or when its bottom reaches the ground: reward -5, **terminated**. Otherwise each
pipe whose centre passes the bird's centre this step gives +1. *Truncated* at ``horizon``
(500 steps, about 12 pipes).

Pipes: three at a time, ``0.5 W = 144`` px apart (left edge to left edge), the first at
``x = W`` (just off the screen) when an episode starts, each gap top drawn from the
generator given to ``reset``; a pipe that leaves the screen on the left is replaced by a
new one ``144`` px behind the last (one uniform per slot every step, used where a pipe is
replaced). The bird starts at rest, half-way between the top of the screen and the ground.
No autoreset; an ended slot is frozen (:mod:`adaptrl.tasks.base`).

Choices where REFERENCES.md leaves PLE's detail open (the simplest faithful ones): the
original game's sprite sizes (bird 34 x 24, pipe width 52) and bird x (``0.2 W``); pipe
spacing ``0.5 W``; the flap replaces gravity on its step; a crash step gives -5 only (no
+1 for a pipe passed on the same step); no ceiling (a bird above the screen still hits the
upper pipe, which extends upwards without end); the bird rests on the ground when it hits it.

Observation (float32, normalised, PLE's 8 numbers): ``[y / H, v / 10, dx_1 / W, top_1 / H,
bottom_1 / H, dx_2 / W, top_2 / H, bottom_2 / H]``, where pipe 1 is the next pipe (the
first whose right edge is not yet behind the bird's left edge), pipe 2 the one after it,
``dx`` a pipe's left edge minus the bird's, ``top`` / ``bottom`` its gap's edges.

A task is three scalars, each uniform over its range: ``gap`` [75, 150] px (PLE 100),
``gravity`` [0.8, 1.2] px per step^2 (PLE 1) and ``flap_speed`` [8, 10] px per step (PLE 9).
Pin a range (``gravity_range=(1, 1)``) to vary only the others. An exhaustive search over
flap sequences gets through a 75 px gap at every corner of the default gravity x flap
ranges and through none of 70 px or less at some (docs/task_families.md). Train and test
tasks are disjoint (:mod:`adaptrl.tasks.splits`), as for the other physics families.
"""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import numpy as np
import torch

from adaptrl.randomness import rand
from adaptrl.tasks.base import Split, StepResult, Tasks
from adaptrl.tasks.common import (
    EpisodeClock,
    Range,
    check_int,
    check_range,
    check_ranges,
    draw_uniform_params,
    freeze,
)
from adaptrl.tasks.splits import sample_split

WIDTH, HEIGHT = 288.0, 512.0
GROUND = 0.79 * HEIGHT
GAP_TOP_LIMIT = 0.79 * HEIGHT * 0.6  # a gap top is at most this minus gap / 2
PIPE_SPEED = 4.0
MAX_FALL = 10.0
PIPE_WIDTH = 52.0
PIPE_SPACING = 0.5 * WIDTH
NUM_PIPES = 3
BIRD_X, BIRD_WIDTH, BIRD_HEIGHT = 0.2 * WIDTH, 34.0, 24.0
BIRD_START_Y = (GROUND - BIRD_HEIGHT) / 2
PLE_DEFAULTS: dict[str, float] = {"gap": 100.0, "gravity": 1.0, "flap_speed": 9.0}
PASS_REWARD, CRASH_REWARD = 1.0, -5.0
NOOP, FLAP = 0, 1
MAX_GAP = 4 / 3 * GAP_TOP_LIMIT  # above it the gap top's interval is empty


class FlappyBirdEnv:
    """``tasks x episodes`` Flappy Bird games stepped together; no autoreset.

    ``state`` ``[tasks, episodes, 3 + NUM_PIPES]`` (float32): the bird's top y, its
    velocity, the first pipe's left x (pipe ``k`` is ``PIPE_SPACING * k`` behind it), and
    each pipe's gap top.
    """

    def __init__(self, params: dict[str, torch.Tensor], episodes_per_task: int, horizon: int,
                 device: torch.device) -> None:
        col = {k: v.to(device, torch.float32).unsqueeze(1) for k, v in params.items()}
        self.device = device
        self.num_tasks = col["gap"].shape[0]
        self.episodes_per_task, self.horizon = episodes_per_task, horizon
        self.gap, self.gravity, self.flap_speed = col["gap"], col["gravity"], col["flap_speed"]
        self.clock = EpisodeClock(self.num_tasks, episodes_per_task, horizon, device)
        self.state = torch.zeros(self.num_tasks, episodes_per_task, 3 + NUM_PIPES,
                                 device=device)
        self.offsets = PIPE_SPACING * torch.arange(NUM_PIPES, device=device)
        self.generator: torch.Generator | None = None

    def _gap_tops(self, *shape: int) -> torch.Tensor:
        """Fresh gap tops ``[tasks, episodes, *shape]``: ``U[gap/4, limit - gap/2]``."""
        u = rand((*self.state.shape[:2], *shape), self.generator, self.device)
        gap = self.gap.reshape(-1, 1, *([1] * len(shape)))
        return gap / 4 + (GAP_TOP_LIMIT - 0.75 * gap) * u

    def _observe(self) -> torch.Tensor:
        y, v, first = self.state[..., 0], self.state[..., 1], self.state[..., 2]
        tops = self.state[..., 3:]
        behind = (first + PIPE_WIDTH < BIRD_X).long().unsqueeze(-1)  # pipe 0 passed: 1
        index = behind + torch.arange(2, device=self.device)  # next two pipes
        x = (first.unsqueeze(-1) + PIPE_SPACING * index - BIRD_X) / WIDTH
        top = tops.gather(-1, index)
        bottom = top + self.gap.unsqueeze(-1)
        pipes = torch.stack([x, top / HEIGHT, bottom / HEIGHT], -1).flatten(-2)
        return torch.cat([torch.stack([y / HEIGHT, v / MAX_FALL], -1), pipes], -1)

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        self.clock.reset()
        self.generator = generator
        n, e = self.state.shape[:2]
        start = torch.tensor([BIRD_START_Y, 0.0, WIDTH], device=self.device).expand(n, e, 3)
        self.state = torch.cat([start, self._gap_tops(NUM_PIPES)], -1)
        return self._observe()

    def step(self, action: torch.Tensor) -> StepResult:
        live = self.clock.live
        y, v, first = self.state[..., 0], self.state[..., 1], self.state[..., 2]
        tops = self.state[..., 3:]
        flap = action.to(self.device) == FLAP
        v = torch.where(flap, -self.flap_speed, (v + self.gravity).clamp(max=MAX_FALL))
        y = (y + v).clamp(max=GROUND - BIRD_HEIGHT)
        pipe_x = (first - PIPE_SPEED).unsqueeze(-1) + self.offsets  # [n, e, pipes]
        overlap = (BIRD_X < pipe_x + PIPE_WIDTH) & (pipe_x < BIRD_X + BIRD_WIDTH)
        y_ = y.unsqueeze(-1)
        outside = (y_ < tops) | (y_ + BIRD_HEIGHT > tops + self.gap.unsqueeze(-1))
        crash = (overlap & outside).any(-1) | (y + BIRD_HEIGHT >= GROUND)
        bird_mid = BIRD_X + BIRD_WIDTH / 2
        pipe_mid = pipe_x + PIPE_WIDTH / 2
        passed = ((pipe_mid + PIPE_SPEED > bird_mid) & (pipe_mid <= bird_mid)).sum(-1)
        reward = torch.where(crash, CRASH_REWARD, PASS_REWARD * passed.float())
        # a pipe that has left the screen on the left is replaced behind the last one
        gone = (pipe_x[..., 0] + PIPE_WIDTH < 0)
        fresh = self._gap_tops(1)
        first = torch.where(gone, pipe_x[..., 0] + PIPE_SPACING, pipe_x[..., 0])
        tops = torch.where(gone.unsqueeze(-1), torch.cat([tops[..., 1:], fresh], -1), tops)
        new = torch.cat([torch.stack([y, v, first], -1), tops], -1)
        self.state = freeze(live, new, self.state)
        terminated, truncated = self.clock.tick(live, crash)
        return StepResult(self._observe(), reward * live, terminated, truncated)


class FlappyBird:
    """Task family ``flappy-bird`` (module docstring: rules, parameters, choices)."""

    name = "flappy-bird"

    def __init__(self, gap_range: Range = (75.0, 150.0), gravity_range: Range = (0.8, 1.2),
                 flap_speed_range: Range = (8.0, 10.0), horizon: int = 500) -> None:
        check_range("gap_range", gap_range, 0.0, MAX_GAP, strict_minimum=True)
        self.ranges = check_ranges(self.name, {"gap": gap_range, "gravity": gravity_range,
                                               "flap_speed": flap_speed_range})
        self.horizon = check_int("horizon", horizon, 1)
        fastest_rise = self.ranges["flap_speed"][1] / MAX_FALL
        dx = (-PIPE_WIDTH / WIDTH, (WIDTH + (NUM_PIPES - 1) * PIPE_SPACING - BIRD_X) / WIDTH)
        low = np.array([-np.inf, -fastest_rise, dx[0], 0, 0, dx[0], 0, 0], np.float32)
        high = np.array([1, 1, dx[1], 1, 1, dx[1], 1, 1], np.float32)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def sample(self, n: int, split: Split, generator: torch.Generator) -> Tasks:
        """Uniform in every range, train / test by hash (:func:`.splits.sample_split`)."""
        return sample_split(partial(draw_uniform_params, self.ranges), n, split, generator)

    def make_env(self, tasks: Tasks, episodes_per_task: int,
                 device: torch.device | str = "cpu") -> FlappyBirdEnv:
        return FlappyBirdEnv(tasks.params, episodes_per_task, self.horizon,
                             torch.device(device))
