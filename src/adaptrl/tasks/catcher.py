"""``catcher``: the PyGame Learning Environment's Catcher (Tasfi 2016) in batched torch, with
task-varied fruit speed, paddle speed and paddle width.

A paddle at the bottom of a 64 x 64 screen catches fruit falling from the top. The facts
taken from PLE (the project's REFERENCES.md, "PyGame Learning Environment games"):
screen ``W = H = 64``; paddle width ``0.2 W``; each press adds ``+-0.021 W`` to the paddle's
velocity, which is then multiplied by 0.9 every step (friction); fruit of size ``0.06 H``
falling ``0.00095 H`` px per ms at 30 fps (``0.00095 * 64 * 1000 / 30 = 2.03`` px per step);
reward +1 for a catch, -1 for a miss, which costs one of 3 lives, and -5 when the game is
lost; state ``(paddle x, paddle velocity, fruit x, fruit y)``. Riemer et al. (2019, MER)
raise the fruit speed over 5 stages (``adaptrl.rollouts.schedule.parameter_stream`` on
``fruit_speed``).

One step, for every ``[task, episode]`` slot at once (``a = -1, 0, +1`` for the actions
0 = left, 1 = stay, 2 = right; ``x`` is the paddle's centre, ``w`` its width)::

    v' = 0.9 (v + a * paddle_speed)        x' = x + v'
    x' outside [w/2, W - w/2]  ->  clamped to it and v' = 0
    fruit_y' = fruit_y + fruit_speed

The fruit is *resolved* when its bottom edge reaches the paddle's top edge (``y = H - 0.02
H``): it is **caught** (+1) if it overlaps the paddle horizontally at its new position
(``|fruit_x - x'| <= (w + 0.06 H) / 2``), **missed** (-1, one life lost) otherwise; either
way a new fruit appears at the top (top edge at ``y = 0``), its centre ``x ~ U[0.03 H,
W - 0.03 H]`` drawn from the generator given to ``reset`` (one uniform per slot every step,
used where a fruit respawns). The miss that takes the last life also gives the -5 (-6 on
that step) and **terminates** the episode; *truncated* at ``horizon`` (500). An episode
starts with the paddle still at the centre and a fresh fruit. No autoreset; an ended slot is
frozen (:mod:`adaptrl.tasks.base`).

Choices where REFERENCES.md leaves PLE's detail open (the simplest faithful ones): the
paddle's thickness (``0.02 H``) and the catch test above (a swept crossing of the paddle's
top edge, so a fast fruit cannot pass through it); positions are centres; the wall stops
the paddle dead; the fruit respawns at once, on the step it is resolved; actions are
(left, stay, right); the terminal miss adds -5 to its -1.

Observation (float32, normalised): ``[x / W, v / (9 * 0.021 W), fruit_x / W, fruit_y / H]``
(``9 * 0.021 W`` is the paddle's top speed at PLE's paddle speed: a velocity held by
pressing satisfies ``v = 0.9 (v + a)``, so ``v = 9 a``). Lives are not observed, as in PLE.

A task is three scalars, each uniform over its range: ``fruit_speed`` [1, 4] px per step
(PLE 2.03), ``paddle_speed`` [0.672, 2.688] px per step per press (0.5x-2x PLE's 1.344) and
``paddle_width`` [6.4, 25.6] px (0.5x-2x PLE's 12.8). Train and test tasks are disjoint
(:mod:`adaptrl.tasks.splits`), as for the other physics families.
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

WIDTH = HEIGHT = 64.0
FRUIT_SIZE = 0.06 * HEIGHT
PADDLE_TOP = HEIGHT - 0.02 * HEIGHT
FRICTION = 0.9
PLE_DEFAULTS: dict[str, float] = {
    "fruit_speed": 0.00095 * HEIGHT * 1000 / 30,  # px per ms at 30 fps -> px per step
    "paddle_speed": 0.021 * WIDTH,
    "paddle_width": 0.2 * WIDTH,
}
VELOCITY_SCALE = PLE_DEFAULTS["paddle_speed"] / (1 - FRICTION) * FRICTION  # top speed, 9 a
CATCH_REWARD, MISS_REWARD, GAME_OVER_REWARD = 1.0, -1.0, -5.0
LEFT, STAY, RIGHT = 0, 1, 2


class CatcherEnv:
    """``tasks x episodes`` Catcher games stepped together; no autoreset.

    ``state`` ``[tasks, episodes, 5]`` (float32): paddle centre x, paddle velocity, fruit
    centre x, fruit centre y, lives left.
    """

    def __init__(self, params: dict[str, torch.Tensor], episodes_per_task: int, horizon: int,
                 lives: int, device: torch.device) -> None:
        col = {k: v.to(device, torch.float32).unsqueeze(1) for k, v in params.items()}
        self.device = device
        self.num_tasks = col["fruit_speed"].shape[0]
        self.episodes_per_task, self.horizon, self.lives = episodes_per_task, horizon, lives
        self.fruit_speed, self.paddle_speed = col["fruit_speed"], col["paddle_speed"]
        self.half_width = col["paddle_width"] / 2
        self.reach = (col["paddle_width"] + FRUIT_SIZE) / 2  # |fruit x - paddle x| to catch
        self.clock = EpisodeClock(self.num_tasks, episodes_per_task, horizon, device)
        self.state = torch.zeros(self.num_tasks, episodes_per_task, 5, device=device)
        self.generator: torch.Generator | None = None

    def _spawn_x(self) -> torch.Tensor:
        """A fresh fruit's centre x for every slot, ``[tasks, episodes]``."""
        u = rand(self.state.shape[:2], self.generator, self.device)
        return FRUIT_SIZE / 2 + (WIDTH - FRUIT_SIZE) * u

    def _observe(self) -> torch.Tensor:
        scale = torch.tensor([WIDTH, VELOCITY_SCALE, WIDTH, HEIGHT], device=self.device)
        return self.state[..., :4] / scale

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        self.clock.reset()
        self.generator = generator
        middle = torch.full(self.state.shape[:2], WIDTH / 2, device=self.device)
        self.state = torch.stack([middle, torch.zeros_like(middle), self._spawn_x(),
                                  torch.full_like(middle, FRUIT_SIZE / 2),
                                  torch.full_like(middle, float(self.lives))], -1)
        return self._observe()

    def step(self, action: torch.Tensor) -> StepResult:
        live = self.clock.live
        x, v, fruit_x, fruit_y, lives = self.state.unbind(-1)
        push = action.to(self.device).float() - STAY  # -1, 0, +1
        v = FRICTION * (v + push * self.paddle_speed)
        lo, hi = self.half_width, WIDTH - self.half_width
        moved = x + v
        x = torch.minimum(torch.maximum(moved, lo), hi)
        v = torch.where(x == moved, v, torch.zeros_like(v))
        fruit_y = fruit_y + self.fruit_speed
        resolved = fruit_y + FRUIT_SIZE / 2 >= PADDLE_TOP
        caught = resolved & ((fruit_x - x).abs() <= self.reach)
        missed = resolved & ~caught
        lives = lives - missed.float()
        lost = missed & (lives <= 0)
        reward = caught.float() * CATCH_REWARD + missed.float() * MISS_REWARD \
            + lost.float() * GAME_OVER_REWARD
        fruit_x = torch.where(resolved, self._spawn_x(), fruit_x)
        fruit_y = torch.where(resolved, torch.full_like(fruit_y, FRUIT_SIZE / 2), fruit_y)
        new = torch.stack([x, v, fruit_x, fruit_y, lives], -1)
        self.state = freeze(live, new, self.state)
        terminated, truncated = self.clock.tick(live, lost)
        return StepResult(self._observe(), reward * live, terminated, truncated)


