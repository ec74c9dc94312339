"""Behaviour of the built-in batched families: known answers, statistics, bad parameters."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch

from adaptrl.tasks import (
    BanditBernoulli,
    CartPolePhysics,
    Navigation2D,
    PendulumPhysics,
    TabularMDP,
    Tasks,
    Tracking2D,
    check_task_family,
    make,
    registered,
)
from adaptrl.tasks.tracking import reflect, target_positions, triangle

matplotlib.use("Agg")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_registry_holds_every_builtin_family() -> None:
    names = {"navigation-2d", "bandit-bernoulli", "tabular-mdp", "tracking-2d",
             "cartpole-physics", "pendulum-physics", "catcher", "flappy-bird"}
    assert names <= set(registered())
    for name in names:
        assert make(name).name == name


# --- bandit-bernoulli ---------------------------------------------------------------

def test_bandit_reward_frequencies_match_arm_probabilities() -> None:
    p = torch.tensor([[0.1, 0.9, 0.5]])
    env = BanditBernoulli(num_arms=3).make_env(Tasks({"p": p}), 30_000)
    obs = env.reset(_gen())
    assert obs.shape == (1, 30_000, 1) and bool((obs == 0).all())
    arm = torch.arange(30_000).remainder(3).unsqueeze(0)
    result = env.step(arm)
    for a in range(3):
        mean = result.reward[arm == a].mean()
        sigma = math.sqrt(p[0, a] * (1 - p[0, a]) / 10_000)
        assert abs(float(mean - p[0, a])) < 4 * sigma
    assert bool(result.truncated.all()) and not bool(result.terminated.any())
    after = env.step(arm)
    assert bool((after.reward == 0).all()) and bool(after.truncated.all())


def test_bandit_prior_and_oracle() -> None:
    family = BanditBernoulli(num_arms=10, trial_length=50)
    tasks = family.sample(2000, "train", _gen())
    p = tasks.params["p"]
    assert p.shape == (2000, 10) and family.trial_length == 50 and family.horizon == 1
    assert abs(float(p.mean()) - 0.5) < 0.02 and float(p.min()) >= 0 and float(p.max()) < 1
    obs = family.make_env(tasks, 4).reset()
    best = family.oracle_action(tasks, obs)
    assert best.shape == (2000, 4)
    assert torch.equal(p.gather(1, best[:, :1]).squeeze(1), family.oracle_return(tasks))


# --- tabular-mdp --------------------------------------------------------------------

def test_tabular_prior_matches_rl2() -> None:
    tasks = TabularMDP().sample(500, "test", _gen())
    P, mu = tasks.params["transitions"], tasks.params["reward_mean"]
    assert P.shape == (500, 10, 5, 10) and mu.shape == (500, 10, 5)
    assert torch.allclose(P.sum(-1), torch.ones(500, 10, 5), atol=1e-5) and bool((P >= 0).all())
    # A flat Dirichlet over 10 states: each entry has mean 1/10, variance 9/1100.
    assert abs(float(P.mean()) - 0.1) < 1e-3
    assert abs(float(P.var()) - 9 / 1100) < 5e-4
    assert abs(float(mu.mean()) - 1.0) < 0.02 and abs(float(mu.std()) - 1.0) < 0.02


def test_tabular_transitions_and_rewards_follow_the_task() -> None:
    family = TabularMDP()
    tasks = family.sample(1, "train", _gen(3))
    e = 20_000
    env = family.make_env(tasks, e)
    obs = env.reset(_gen(4))
    assert torch.equal(obs.argmax(-1), torch.zeros(1, e, dtype=torch.long))
    assert bool((obs.sum(-1) == 1).all()) and obs.dtype == torch.float32
    result = env.step(torch.full((1, e), 2))
    freq = result.observation[0].mean(0)  # empirical next-state distribution
    want = tasks.params["transitions"][0, 0, 2]
    assert bool(((freq - want).abs() < 4 * (want * (1 - want) / e).sqrt() + 1e-3).all())
    reward = result.reward[0]
    assert abs(float(reward.mean() - tasks.params["reward_mean"][0, 0, 2])) < 4 / math.sqrt(e)
    assert abs(float(reward.std()) - 1.0) < 0.02
    for _ in range(family.horizon - 1):
        result = env.step(torch.zeros(1, e, dtype=torch.long))
    assert bool(result.truncated.all()) and not bool(result.terminated.any())


def test_tabular_optimal_q_known_answer() -> None:
    """Two states; action 0 stays, action 1 switches; only state 1 pays (1 per step)."""
    stay_switch = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]])
    tasks = Tasks({"transitions": stay_switch.unsqueeze(0),
                   "reward_mean": torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])})
    family = TabularMDP(num_states=2, num_actions=2, horizon=3)
    q = family.optimal_q(tasks)[0]
    # t = 2 (last step): Q = mu. t = 1: from 0, switching earns 1 next; from 1, staying.
    assert torch.equal(q[2], torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64))
    assert torch.equal(q[1], torch.tensor([[0.0, 1.0], [2.0, 1.0]], dtype=torch.float64))
    assert torch.equal(q[0], torch.tensor([[1.0, 2.0], [3.0, 2.0]], dtype=torch.float64))
    assert float(family.oracle_return(tasks)) == 2.0


def test_tabular_oracle_return_matches_rollouts_of_the_optimal_policy() -> None:
    family = TabularMDP()
    tasks = family.sample(3, "train", _gen(5))
    q = family.optimal_q(tasks)  # [n, H, S, A]
    e = 20_000
    env = family.make_env(tasks, e)
    obs = env.reset(_gen(6))
    total = torch.zeros(3, e)
    for t in range(family.horizon):
        state = obs.argmax(-1)
        action = q[:, t].gather(1, state.unsqueeze(-1).expand(-1, -1, 5)).argmax(-1)
        result = env.step(action)
        total += result.reward
        obs = result.observation
    # Return variance is at most horizon * (1 + spread of mu); 4 sigma of the mean.
    assert bool(((total.mean(1) - family.oracle_return(tasks).float()).abs() < 0.15).all())


# --- tracking-2d --------------------------------------------------------------------

def test_reflect_and_triangle_known_answers() -> None:
    x = torch.tensor([0.0, 0.5, 1.1, -1.3, 3.5, 5.0])
    assert torch.allclose(reflect(x, 1.0), torch.tensor([0.0, 0.5, 0.9, -0.7, -0.5, 1.0]))
    s = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0, 0.125])
    assert torch.allclose(triangle(s), torch.tensor([0.0, 1.0, 0.0, -1.0, 0.0, 0.5]))


def _tracking_task(**overrides: torch.Tensor) -> Tasks:
    """One hand-made task: a linear-bounce, a circular and a zig-zag target; 1 obstacle."""
    params = {
        "target_start": torch.tensor([[[0.9, 0.0], [0.0, 0.0], [0.0, 0.0]]]),
        "target_speed": torch.tensor([[0.05, 0.1, 0.05]]),
        "target_heading": torch.tensor([[0.0, 0.0, 0.0]]),
        "target_pattern": torch.tensor([[0, 1, 2]]),
        "target_size": torch.tensor([[0.2, 0.2, 0.1]]),
        "target_active": torch.tensor([[True, True, True]]),
        "obstacle_center": torch.tensor([[[0.3, 0.0]]]),
        "obstacle_radius": torch.tensor([[0.15]]),
    }
    params.update(overrides)
    return Tasks(params)


def test_target_motion_known_answers() -> None:
    params = _tracking_task().params
    at = lambda t: target_positions(params, t, 1.0)[0]  # noqa: E731
    # linear-bounce: from x = 0.9 at 0.05 per step it hits the wall at t = 2, then returns.
    assert torch.allclose(at(2.0)[0], torch.tensor([1.0, 0.0]), atol=1e-6)
    assert torch.allclose(at(4.0)[0], torch.tensor([0.9, 0.0]), atol=1e-6)
    # circular: radius 0.2 around (0, 0.2); half a turn (arc 0.2 pi at 0.1/step) reaches (0, 0.4).
    times = torch.arange(0, 30, dtype=torch.float32)
    path = target_positions(params, times, 1.0)[:, 0, 1]
    radius = torch.linalg.vector_norm(path - torch.tensor([0.0, 0.2]), dim=-1)
    assert torch.allclose(radius, torch.full_like(radius, 0.2), atol=1e-5)
    assert torch.allclose(at(2 * math.pi)[1], torch.tensor([0.0, 0.4]), atol=1e-5)
    # zig-zag: 45-degree legs of amplitude 0.1.
    assert torch.allclose(at(2.0)[2], torch.tensor([0.1, 0.1]), atol=1e-6)
    assert torch.allclose(at(4.0)[2], torch.tensor([0.2, 0.0]), atol=1e-6)
    assert torch.allclose(at(6.0)[2], torch.tensor([0.3, -0.1]), atol=1e-6)


def test_tracking_reward_observation_and_obstacle_known_answers() -> None:
    family = Tracking2D(num_obstacles=1)
    still = _tracking_task(target_speed=torch.zeros(1, 3),
                           target_start=torch.tensor([[[0.5, 0.5], [-0.5, 0.5], [0.0, -0.5]]]),
                           target_active=torch.tensor([[True, False, True]]))
    env = family.make_env(still, 1)
    obs = env.reset()
    assert obs.shape == (1, 1, 2 + 5 * 3 + 3 * 1) == (1, 1, family.observation_space.shape[0])
    slot = obs[0, 0, 2:17].reshape(3, 5)
    assert torch.allclose(slot[0], torch.tensor([0.5, 0.5, 0.0, 0.0, 1.0]))
    assert bool((slot[1] == 0).all())  # inactive target: masked
    assert torch.allclose(obs[0, 0, 17:], torch.tensor([0.3, 0.0, 0.15]))
    right = torch.tensor([[[0.1, 0.0]]])
    first = env.step(right)  # to (0.1, 0): free
    want = -(math.dist((0.1, 0.0), (0.5, 0.5)) + math.dist((0.1, 0.0), (0.0, -0.5))) / 2
    assert float(first.reward) == pytest.approx(want, abs=1e-6)
    assert torch.allclose(first.observation[0, 0, 4:6], torch.tensor([-0.1, 0.0]))  # v - u
    second = env.step(right * 5)  # clipped to 0.1: (0.2, 0) is inside the obstacle: blocked
    assert torch.allclose(second.observation[0, 0, :2], torch.tensor([0.1, 0.0]))
    assert float(second.reward) == pytest.approx(want - 1.0, abs=1e-6)


def test_tracking_wall_penalty_and_truncation() -> None:
    family = Tracking2D(num_obstacles=1, horizon=15)
    task = _tracking_task(obstacle_center=torch.tensor([[[0.0, 0.8]]]))
    env = family.make_env(task, 2)
    env.reset()
    left = torch.tensor([[[-0.1, 0.0], [0.0, 0.0]]])
    for _ in range(15):
        result = env.step(left)
    assert float(result.observation[0, 0, 0]) == -1.0
    free_reward = result.reward[0, 1]  # the still agent at the origin: no penalty
    targets = target_positions(task.params, 15.0, 1.0)[0]
    dist = torch.linalg.vector_norm(targets - torch.tensor([-1.0, 0.0]), dim=-1).mean()
    assert float(result.reward[0, 0]) == pytest.approx(-float(dist) - 0.5, abs=1e-5)
    assert float(free_reward) > -3.0
    assert bool(result.truncated.all()) and not bool(result.terminated.any())


def test_tracking_prior_respects_its_ranges() -> None:
    family = Tracking2D(max_targets=4, num_targets_range=(2, 3), num_obstacles=5,
                        patterns=("circular", "zig-zag"))
    p = family.sample(1000, "train", _gen()).params
    count = p["target_active"].sum(-1)
    assert set(count.tolist()) == {2, 3}
    assert bool(p["target_active"][:, :2].all()) and not bool(p["target_active"][:, 3].any())
    assert set(p["target_pattern"].unique().tolist()) == {1, 2}
    speed = p["target_speed"]
    assert float(speed.min()) >= 0.01 and float(speed.max()) <= 0.05
    gap = torch.linalg.vector_norm(p["obstacle_center"], dim=-1) - p["obstacle_radius"]
    assert float(gap.min()) >= 0.1 - 1e-6  # the start (origin) is always free
    assert float(torch.linalg.vector_norm(p["obstacle_center"], dim=-1).max()) <= 0.9 + 1e-6
    assert family.observation_space.shape == (2 + 5 * 4 + 3 * 5,)


def test_tracking_with_hidden_targets_drops_the_target_block() -> None:
    seen, hidden = Tracking2D(), Tracking2D(observe_targets=False)
    assert hidden.observation_space.shape == (2 + 3 * 3,)
    tasks = seen.sample(4, "train", _gen())
    envs = [f.make_env(tasks, 2) for f in (seen, hidden)]
    obs = [env.reset() for env in envs]
    action = torch.tensor([0.05, -0.03]).expand(4, 2, 2)
    for _ in range(5):
        full, part = (env.step(action) for env in envs)
        obs = [full.observation, part.observation]
        assert torch.equal(full.reward, part.reward)
    assert torch.equal(obs[1], torch.cat([obs[0][..., :2], obs[0][..., 17:]], -1))
    check_task_family(hidden)


# --- bad parameters -----------------------------------------------------------------

@pytest.mark.parametrize(("factory", "kwargs", "named"), [
    (BanditBernoulli, {"num_arms": 1}, "num_arms"),
    (BanditBernoulli, {"trial_length": 0}, "trial_length"),
    (TabularMDP, {"num_states": 1}, "num_states"),
    (TabularMDP, {"horizon": 0}, "horizon"),
    (Tracking2D, {"num_targets_range": (1, 4)}, "num_targets_range"),
    (Tracking2D, {"max_targets": 2}, "num_targets_range"),
    (Tracking2D, {"num_targets_range": (0, 2)}, "num_targets_range"),
    (Tracking2D, {"speed_range": (0.05, 0.01)}, "speed_range"),
    (Tracking2D, {"size_range": (0.0, 0.1)}, "size_range"),
    (Tracking2D, {"obstacle_radius_range": (0.1, 0.85)}, "obstacle_radius_range"),
    (Tracking2D, {"patterns": ("spiral",)}, "patterns"),
    (Tracking2D, {"max_action": 0.0}, "max_action"),
    (Tracking2D, {"wall_penalty": -1.0}, "wall_penalty"),
    (Tracking2D, {"observe_targets": "no"}, "observe_targets"),
    (CartPolePhysics, {"length_range": (1.0, 0.5)}, "length_range"),
    (CartPolePhysics, {"pole_mass_range": (0.0, 0.1)}, "pole_mass_range"),
    (CartPolePhysics, {"dtype": "float16"}, "dtype"),
    (CartPolePhysics, {"horizon": 0}, "horizon"),
    (CartPolePhysics, {"reversed_fraction": 1.5}, "reversed_fraction"),
    (CartPolePhysics, {"gravity_range": (9.8, 9.8), "cart_mass_range": (1, 1),
                       "pole_mass_range": (0.1, 0.1), "length_range": (0.5, 0.5),
                       "force_mag_range": (10, 10)}, "at least one of"),
    (PendulumPhysics, {"mass_range": (2.0, 1.0)}, "mass_range"),
    (PendulumPhysics, {"damping_range": (-0.1, 0.1)}, "damping_range"),
    (PendulumPhysics, {"gravity_range": "fast"}, "gravity_range"),
    (PendulumPhysics, {"max_torque": -2.0}, "max_torque"),
])
def test_bad_parameters_name_themselves(factory, kwargs: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        factory(**kwargs)


def test_unknown_parameter_through_the_registry() -> None:
    with pytest.raises(ValueError, match="num_arm"):
        make("bandit-bernoulli", num_arm=3)


# --- rendering ----------------------------------------------------------------------

def test_render_tracking_and_navigation_paths() -> None:
    import matplotlib.pyplot as plt

    from adaptrl.tasks.render import render_navigation_paths, render_paths

    family = Tracking2D()
    tasks = family.sample(1, "test", _gen())
    env = family.make_env(tasks, 2)
    obs = [env.reset()]
    for _ in range(20):
        obs.append(env.step(torch.full((1, 2, 2), 0.05)).observation)
    fig, (left, right) = plt.subplots(1, 2)
    render_paths(left, tasks, torch.stack(obs)[:, 0])
    active = int(tasks.params["target_active"].sum())
    assert len(left.lines) == 2 * active + 2 + 1  # target path + start dot, agent x2, origin
    assert len(left.patches) == 1 + family.num_obstacles
    nav = Navigation2D().sample(1, "test", _gen())
    before = torch.cumsum(torch.full((10, 3, 2), 0.05), 0)
    render_navigation_paths(right, nav, {"before adaptation": before,
                                         "after 1 step": before[:, :1]})
    assert len(right.lines) == 3 + 1 + 1 + 1  # 3 + 1 paths, goal star, start
    assert [t.get_text() for t in right.get_legend().get_texts()][:2] == [
        "before adaptation", "after 1 step"]
    plt.close(fig)
    with pytest.raises(ValueError, match="tasks_i"):
        render_paths(left, family.sample(2, "test", _gen()), before)


def test_render_takes_sampled_trajectories_and_cuts_their_padding() -> None:
    import matplotlib.pyplot as plt

    from adaptrl.models.policies import make_policy
    from adaptrl.rollouts.sampler import rollout
    from adaptrl.tasks.render import agent_paths, render_navigation_paths

    family = Navigation2D()
    tasks = family.sample(1, "test", _gen())
    torch.manual_seed(0)
    policy = make_policy(family.observation_space, family.action_space, hidden=(8,))
    traj = rollout(family.make_env(tasks, 3), policy, None, _gen(1))
    paths = agent_paths(traj)
    assert [len(p) for p in paths] == traj.masks[:, 0].sum(0).long().tolist()
    fig, ax = plt.subplots()
    render_navigation_paths(ax, tasks, {"sampled": traj})
    assert len(ax.lines) == 3 + 2
    plt.close(fig)


def test_task_features_flatten_every_parameter_in_key_order() -> None:
    tasks = Tasks({"b": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "a": torch.tensor([5, 6])})
    assert torch.equal(tasks.features(), torch.tensor([[5.0, 1.0, 2.0], [6.0, 3.0, 4.0]]))
    assert tasks.features().dtype == torch.float32
    mdp = TabularMDP(num_states=3, num_actions=2).sample(4, "train", torch.Generator())
    assert mdp.features().shape == (4, 3 * 2 * 3 + 3 * 2)  # reward means, then transitions
    assert torch.equal(mdp.features()[:, :6], mdp.params["reward_mean"].reshape(4, 6))
    with pytest.raises(ValueError, match="no parameters"):
        Tasks({}).features()
