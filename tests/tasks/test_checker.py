"""``check_task_family``: every registered family passes; each kind of broken family fails."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from adaptrl.tasks import Navigation2D, StepResult, Tasks, check_task_family, registered
from adaptrl.tasks.registry import FamilySpec


def _build(spec: FamilySpec) -> Any:
    try:
        return spec.factory()
    except (ImportError, gym.error.DependencyNotInstalled) as error:
        if spec.extra is None:
            raise
        pytest.skip(f"{spec.name} needs the '{spec.extra}' extra: {error}")


@pytest.mark.parametrize("name", [
    # simulator-backed families (extras) take 10-50 s each here: they run with -m slow
    pytest.param(name, marks=[pytest.mark.extra, pytest.mark.slow] if spec.extra else [])
    for name, spec in registered().items()])
def test_every_registered_family_passes_the_checker(name: str) -> None:
    spec = registered()[name]
    if spec.extra:  # simulator-backed: the smallest batch keeps the test short
        check_task_family(_build(spec), num_tasks=2, episodes=1)
    else:
        check_task_family(_build(spec))


def test_checker_passes_with_other_sizes_and_seeds() -> None:
    check_task_family(Navigation2D(horizon=5), num_tasks=5, episodes=3, seed=7)
    check_task_family(Navigation2D(), steps=10)  # fewer steps than the horizon


# --- broken families: each breaks one promise -------------------------------------------

class _Wrapped:
    """``navigation-2d`` with one promise broken by ``step_hook`` / ``sample_hook``."""

    name = "broken"

    def __init__(self, step_hook: Callable[[StepResult], StepResult] | None = None,
                 sample_hook: Callable[[Tasks, int, str], Tasks] | None = None,
                 **overrides: Any) -> None:
        self.base = Navigation2D(horizon=overrides.pop("horizon", 8))
        self.step_hook, self.sample_hook = step_hook, sample_hook
        self.horizon = self.base.horizon
        self.observation_space = overrides.pop("observation_space", self.base.observation_space)
        self.action_space = self.base.action_space

    def sample(self, n: int, split: str, generator: torch.Generator) -> Tasks:
        tasks = self.base.sample(n, split, generator)
        return self.sample_hook(tasks, n, split) if self.sample_hook else tasks

    def make_env(self, tasks: Tasks, episodes_per_task: int, device: Any = "cpu") -> Any:
        env = self.base.make_env(tasks, episodes_per_task, device)
        hook = self.step_hook
        if hook is not None:
            step = env.step
            env.step = lambda action: hook(step(action))  # type: ignore[method-assign]
        return env


def _uncapped_reward(r: StepResult) -> StepResult:
    return r._replace(reward=r.reward + 1.0)


def _batch_normalised(r: StepResult) -> StepResult:
    return r._replace(reward=r.reward - r.reward.mean())


def _global_noise(r: StepResult) -> StepResult:  # (only while live: rewards are non-zero)
    return r._replace(reward=r.reward + 1e-3 * torch.rand(r.reward.shape) * (r.reward != 0))


def _float64(r: StepResult) -> StepResult:
    return r._replace(observation=r.observation.double())


def _both_flags(r: StepResult) -> StepResult:
    return r._replace(terminated=r.terminated | r.truncated)


def _early_truncation(r: StepResult) -> StepResult:
    return r._replace(truncated=torch.ones_like(r.truncated) & ~r.terminated)


def _flat_obs(r: StepResult) -> StepResult:
    return r._replace(observation=r.observation.reshape(r.observation.shape[0], -1))


def _ignore_split(tasks: Tasks, n: int, split: str) -> Tasks:
    return Tasks({"goal": torch.arange(2 * n, dtype=torch.float32).reshape(n, 2) / (4 * n)})


def _one_too_many(tasks: Tasks, n: int, split: str) -> Tasks:
    return Tasks.cat([tasks, tasks[:1]])


@pytest.mark.parametrize(("broken", "message"), [
    (_Wrapped(step_hook=_uncapped_reward), "reward must be 0 after the episode ended"),
    (_Wrapped(step_hook=_batch_normalised), "task isolation"),
    (_Wrapped(step_hook=_global_noise), "determinism"),
    (_Wrapped(step_hook=_float64), "observation from step.* must be a torch.float32"),
    (_Wrapped(step_hook=_both_flags), "both set"),
    (_Wrapped(step_hook=_early_truncation), "truncated set before the horizon"),
    (_Wrapped(step_hook=_flat_obs), r"shape \[3, 2, 2\]"),
    (_Wrapped(sample_hook=_ignore_split), "splits"),
    (_Wrapped(sample_hook=_one_too_many), "asked for 1 tasks, got 2"),
    (_Wrapped(observation_space=gym.spaces.Box(-0.05, 0.05, (2,), np.float32)),
     "observation leaves observation_space"),
    (_Wrapped(observation_space=gym.spaces.MultiBinary(2)), "Box or Discrete"),
], ids=["no-freeze", "cross-task", "global-rng", "float64-obs", "both-flags",
        "early-truncation", "obs-shape", "overlapping-splits", "wrong-count", "obs-bounds",
        "space-kind"])
def test_checker_catches_broken_families(broken: _Wrapped, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_task_family(broken)


def test_checker_catches_an_env_that_changes_its_action() -> None:
    family = _Wrapped()
    make_env = family.make_env

    def clipping_in_place(tasks: Tasks, e: int, device: Any = "cpu") -> Any:
        env = make_env(tasks, e, device)
        step = env.step
        env.step = lambda action: step(action.clamp_(-0.1, 0.1))  # type: ignore[method-assign]
        return env

    family.make_env = clipping_in_place  # type: ignore[method-assign]
    with pytest.raises(AssertionError, match="modified its action"):
        check_task_family(family)


def test_checker_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_tasks"):
        check_task_family(Navigation2D(), num_tasks=1)
    with pytest.raises(ValueError, match="steps"):
        check_task_family(Navigation2D(), steps=0)


# --- task effect: applying a task must change the env -----------------------------------

def _pendulum(attribute: str) -> Any:
    """Pendulum with gravity as the task, applied by a setter writing ``attribute``."""
    from adaptrl.tasks.adapters import GymnasiumFamily

    def sample(n: int, generator: torch.Generator) -> Tasks:
        return Tasks({"gravity": 5.0 + 10.0 * torch.rand(n, generator=generator)})

    def apply(env: gym.Env, task: dict[str, Any]) -> None:
        setattr(env.unwrapped, attribute, task["gravity"])

    return GymnasiumFamily("Pendulum-v1", sample, apply, horizon=10)


def test_checker_catches_a_setter_that_changes_nothing() -> None:
    # Pendulum's gravity is `g`: writing `gravity` creates an attribute nothing reads
    with pytest.raises(AssertionError, match=r"task effect: .*identical rollouts.*"
                       r"env\.unwrapped\.gravity \(") as err:
        check_task_family(_pendulum("gravity"))
    assert "env.unwrapped.g " not in str(err.value)  # only the attribute that was written


def test_checker_accepts_a_setter_that_changes_the_dynamics() -> None:
    check_task_family(_pendulum("g"))


def test_checker_catches_a_family_whose_envs_ignore_the_task() -> None:
    family = _Wrapped()
    make_env = family.make_env

    def first_task_everywhere(tasks: Tasks, e: int, device: Any = "cpu") -> Any:
        fixed = Tasks({"goal": torch.full((len(tasks), 2), 0.25)})
        return make_env(fixed, e, device)

    family.make_env = first_task_everywhere  # type: ignore[method-assign]
    with pytest.raises(AssertionError, match=r"task effect: 3 tasks with different "
                                             r"parameters \(goal\) give identical rollouts"):
        check_task_family(family)


def test_one_task_families_are_exempt_from_the_task_effect() -> None:
    def one_goal(tasks: Tasks, n: int, split: str) -> Tasks:
        return Tasks({"goal": torch.full((n, 2), 0.25)})

    family = _Wrapped(sample_hook=one_goal)
    family.splits = "shared"  # type: ignore[attr-defined]  (one task: both splits share it)
    check_task_family(family)
