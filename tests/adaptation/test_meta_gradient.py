"""Online meta-gradients (adaptation/meta_gradient.py; Xu, van Hasselt, Silver 2018): the
meta-gradient of the discount, of the learning rate and (lambda-returns) of lambda through a
DQN step equal finite differences (float64), the trace's formula, and the known 10-state
chain check."""

from __future__ import annotations

import pytest
import torch
from meta_gradient_chain import ACTIONS, BATCH, STATES, chain_agent, chain_batch

from adaptrl.adaptation.meta_gradient import (
    accumulate_trace,
    discount,
    discount_logit,
    meta_gradient,
    step_size,
    update_with_tangents,
)
from adaptrl.agents.dqn import DQNConfig, DQNState, WindowBatch
from adaptrl.agents.dqn_metagrad import MetaGradientConfig, MetaGradientDQN, MetaGradientDQNConfig
from adaptrl.rollouts.replay import RingBuffer

TASKS = 2


def _window_batch(g: torch.Generator, n: int = 3) -> WindowBatch:
    """Windows of ``n`` steps per task: one-hot states, random rewards, each window ending
    after 1..n steps, about half of the ended ones by a termination."""
    eye = torch.eye(STATES, dtype=torch.float64)
    s = torch.randint(0, STATES, (TASKS, BATCH), generator=g)
    nxt = torch.randint(0, STATES, (TASKS, BATCH, n), generator=g)
    length = torch.randint(1, n + 1, (TASKS, BATCH), generator=g)
    valid = torch.arange(n) < length.unsqueeze(-1)
    last = torch.arange(n) == (length - 1).unsqueeze(-1)
    term = last & (torch.rand(TASKS, BATCH, 1, generator=g) < 0.5)
    rewards = torch.where(valid, torch.randn(TASKS, BATCH, n, generator=g,
                                             dtype=torch.float64), 0.0)
    return WindowBatch(eye[s], torch.randint(0, ACTIONS, (TASKS, BATCH), generator=g),
                       rewards, eye[nxt], term, valid)


def _setup(conditioned: bool = True, huber: float | None = None, clip: float | None = None,
           window: int = 1) -> tuple[MetaGradientDQN, DQNState, torch.Tensor]:
    learn = ["gamma", "lr", "lambda"] if window > 1 else ["gamma", "lr"]
    cfg = MetaGradientDQNConfig(
        dqn=DQNConfig(hidden=[8], lr=0.05, gamma=0.9, huber_delta=huber, max_grad_norm=clip),
        meta=MetaGradientConfig(conditioned=conditioned, gamma_bar=0.99, window=window,
                                learn=learn, lambda_bar=0.8))
    agent, params, target, g = chain_agent(cfg, TASKS)
    opt = agent.direction.init(params)  # a history: Adam after three earlier steps
    opt["step"] = torch.tensor(3)
    for k, v in params.items():
        opt[f"m.{k}"] = 0.01 * torch.randn(v.shape, generator=g, dtype=torch.float64)
        opt[f"v.{k}"] = 0.001 * torch.rand(v.shape, generator=g, dtype=torch.float64)
    state = DQNState(params, target, opt, RingBuffer(TASKS, 4), TASKS, 1)
    eta = torch.stack([discount_logit(torch.tensor([0.9, 0.8], dtype=torch.float64)),
                       torch.log(torch.tensor([0.05, 0.02], dtype=torch.float64))], -1)
    if window > 1:
        lam = discount_logit(torch.tensor([0.6, 0.3], dtype=torch.float64))
        eta = torch.cat([eta, lam.unsqueeze(-1)], -1)
    return agent, state, eta


@pytest.mark.parametrize("conditioned,huber,clip", [(True, None, None), (False, 1.0, None),
                                                    (True, None, 0.5)])
