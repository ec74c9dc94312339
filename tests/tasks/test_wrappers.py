"""``RescaledActions``: the agent's ``[-1, 1]^d`` box maps linearly onto the family's."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from adaptrl.experiment.config import ConfigError, validate_config
from adaptrl.experiment.learners import build_family
from adaptrl.tasks import check_task_family, make
from adaptrl.tasks.wrappers import RescaledActions


def test_box_corners_and_centre_map_onto_the_family_box() -> None:
    family = RescaledActions(make("pendulum-physics"))  # torque box [-2, 2]
    assert family.action_space.low.tolist() == [-1.0] and family.action_space.high.tolist() == [1.0]
    agent = torch.tensor([[-1.0], [0.0], [0.5], [1.0]])
    assert family.to_family_action(agent).flatten().tolist() == [-2.0, 0.0, 1.0, 2.0]
    torch.testing.assert_close(family.from_family_action(family.to_family_action(agent)), agent)


def test_wrapped_env_steps_like_the_family_with_scaled_actions() -> None:
    inner = make("navigation-2d")
    wrapped = RescaledActions(inner)
    tasks = inner.sample(3, "train", torch.Generator().manual_seed(0))
    raw, env = inner.make_env(tasks, 2), wrapped.make_env(tasks, 2)
    torch.testing.assert_close(raw.reset(), env.reset())
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        agent_action = 2 * torch.rand(3, 2, 2, generator=gen) - 1
        a, b = raw.step(0.1 * agent_action), env.step(agent_action)
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y)
    assert torch.equal(env.goals, raw.goals)  # the wrapped env's extras stay reachable


def test_oracle_is_translated_into_agent_units() -> None:
    inner = make("navigation-2d")
    wrapped = RescaledActions(inner)
    tasks = inner.sample(4, "test", torch.Generator().manual_seed(0))
    obs = torch.zeros(4, 1, 2)
    torch.testing.assert_close(wrapped.oracle_action(tasks, obs) * 0.1,
                               inner.oracle_action(tasks, obs))


def test_wrapped_family_passes_the_checker() -> None:
    check_task_family(RescaledActions(make("navigation-2d", horizon=20)))
    check_task_family(RescaledActions(make("pendulum-physics")))


def test_discrete_family_is_a_clear_error(tiny_config: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="bounded Box"):
        RescaledActions(make("bandit-bernoulli"))
    tiny_config["family"] = {"name": "bandit-bernoulli", "rescale_actions": True}
    with pytest.raises(ConfigError, match="family.rescale_actions"):
        build_family(validate_config(tiny_config)[0])


def test_config_switch_builds_the_wrapper(tiny_config: dict[str, Any]) -> None:
    tiny_config["family"]["rescale_actions"] = True
    assert isinstance(build_family(validate_config(tiny_config)[0]), RescaledActions)
    tiny_config["family"]["rescale_actions"] = False
    assert not isinstance(build_family(validate_config(tiny_config)[0]), RescaledActions)


def test_bad_family_parameter_is_a_config_error(tiny_config: dict[str, Any]) -> None:
    tiny_config["family"]["params"] = {"horizon": 0}
    with pytest.raises(ConfigError, match="family.params: horizon must be >= 1"):
        build_family(validate_config(tiny_config)[0])
