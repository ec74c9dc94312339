"""Known answers: the batched physics families against Gymnasium's own envs, step for step.

Each ``[task, episode]`` slot of our env is mirrored by one Gymnasium env whose physical
constants are set to that task's parameters and whose ``unwrapped.state`` is set to our
initial state; both are then driven by the same actions.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from adaptrl.tasks import CartPolePhysics, PendulumPhysics, Tasks, cartpole, pendulum

TOL = 1e-5


def _tasks(defaults: dict[str, float], n: int, varied: bool) -> Tasks:
    """``n`` tasks at Gymnasium's constants (float64, exact) or at varied float32 values."""
    if not varied:
        return Tasks({k: torch.full((n,), v, dtype=torch.float64) for k, v in defaults.items()})
    scale = torch.linspace(0.6, 1.8, n)
    return Tasks({k: (v * scale if v else 0.1 * scale).float()
                  for k, v in defaults.items()})


def _set_cartpole(env: gym.Env, params: dict[str, float]) -> None:
    u = env.unwrapped
    u.gravity, u.masscart, u.masspole = params["gravity"], params["cart_mass"], params["pole_mass"]
    u.length, u.force_mag = params["length"], params["force_mag"]
    u.total_mass = u.masspole + u.masscart
    u.polemass_length = u.masspole * u.length


def _balance(obs: np.ndarray) -> int:
    """A stabilising linear controller, so that some episodes last long."""
    x, x_dot, theta, theta_dot = obs
    return int(theta + 0.5 * theta_dot + 0.05 * x + 0.1 * x_dot > 0)


@pytest.mark.parametrize("varied", [False, True], ids=["gymnasium-defaults", "varied-params"])
def test_cartpole_matches_gymnasium_step_for_step(varied: bool) -> None:
    n, e, steps = 3, 4, 200
    family = CartPolePhysics(horizon=steps)
    tasks = _tasks(cartpole.GYMNASIUM_DEFAULTS, n, varied)
    tasks = Tasks({**tasks.params, "force_sign": torch.ones(n)})
    env = family.make_env(tasks, e)
    ours = env.reset(torch.Generator().manual_seed(1))
    rng = np.random.default_rng(0)
    mirrors = {}
    for i in range(n):
        for j in range(e):
            g = gym.make("CartPole-v1")
            g.reset(seed=0)
            _set_cartpole(g, {k: float(v[i]) for k, v in tasks.params.items()})
            g.unwrapped.state = env.state[i, j].numpy().copy()
            mirrors[i, j] = g
    alive = np.ones((n, e), bool)
    longest = 0
    for t in range(steps):
        actions = np.zeros((n, e), np.int64)
        for i, j in mirrors:  # half the slots balance, half act at random
            actions[i, j] = _balance(ours[i, j].numpy()) if j % 2 else rng.integers(2)
        result = env.step(torch.from_numpy(actions))
        for (i, j), g in mirrors.items():
            if not alive[i, j]:
                assert result.reward[i, j] == 0 and bool(result.terminated[i, j])
                continue
            obs, reward, terminated, truncated, _ = g.step(int(actions[i, j]))
            np.testing.assert_allclose(result.observation[i, j].numpy(), obs, atol=TOL)
            assert float(result.reward[i, j]) == reward
            assert bool(result.terminated[i, j]) == terminated
            assert bool(result.truncated[i, j]) == (t + 1 == steps and not terminated)
            alive[i, j] = not terminated
            longest = max(longest, t + 1)
        ours = result.observation
    assert longest == steps  # the comparison covered full-length episodes
    assert not alive[:, 0].any()  # and random-action episodes that terminated


