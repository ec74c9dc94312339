"""The inner update (objective + optimizer) as the inner loop and the evaluated agent use it:
the optimizer's state carried across steps, the evaluation's step-size schedule, replays
equal to what sampling adapted."""

from __future__ import annotations

import torch

from adaptrl.adaptation.inner_optimizers import SGD, Adam
from adaptrl.adaptation.inner_update import InnerUpdate
from adaptrl.adaptation.objectives import PolicyGradientObjective
from adaptrl.algorithms.common import InnerLoop, gradient_agent
from adaptrl.models.functional import expand_params, named_params
from adaptrl.models.policies import PolicyConfig
from adaptrl.rollouts.sampler import rollout
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.tasks import make

FAMILY = make("navigation-2d", horizon=10)
N = 3


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _update(optimizer: SGD | Adam) -> InnerUpdate:
    torch.manual_seed(0)
    policy = PolicyConfig(hidden=[8], activation="tanh").build(FAMILY.observation_space,
                                                                FAMILY.action_space)
    return InnerUpdate(PolicyGradientObjective(policy), optimizer)


def _support(policy: torch.nn.Module, seed: int) -> Trajectories:
    env = FAMILY.make_env(FAMILY.sample(N, "train", _generator(seed)), 4, "cpu")
    return rollout(env, policy, None, _generator(seed + 1))


def test_agent_follows_the_step_size_schedule() -> None:
    update = _update(SGD(0.1))
    agent = gradient_agent(update.policy, update, [0.1, 0.05])
    assert [opt.lr for opt in agent.schedule] == [0.1, 0.05]  # type: ignore[attr-defined]
    support = _support(update.policy, 0)
    start = expand_params(agent.initial_params(), N)
    got = agent.adapt(start, support, 3)  # the last step size repeats
    data = update.prepare(support)
    want, _ = update.with_optimizer(SGD(0.05)).step(start, support, data, {}, first_order=True)
    for k in want:
        assert torch.equal(got[k], want[k].detach()), k
    # no schedule: the training step size
    assert [o.lr for o in gradient_agent(update.policy, update, None).schedule] == [0.1]  # type: ignore[attr-defined]


def test_agent_carries_adams_state_across_steps_and_restarts_it_per_batch() -> None:
    update = _update(Adam(0.01))
    agent = gradient_agent(update.policy, update, None)
    supports = [_support(update.policy, seed) for seed in (0, 5)]
    params = expand_params(agent.initial_params(), N)
    first = agent.adapt(params, supports[0], 0)
    second = agent.adapt(first, supports[1], 1)
    # by hand: two Adam steps with the moments carried over
    state = update.init(params, N)
    phi, state = update.step(params, supports[0], update.prepare(supports[0]), state,
                             first_order=True)
    assert int(state["step"]) == 1
    phi, state = update.step(phi, supports[1], update.prepare(supports[1]), state,
                             first_order=True)
    for k in phi:
        assert torch.equal(second[k], phi[k]), k
    # a fresh state would have taken another step (Adam's first step is lr * sign(g))
    fresh, _ = update.step(first, supports[1], update.prepare(supports[1]),
                           update.init(first, N), first_order=True)
    assert any(not torch.equal(fresh[k], second[k]) for k in fresh)
    # step 0 of a new batch starts afresh
    again = agent.adapt(params, supports[0], 0)
    for k in again:
        assert torch.equal(again[k], first[k]), k


def test_replayed_adam_inner_loop_equals_the_sampled_one() -> None:
    """Sampling adapts differentiably with the state carried over; replaying the recorded
    supports from theta (TRPO's line search, PPO's minibatches) gives the same phi, and
    Adam offers no step Jacobians (TRPO then uses its autograd metric)."""
    update = _update(Adam(0.01))
    loop = InnerLoop(FAMILY, update, 4, _generator(1), torch.device("cpu"))
    theta = named_params(update.policy)
    episodes = loop.sample(FAMILY.sample(N, "train", _generator(2)), theta, 2,
                           differentiable=True)
    assert episodes.adapted is not None and episodes.jacobians is None
    assert [int(s["step"]) for s in episodes.states] == [0, 1]
    replayed = loop.adapt(theta, episodes.supports, first_order=False, differentiable=True)
    for k in replayed:
        torch.testing.assert_close(replayed[k], episodes.adapted[k], rtol=0, atol=0)
    grads = torch.autograd.grad(sum(v.sum() for v in replayed.values()), list(theta.values()))
    assert all(torch.isfinite(g).all() for g in grads)
