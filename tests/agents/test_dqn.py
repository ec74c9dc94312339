"""DQN batched over tasks: n-step / Double-DQN targets by known answers, per-task
isolation, the epsilon and target schedules, determinism, exact resume, learning."""

from __future__ import annotations

import copy
import io
from typing import Any

import gymnasium as gym
import pytest
import torch

from adaptrl.agents.contract import AdaptationUnit
from adaptrl.agents.dqn import (
    DQNAgent,
    DQNConfig,
    DQNState,
    NStepBatch,
    bootstrap_values,
    clip_per_task,
    sample_n_step,
)
from adaptrl.evaluation.protocol import adaptation_curves
from adaptrl.rollouts.online import OnlineLearner, play_online
from adaptrl.rollouts.replay import RingBuffer
from adaptrl.rollouts.transitions import Transitions
from adaptrl.rollouts.trial_sampler import Step
from adaptrl.tasks import BanditBernoulli, TabularMDP, make, registered
from adaptrl.tasks.adapters import GymnasiumFamily
from adaptrl.tasks.base import Tasks

CPU = torch.device("cpu")


def chain(rewards: list[float], terminated: frozenset[int] = frozenset(),
          truncated: frozenset[int] = frozenset()) -> Transitions:
    """One task's chronological transitions: obs ``i``, next obs ``i + 1``."""
    n = len(rewards)
    i = torch.arange(n, dtype=torch.float32)
    return Transitions(i.view(1, n, 1), torch.zeros(1, n, dtype=torch.long),
                       torch.tensor([rewards]), (i + 1).view(1, n, 1),
                       torch.tensor([[k in terminated for k in range(n)]]),
                       torch.tensor([[k in truncated for k in range(n)]]))


def windows(replay: RingBuffer, gamma: float, n: int) -> dict[int, tuple[float, ...]]:
    """Every start's ``(returns, discount, next_obs, terminated)``, keyed by its obs."""
    batch = sample_n_step(replay, 1, 400, gamma, n, torch.Generator().manual_seed(0))
    return {int(o): (float(r), float(d), float(x), float(t)) for o, r, d, x, t in zip(
        batch.obs[0, :, 0], batch.returns[0], batch.discount[0], batch.next_obs[0, :, 0],
        batch.terminated[0], strict=True)}


def test_n_step_windows_bootstrap_through_truncation_not_termination() -> None:
    replay = RingBuffer(1, 8)
    replay.add(chain([1, 2, 3, 4, 5], terminated=frozenset({4}), truncated=frozenset({2})))
    assert windows(replay, 0.5, 2) == {
        0: (1 + 0.5 * 2, 0.25, 2, 0),
        1: (2 + 0.5 * 3, 0.25, 3, 0),  # ends at the truncation: bootstraps from s_3
        2: (3, 0.5, 3, 0),             # cut after one step: gamma^1
        3: (4 + 0.5 * 5, 0.25, 5, 1),  # terminal: no bootstrap
        4: (5, 0.5, 5, 1)}
    one = windows(replay, 0.5, 1)  # n = 1 is the one-step target's (r, gamma, s', done)
    assert one == {k: (k + 1, 0.5, k + 1, float(k == 4)) for k in range(5)}


def test_n_step_windows_stop_at_the_newest_transition_of_a_wrapped_ring() -> None:
    replay = RingBuffer(1, 4)
    replay.add(chain([0, 1, 2, 3, 4, 5]))  # holds steps 2..5; slot 2 (step 2) is next to go
    assert windows(replay, 0.5, 3) == {
        2: (2 + 0.5 * 3 + 0.25 * 4, 0.125, 5, 0),
        3: (3 + 0.5 * 4 + 0.25 * 5, 0.125, 6, 0),
        4: (4 + 0.5 * 5, 0.25, 6, 0),  # the data ends at step 5: bootstrap there,
        5: (5, 0.5, 6, 0)}             # never wrap round to the oldest step