@pytest.mark.parametrize("varied", [False, True], ids=["gymnasium-defaults", "varied-params"])
def test_pendulum_matches_gymnasium_step_for_step(varied: bool) -> None:
    n, e, steps = 3, 2, 200
    family = PendulumPhysics()
    defaults = dict(pendulum.GYMNASIUM_DEFAULTS)
    tasks = _tasks(defaults, n, varied)
    tasks = Tasks({**tasks.params, "damping": torch.zeros(n, dtype=tasks.params["mass"].dtype)})
    env = family.make_env(tasks, e)
    env.reset(torch.Generator().manual_seed(2))
    mirrors = {}
    for i in range(n):
        for j in range(e):
            g = gym.make("Pendulum-v1", g=float(tasks.params["gravity"][i]))
            g.reset(seed=0)
            g.unwrapped.m = float(tasks.params["mass"][i])
            g.unwrapped.l = float(tasks.params["length"][i])
            g.unwrapped.state = env.state[i, j].numpy().copy()
            mirrors[i, j] = g
    actions = torch.empty(steps, n, e, 1).uniform_(-3.0, 3.0, generator=torch.Generator()
                                                   .manual_seed(3))  # beyond +-2: clipping
    for t in range(steps):
        result = env.step(actions[t])
        for (i, j), g in mirrors.items():
            obs, reward, terminated, truncated, _ = g.step(actions[t, i, j].numpy())
            np.testing.assert_allclose(result.observation[i, j].numpy(), obs, atol=TOL)
            assert float(result.reward[i, j]) == pytest.approx(reward, rel=TOL, abs=TOL)
            assert not bool(result.terminated[i, j]) and not terminated
            assert bool(result.truncated[i, j]) == (truncated or t + 1 == steps)
    assert bool(result.truncated.all())


def test_pendulum_damping_dissipates_energy() -> None:
    """With no torque, the damped pendulum's energy falls; undamped it is (nearly) kept."""
    family = PendulumPhysics()
    base = {k: torch.full((2,), v, dtype=torch.float64)
            for k, v in pendulum.GYMNASIUM_DEFAULTS.items()}
    base["damping"] = torch.tensor([0.0, 0.3], dtype=torch.float64)
    env = family.make_env(Tasks(base), 1)
    env.reset(torch.Generator().manual_seed(0))
    env.state = torch.tensor([[[0.5, 0.0]], [[0.5, 0.0]]], dtype=torch.float64)

    def energy() -> torch.Tensor:  # first integral of thetaacc = 3 g / (2 l) sin theta
        theta, theta_dot = env.state[:, 0].unbind(-1)
        return theta_dot.square() / 2 + 15.0 * theta.cos()

    start = energy()
    for _ in range(100):
        env.step(torch.zeros(2, 1, 1))
    change = (energy() - start) / start.abs()
    assert abs(float(change[0])) < 0.2
    assert float(change[1]) < -0.5


def test_cartpole_longer_pole_falls_slower() -> None:
    """Physics sanity: from the same tilt with no net force, a longer pole takes longer to fall."""
    family = CartPolePhysics()
    params = {k: torch.full((2,), v, dtype=torch.float64)
              for k, v in cartpole.GYMNASIUM_DEFAULTS.items()}
    params["length"] = torch.tensor([0.25, 1.0], dtype=torch.float64)
    params["force_mag"] = torch.zeros(2, dtype=torch.float64)
    env = family.make_env(Tasks(params), 1)
    env.reset(torch.Generator().manual_seed(0))
    env.state = torch.tensor([[[0.0, 0.0, 0.05, 0.0]]] * 2, dtype=torch.float64)
    fell_at = torch.zeros(2)
    for t in range(1, 200):
        done = env.step(torch.zeros(2, 1, dtype=torch.long)).terminated[:, 0]
        fell_at = torch.where(done & (fell_at == 0), torch.tensor(float(t)), fell_at)
    assert 0 < fell_at[0] < fell_at[1]


def test_reversed_cartpole_mirrors_the_actions() -> None:
    """A reversed task (force_sign -1) under action a is the normal task under 1 - a."""
    family = CartPolePhysics(reversed_fraction=0.5)
    params = {k: torch.full((2,), v, dtype=torch.float64)
              for k, v in cartpole.GYMNASIUM_DEFAULTS.items()}
    params["force_sign"] = torch.tensor([1.0, -1.0], dtype=torch.float64)
    env = family.make_env(Tasks(params), 3)
    env.reset(torch.Generator().manual_seed(0))
    env.state[1] = env.state[0]
    actions = torch.randint(2, (30, 3), generator=torch.Generator().manual_seed(1))
    for a in actions:
        result = env.step(torch.stack([a, 1 - a]))
        assert torch.equal(result.observation[0], result.observation[1])
    signs = family.sample(2000, "train", torch.Generator().manual_seed(2)).params["force_sign"]
    assert set(signs.tolist()) == {-1.0, 1.0}
    assert abs(float((signs < 0).float().mean()) - 0.5) < 0.05