def test_meta_gradient_equals_finite_differences(conditioned: bool, huber: float | None,
                                                 clip: float | None) -> None:
    """dJ'(theta'(eta))/d eta by the trace (one update, mu = 0) against central differences
    of J' after the update from eta +- h e_j, per task, for gamma (sigmoid) and lr (exp)."""
    agent, s, eta = _setup(conditioned, huber, clip)
    g = torch.Generator().manual_seed(2)
    batch, query = chain_batch(g, TASKS), chain_batch(g, TASKS)
    update = agent.inner_update(s, batch, eta)
    new, _, tangents = update_with_tangents(update, eta, [0, 1])
    grads, _ = agent.meta_objective_grads(s, query, new)
    analytic = meta_gradient(grads, accumulate_trace(None, tangents, 0.0))
    h = 1e-6
    for j in range(2):
        e = torch.zeros_like(eta)
        e[:, j] = h
        up = agent.meta_objective_grads(s, query, update(eta + e)[0])[1]
        down = agent.meta_objective_grads(s, query, update(eta - e)[0])[1]
        numeric = (up - down) / (2 * h)
        torch.testing.assert_close(analytic[:, j], numeric, rtol=1e-6, atol=1e-9)
    assert bool((analytic[:, 0].abs() > 1e-6).all())  # a real dependence on gamma
    # the learning rate's tangent in closed form: theta' - theta (what the agent uses)
    for k, v in tangents[1].items():
        torch.testing.assert_close(v, new[k] - s.params[k], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("conditioned,huber", [(True, None), (False, 1.0)])
def test_lambda_return_meta_gradient_equals_finite_differences(conditioned: bool,
                                                               huber: float | None) -> None:
    """With lambda-returns over 3-step windows (``eta = (logit gamma, log lr, logit
    lambda)``, the network conditioned on (gamma, lambda), the meta-objective's target the
    lambda-return under (gamma_bar, lambda_bar)): dJ'/d eta by forward-mode tangents
    against central differences, every component, per task."""
    agent, s, eta = _setup(conditioned, huber, window=3)
    g = torch.Generator().manual_seed(3)
    batch, query = _window_batch(g), _window_batch(g)
    update = agent.inner_update(s, batch, eta)
    new, _, tangents = update_with_tangents(update, eta, [0, 2])
    tangents.append({k: new[k] - s.params[k] for k in new})  # lr: closed form
    grads, _ = agent.meta_objective_grads(s, query, new)
    analytic = meta_gradient(grads, accumulate_trace(None, tangents, 0.0))  # gamma, lambda, lr
    h = 1e-6
    for col, j in enumerate([0, 2, 1]):
        e = torch.zeros_like(eta)
        e[:, j] = h
        up = agent.meta_objective_grads(s, query, update(eta + e)[0])[1]
        down = agent.meta_objective_grads(s, query, update(eta - e)[0])[1]
        torch.testing.assert_close(analytic[:, col], (up - down) / (2 * h), rtol=1e-6,
                                   atol=1e-9)
    assert bool((analytic[:, 1].abs() > 1e-6).all())  # a real dependence on lambda
    # the agent's own eta_gradient orders the columns as eta: gamma, lr, lambda
    assert agent.components == [0, 1, 2]


def test_trace_accumulates_with_decay_and_meta_gradient_is_the_inner_product() -> None:
    z = [{"w": torch.tensor([[1.0, 2.0]])}]
    t = [{"w": torch.tensor([[0.5, -1.0]])}]
    out = accumulate_trace(z, t, 0.5)
    torch.testing.assert_close(out[0]["w"], torch.tensor([[1.0, 0.0]]))
    assert accumulate_trace(z, t, 0.0)[0]["w"] is t[0]["w"]
    assert accumulate_trace(None, t, 0.9)[0]["w"] is t[0]["w"]
    grads = {"w": torch.tensor([[3.0, 4.0]])}
    torch.testing.assert_close(meta_gradient(grads, out), torch.tensor([[3.0]]))
    with pytest.raises(ValueError, match="trace decay"):
        accumulate_trace(z, t, 1.5)
    with pytest.raises(ValueError, match="empty"):
        meta_gradient(grads, [])


def test_parameterisations_round_trip_and_refuse_bad_values() -> None:
    torch.testing.assert_close(discount(discount_logit(0.99)), torch.tensor(0.99,
                                                                         dtype=torch.float64))
    torch.testing.assert_close(step_size(torch.log(torch.tensor(1e-3))), torch.tensor(1e-3))
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        discount_logit(1.0)


def test_ten_state_chain_lowers_the_discount_of_noisy_states() -> None:
    """REFERENCES.md's known check: a 10-state chain whose states alternate noisy rewards
    (N(0, 1)) and signal rewards (0.1); one-hot features, a linear value, TD(0) on a whole
    episode; one discount per state (the discount applied when bootstrapping from it),
    sigmoid-parameterised, from 0.9; inner and outer SGD with lr 0.5; meta-objective: the
    TD error of the next episode under the reference gamma_bar = 1. The meta-gradient
    lowers the discount of the noisy states and raises that of the signal states (256
    chains in parallel, 300 episodes)."""
    torch.manual_seed(0)
    n, chains, alpha, beta = 10, 256, 0.5, 0.5
    noisy = torch.arange(n) % 2 == 0
    g = torch.Generator().manual_seed(0)

    def rewards() -> torch.Tensor:
        noise = torch.randn(chains, n, generator=g, dtype=torch.float64)
        return torch.where(noisy, noise, torch.full_like(noise, 0.1))

    def td_errors(w: torch.Tensor, r: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        # state s -> s + 1 (terminal, value 0, after state n - 1); gamma of the next state
        g_next = torch.cat([gamma[:, 1:], torch.ones(chains, 1, dtype=w.dtype)], 1)
        return r + g_next * w[:, 1:] - w[:, :-1]

    w = torch.zeros(chains, n + 1, dtype=torch.float64)
    eta = torch.full((chains, n), float(discount_logit(0.9)), dtype=torch.float64)
    pad = torch.zeros(chains, 1, dtype=torch.float64)
    for _ in range(300):
        r, r_next = rewards(), rewards()
        w_now = w

        def update(e: torch.Tensor, w_now: torch.Tensor = w_now, r: torch.Tensor = r
                   ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
            d = td_errors(w_now, r, discount(e))
            return {"w": w_now + alpha * torch.cat([d, pad], 1)}, {}

        new, _, tangents = update_with_tangents(update, eta, list(range(n)))
        d_next = td_errors(new["w"], r_next, torch.ones_like(eta))
        grads = {"w": -torch.cat([d_next, pad], 1)}  # dJ'/dw' of 1/2 sum delta'^2
        eta = eta - beta * meta_gradient(grads, tangents)
        w = new["w"]
    gamma = discount(eta).mean(0)
    noisy_bootstrapped = [2, 4, 6, 8]  # state 0 is never bootstrapped from
    signal = [1, 3, 5, 7, 9]
    assert bool((gamma[noisy_bootstrapped] < 0.9).all()), gamma
    assert float(gamma[signal].mean()) > 0.9, gamma
    assert float(gamma[noisy_bootstrapped].max()) < float(gamma[[1, 3, 5, 7]].min()), gamma