def test_double_dqn_bootstrap_and_targets() -> None:
    q_target = torch.tensor([[10.0, 2.0, 7.0]])
    q_online = torch.tensor([[1.0, 5.0, 3.0]])
    assert bootstrap_values(q_target).tolist() == [10.0]  # max of the target net
    assert bootstrap_values(q_target, q_online).tolist() == [2.0]  # online argmax, target value
    family = BanditBernoulli(2)
    agent = DQNAgent(DQNConfig(double=True, hidden=[4]),
                     family.observation_space, family.action_space)
    state = agent.begin(family.make_env(family.sample(1, "train", torch.Generator()), 1))

    def constant(bias: list[float]) -> dict[str, torch.Tensor]:  # Q(s, .) = bias
        p = {k: torch.zeros_like(v) for k, v in state.params.items()}
        p["body.layers.1.bias"] = torch.tensor([bias])
        return p
    state.params, state.target = constant([5.0, 0.0]), constant([1.0, 3.0])
    ones = torch.ones(1, 3)
    batch = NStepBatch(ones.unsqueeze(-1), torch.zeros(1, 3, dtype=torch.long),
                       torch.tensor([[1.0, 1.0, 2.0]]), torch.tensor([[0.5, 0.25, 0.5]]),
                       ones.unsqueeze(-1), torch.tensor([[False, False, True]]))
    # Double DQN: argmax by the online net (action 0), value by the target net (1.0)
    assert agent.targets(batch, state).tolist() == [[1.5, 1.25, 2.0]]
    agent.config = agent.config.model_copy(update={"double": False})  # max: 3.0
    assert agent.targets(batch, state).tolist() == [[2.5, 1.75, 2.0]]


def test_epsilon_schedule() -> None:
    c = DQNConfig(total_steps=1000)  # CleanRL: 1 -> 0.05 over the first 500 steps
    assert c.epsilon(0) == 1.0
    assert c.epsilon(250) == pytest.approx(0.525)
    assert c.epsilon(500) == pytest.approx(0.05)
    assert c.epsilon(10_000) == 0.05
    assert DQNConfig(exploration_fraction=0.0).epsilon(0) == 0.05