class Catcher:
    """Task family ``catcher`` (module docstring: rules, parameters, choices)."""

    name = "catcher"

    def __init__(self, fruit_speed_range: Range = (1.0, 4.0),
                 paddle_speed_range: Range = (0.672, 2.688),
                 paddle_width_range: Range = (6.4, 25.6), lives: int = 3,
                 horizon: int = 500) -> None:
        check_range("paddle_width_range", paddle_width_range, 0.0, WIDTH, strict_minimum=True)
        self.ranges = check_ranges(self.name, {"fruit_speed": fruit_speed_range,
                                               "paddle_speed": paddle_speed_range,
                                               "paddle_width": paddle_width_range})
        self.lives = check_int("lives", lives, 1)
        self.horizon = check_int("horizon", horizon, 1)
        # the paddle's speed stays below its top speed 9 * paddle_speed (+ float rounding)
        top = 1.001 * self.ranges["paddle_speed"][1] * FRICTION / (1 - FRICTION) \
            / VELOCITY_SCALE
        low = np.array([0.0, -top, 0.0, 0.0], np.float32)
        high = np.array([1.0, top, 1.0, 1.0], np.float32)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(3)

    def sample(self, n: int, split: Split, generator: torch.Generator) -> Tasks:
        """Uniform in every range, train / test by hash (:func:`.splits.sample_split`)."""
        return sample_split(partial(draw_uniform_params, self.ranges), n, split, generator)

    def make_env(self, tasks: Tasks, episodes_per_task: int,
                 device: torch.device | str = "cpu") -> CatcherEnv:
        return CatcherEnv(tasks.params, episodes_per_task, self.horizon, self.lives,
                          torch.device(device))