def test_acting_is_epsilon_greedy() -> None:
    family = TabularMDP(num_states=3, num_actions=4)
    env = family.make_env(family.sample(3, "train", torch.Generator().manual_seed(0)), 50)
    obs = env.reset(torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    greedy_agent = DQNAgent(DQNConfig(epsilon_start=0.0, epsilon_end=0.0),
                            family.observation_space, family.action_space)
    state = greedy_agent.begin(env)
    act, _ = greedy_agent.act(obs, state, g)
    assert torch.equal(act, greedy_agent.network(obs, state.params).argmax(-1))
    random_agent = DQNAgent(DQNConfig(epsilon_start=1.0, epsilon_end=1.0),
                            family.observation_space, family.action_space)
    act, _ = random_agent.act(obs, random_agent.begin(env), g)
    counts = torch.bincount(act.flatten(), minlength=4)
    assert bool((counts > 20).all())  # 150 uniform draws over 4 actions


def random_steps(num_tasks: int, steps: int, seed: int, obs_dim: int = 3
                 ) -> list[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(seed)
    out: list[tuple[torch.Tensor, ...]] = []
    for _ in range(steps):
        obs = torch.randn(num_tasks, 1, obs_dim, generator=g)
        out.append((obs, torch.randint(0, 2, (num_tasks, 1), generator=g),
                    torch.randn(num_tasks, 1, generator=g), obs + 0.1,
                    torch.rand(num_tasks, 1, generator=g) < 0.2))
    return out


class FakeEnv:
    def __init__(self, num_tasks: int) -> None:
        self.num_tasks, self.episodes_per_task, self.horizon = num_tasks, 1, 5
        self.device = CPU


def feed(agent: DQNAgent, data: list[tuple[torch.Tensor, ...]], state: DQNState,
         seed: int = 0, watch: Any = None) -> DQNState:
    g = torch.Generator().manual_seed(seed)
    for obs, action, reward, nxt, term in data:
        _, state = agent.act(obs, state, g)
        alive = torch.ones_like(term)
        state = agent.observe(Step(obs, action, reward, term, ~term, nxt, alive), state)
        if watch is not None:
            watch(state)
    return state


def small_agent(**config: Any) -> DQNAgent:
    torch.manual_seed(0)
    obs = gym.spaces.Box(-5.0, 5.0, (3,))
    base = dict(learning_starts=2, train_frequency=1, batch_size=8, buffer_size=16,
                target_period=3, hidden=[8], lr=1e-2, n_step=2)
    return DQNAgent(DQNConfig(**{**base, **config}), obs, gym.spaces.Discrete(2))


def test_tasks_learn_in_isolation() -> None:
    agent = small_agent(double=True, max_grad_norm=0.5)
    data = random_steps(2, 30, seed=0)
    quiet = [(o, a, r * torch.tensor([[1.0], [0.0]]), x, t) for o, a, r, x, t in data]
    loud = [(o, a, r * torch.tensor([[1.0], [100.0]]), x, t) for o, a, r, x, t in data]
    a = feed(agent, quiet, agent.begin(FakeEnv(2)))  # type: ignore[arg-type]
    b = feed(agent, loud, agent.begin(FakeEnv(2)))  # type: ignore[arg-type]
    assert a.updates == b.updates > 0
    for k in a.params:  # task 0 saw the same data: the same learning, whatever task 1 saw
        torch.testing.assert_close(a.params[k][0], b.params[k][0], rtol=0, atol=1e-6)
        torch.testing.assert_close(a.target[k][0], b.target[k][0], rtol=0, atol=1e-6)
    assert any(not torch.allclose(a.params[k][1], b.params[k][1]) for k in a.params)
    assert torch.equal(a.replay.data.reward[0], b.replay.data.reward[0])
    init = agent.initial_params()
    moved = sum(float((a.params[k][1] - init[k]).abs().max()) for k in init)
    assert 0 < moved < 1  # the all-zero-reward task only drifts, on its own data


def test_per_task_gradient_clipping() -> None:
    grads = {"w": torch.tensor([[3.0, 0.0], [0.3, 0.0]]), "b": torch.tensor([[4.0], [0.4]])}
    clipped, norm = clip_per_task(grads, 1.0)
    torch.testing.assert_close(norm, torch.tensor([5.0, 0.5]))
    torch.testing.assert_close(clipped["w"][0], torch.tensor([0.6, 0.0]), atol=1e-6, rtol=0)
    assert torch.equal(clipped["w"][1], grads["w"][1])  # under the limit: untouched


@pytest.mark.parametrize("tau", [1.0, 0.25])
def test_target_updates(tau: float) -> None:
    agent = small_agent(target_period=1 if tau < 1 else 4, tau=tau, learning_starts=5)
    seen: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = []
    feed(agent, random_steps(1, 14, seed=1), agent.begin(FakeEnv(1)),  # type: ignore[arg-type]
         watch=lambda s: seen.append((dict(s.params), dict(s.target))))
    init = agent.initial_params()
    for t, (params, target) in enumerate(seen):
        before = seen[t - 1][1] if t else {k: v.unsqueeze(0) for k, v in init.items()}
        updated = t > 5 and t % agent.config.target_period == 0
        for k in target:
            expected = torch.lerp(before[k], params[k], tau) if updated else before[k]
            torch.testing.assert_close(target[k], expected, rtol=0, atol=1e-7)
    changes = [t for t in range(1, len(seen)) if not torch.equal(
        seen[t][1]["body.layers.0.weight"], seen[t - 1][1]["body.layers.0.weight"])]
    assert changes == ([8, 12] if tau == 1.0 else list(range(6, 14)))


def resume_setup() -> tuple[TabularMDP, Tasks, DQNAgent]:
    family = TabularMDP(num_states=4, num_actions=3, horizon=5)
    tasks = family.sample(3, "train", torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    config = DQNConfig(learning_starts=4, train_frequency=2, batch_size=8, buffer_size=30,
                       target_period=3, tau=0.5, n_step=3, double=True, dueling=True,
                       max_grad_norm=1.0, huber_delta=1.0, total_steps=60, hidden=[8])
    return family, tasks, DQNAgent(config, family.observation_space, family.action_space)


def snapshot(state: DQNState) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def assert_same(a: DQNState, b: DQNState) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    for key in ("params", "target", "opt"):
        for k in sa[key]:
            assert torch.equal(sa[key][k], sb[key][k]), (key, k)
    for k, v in sa["replay"]["rows"].items():
        assert torch.equal(v, sb["replay"]["rows"][k]), k
    assert (sa["steps"], sa["updates"]) == (sb["steps"], sb["updates"])


def test_exact_resume_and_determinism() -> None:
    family, tasks, agent = resume_setup()
    g = torch.Generator().manual_seed(7)
    env = family.make_env(tasks, 2)
    unbroken = play_online(env, agent, 40, g).state
    g = torch.Generator().manual_seed(7)
    half = play_online(env, agent, 20, g).state
    saved, g_state = snapshot(half), g.get_state()
    play_online(env, agent, 20, g, state=half)  # the original run goes on
    assert_same(half, unbroken)  # two calls == one: each starts with a reset

    restored_agent = copy.deepcopy(agent)
    fresh_env = family.make_env(tasks, 2)
    resumed = restored_agent.begin(fresh_env)
    resumed.load_state_dict(saved)
    g2 = torch.Generator().manual_seed(999)
    g2.set_state(g_state)
    resumed = play_online(fresh_env, restored_agent, 20, g2, state=resumed).state
    assert_same(resumed, unbroken)
    assert unbroken.updates > 5 and int(unbroken.replay.size.min()) == 15  # it wrapped
    other = play_online(family.make_env(tasks, 2), agent, 40,
                        torch.Generator().manual_seed(8)).state
    assert not torch.equal(other.params["value.bias"], unbroken.params["value.bias"])


def test_load_refuses_another_shape() -> None:
    family, tasks, agent = resume_setup()
    state = agent.begin(family.make_env(tasks, 2))
    with pytest.raises(ValueError, match="3 tasks x 2 slots"):
        agent.begin(family.make_env(tasks, 1)).load_state_dict(state.state_dict())


def test_learns_bandits_better_than_random() -> None:
    family = BanditBernoulli(num_arms=5)
    tasks = family.sample(16, "test", torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    config = DQNConfig(gamma=0.0, lr=1e-2, batch_size=32, learning_starts=20,
                       train_frequency=1, target_period=10, total_steps=300,
                       buffer_size=300, hidden=[16])
    agent = DQNAgent(config, family.observation_space, family.action_space)
    assert agent.unit == AdaptationUnit.ENV_STEPS and isinstance(agent, OnlineLearner)
    curve = adaptation_curves(family, agent, tasks, 3, 200, 0, CPU,
                              env_steps_per_unit=100)["return"]
    random_arm = tasks.params["p"].mean(-1)
    assert float(curve[-1].mean()) > float(random_arm.mean()) + 0.2
    assert float(curve[-1].mean()) > float(curve[0].mean()) + 0.2


# every built-in family (no extra needed) with a discrete action space
DISCRETE = [name for name, spec in registered().items()
            if spec.extra is None and isinstance(make(name).action_space, gym.spaces.Discrete)]


@pytest.mark.parametrize("name", DISCRETE)
def test_runs_on_discrete_families(name: str) -> None:
    family = make(name)
    assert isinstance(family.action_space, gym.spaces.Discrete)
    tasks = family.sample(2, "train", torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    agent = DQNAgent(DQNConfig(learning_starts=3, train_frequency=2, batch_size=4,
                               hidden=[8], n_step=2, double=True),
                     family.observation_space, family.action_space)
    run = play_online(family.make_env(tasks, 2), agent, 12, torch.Generator().manual_seed(0))
    assert run.state.updates > 0 and torch.equal(run.steps, torch.full((2, 2), 12))
    assert torch.equal(run.state.replay.size, torch.full((4,), 12))


def test_runs_through_the_gymnasium_adapter() -> None:
    family = GymnasiumFamily("CartPole-v1", lambda n, g: Tasks({"k": torch.rand(n, generator=g)}),
                             lambda env, task: None, horizon=25)
    tasks = family.sample(2, "train", torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    agent = DQNAgent(DQNConfig(learning_starts=5, train_frequency=1, batch_size=8,
                               hidden=[8], epsilon_start=1.0, epsilon_end=1.0),
                     family.observation_space, family.action_space)
    run = play_online(family.make_env(tasks, 2), agent, 40, torch.Generator().manual_seed(0))
    replay = run.state.replay
    assert torch.equal(replay.size, torch.full((4,), 40))
    # random CartPole episodes terminate well before 25 steps: terminal rows were stored
    assert bool(replay.data.terminated.any()) and len(run.episodes.returns) >= 4
