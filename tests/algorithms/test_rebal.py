"""ReBAL (GrBAL's learner with a recurrent update rule, ``name: rebal``): the context is a
GRU's state after the filled rows of a window, by hand; the meta-gradient reaches the GRU
(its finite-difference check is test_grbal.py's, parametrised); a learned context predicts
systems that no context-free model can; runs are deterministic and resume exactly; the agent
reads its context from the last M transitions at every step; the baselines are GrBAL's model
without the context. (Determinism, exact resume and the trained mb baseline are checked in
test_grbal.py, parametrised over both learners.)"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from grbal_tiny import REBAL_TINY as TINY
from grbal_tiny import build as _build
from grbal_tiny import pendulum as _family
from grbal_tiny import tasks as _tasks

from adaptrl.algorithms.baselines import baseline_config
from adaptrl.algorithms.grbal import adapt
from adaptrl.algorithms.grbal_config import GrBALConfig, ReBALConfig
from adaptrl.algorithms.registry import algorithm_spec
from adaptrl.evaluation.protocol import adaptation_curves
from adaptrl.models.dynamics import CONTEXT, DynamicsModel
from adaptrl.models.functional import named_params
from adaptrl.planning.controller import Window


def test_context_is_the_gru_state_after_the_filled_rows_by_hand() -> None:
    torch.manual_seed(0)
    model = DynamicsModel(3, 1, hidden=(8,), context=4)
    model.fit_normalizer(torch.randn(50, 3) * 2, torch.randn(50, 1), torch.randn(50, 3))
    obs, act, nxt = torch.randn(3, 5, 3), torch.randn(3, 5, 1), torch.randn(3, 5, 3)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[0, :2] = False   # the first two rows not seen yet
    mask[2] = False       # nothing seen
    got = model.encode(None, obs, act, nxt, mask)
    cell = torch.nn.GRUCell(7, 4)  # the GRU's weights, run step by step over row 0's last 3
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in model.encoder.state_dict().items()})
    h = torch.zeros(1, 4)
    for t in range(2, 5):
        x = torch.cat([(obs[0, t] - model.obs_mean) / model.obs_std,
                       (act[0, t] - model.act_mean) / model.act_std,
                       model.normalised_target(obs[0, t], nxt[0, t])])
        h = cell(x[None], h)
    assert torch.allclose(got[0], h[0], atol=1e-6)
    assert torch.allclose(got[1], model.encode(None, obs[1:2], act[1:2], nxt[1:2])[0])
    assert torch.equal(got[2], torch.zeros(4))
    # functional parameters give the module's own answer, other ones another
    params = named_params(model)
    assert torch.allclose(model.encode(params, obs, act, nxt, mask), got)
    shifted = {k: v + 0.1 if k.startswith("encoder.") else v for k, v in params.items()}
    assert not torch.allclose(model.encode(shifted, obs, act, nxt, mask)[:2], got[:2])
    with pytest.raises(ValueError, match="filled rows are the last"):
        model.encode(None, obs, act, nxt, mask.flip(1))


def test_prediction_reads_the_context_and_needs_it() -> None:
    torch.manual_seed(1)
    model = DynamicsModel(3, 1, hidden=(8,), context=4)
    s, a = torch.randn(2, 6, 3), torch.randn(2, 6, 1)
    params = named_params(model)
    zero = model.predict(s, a, {**params, CONTEXT: torch.zeros(2, 4)})
    other = model.predict(s, a, {**params, CONTEXT: torch.tensor([[0.0] * 4, [1.0] * 4])})
    assert torch.equal(zero[0], other[0]) and not torch.allclose(zero[1], other[1])
    with pytest.raises(ValueError, match="context"):
        model.predict(s, a, params)
    with pytest.raises(ValueError, match="context must be >= 0"):
        DynamicsModel(3, 1, context=-1)


def test_meta_loss_trains_the_gru_and_before_is_the_loss_without_context() -> None:
    """The meta-gradient reaches the GRU's weights (its finite-difference check is
    tests/algorithms/test_grbal.py's, parametrised over both learners); the logged loss
    "before" is the future's loss with the zero context of no transitions."""
    learner = _build(ReBALConfig(**TINY))
    learner.meta_update(_tasks())
    past, future = learner.windows(4)
    theta = named_params(learner.model)
    loss, before = learner.meta_loss(theta, past, future)
    grads = dict(zip(theta, torch.autograd.grad(loss, list(theta.values()))))
    assert all(float(grads[k].abs().sum()) > 0 for k in theta if k.startswith("encoder."))
    no_context = {**theta, CONTEXT: torch.zeros(4, 6)}
    with torch.no_grad():
        expected = learner.model.loss(no_context, future.obs, future.action, future.next_obs)
    assert before == pytest.approx(float(expected.mean()), rel=1e-6)
    assert float(loss.detach()) != pytest.approx(before)


def test_a_learned_context_tells_apart_systems_one_model_cannot() -> None:
    """Two linear systems s' = s + b a with b = +1 or -1 (a task each): without a context the
    best model predicts the change as 0 on average; ReBAL's meta-loss, trained by Adam on
    windows of one system each, must cut the future's loss below a fifth of the
    no-context loss."""
    learner = _build(ReBALConfig(**{**TINY, "dynamics": {"hidden": [32], "context": 8}}))
    gen = torch.Generator().manual_seed(0)

    def windows(n: int) -> tuple[Window, Window]:
        sign = torch.where(torch.rand(n, 1, 1, generator=gen) < 0.5, -1.0, 1.0)
        obs = torch.randn(n, 8, 3, generator=gen)
        act = torch.randn(n, 8, 1, generator=gen)
        nxt = obs + sign * act
        ones = torch.ones(n, 4, dtype=torch.bool)
        return (Window(obs[:, :4], act[:, :4], nxt[:, :4], ones),
                Window(obs[:, 4:], act[:, 4:], nxt[:, 4:], ones))
    past, future = windows(256)
    learner.model.fit_normalizer(past.obs, past.action, past.next_obs)
    optimizer = torch.optim.Adam(learner.model.parameters(), lr=1e-2)
    for _ in range(300):
        loss, _ = learner.meta_loss(named_params(learner.model), *windows(64))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after, before = learner.meta_loss(named_params(learner.model), past, future)
    assert before > 0.5  # no context: the sign is a coin flip
    assert float(after.detach()) < 0.2 * before, (float(after.detach()), before)


def test_agent_reads_its_context_from_the_last_m_transitions() -> None:
    learner = _build(ReBALConfig(**{**TINY, "test_past": 5}))
    learner.meta_update(_tasks())
    agent = learner.agent()
    assert agent.adapt and agent.memory == 5
    tasks = _tasks(5, 2, "test")
    contexts: list[torch.Tensor] = []
    actor = agent.actor(tasks)
    original = actor.dynamics

    def spy(window: Window | None, slots: int) -> Any:
        params = adapt(agent.model, agent.params, window, slots, agent.inner, False)
        contexts.append(params[CONTEXT])
        return original(window, slots)
    object.__setattr__(actor, "dynamics", spy)
    object.__setattr__(agent, "actor", lambda t: actor)
    curves = adaptation_curves(_family(), agent, tasks, 0, 1, seed=0,
                               device=torch.device("cpu"))
    assert curves["return"].shape == (1, 2) and len(contexts) == 12
    assert torch.equal(contexts[0], torch.zeros(2, 6))  # the first step: nothing seen
    assert all(not torch.allclose(c, contexts[0]) for c in contexts[1:])
    # not adapting at test: the zero context at every step
    plain = ReBALConfig(**{**TINY, "adapt_at_test": False})
    still = _build(plain).agent()
    assert not still.adapt
    window = Window.empty(2, 4, torch.zeros(2, 3), torch.zeros(2, 1))
    window = window.push(torch.ones(2, 3), torch.ones(2, 1), torch.ones(2, 3),
                         torch.ones(2, dtype=torch.bool))
    fn = still.actor(tasks).dynamics(window, 2)
    s, a = torch.randn(2, 7, 3), torch.randn(2, 7, 1)
    expected = still.model.predict(s, a, {**still.params, CONTEXT: torch.zeros(2, 6)})
    assert torch.equal(fn(s, a), expected)


def test_spec_config_and_baselines_are_grbals_model_without_the_context() -> None:
    spec = algorithm_spec("rebal")
    assert spec.baselines == ("mb", "mb_finetune", "mpc_oracle")
    with pytest.raises(ValueError, match="algorithm.dynamics.context"):
        ReBALConfig(**{**TINY, "dynamics": {"hidden": [16]}})
    cfg = ReBALConfig(**TINY)
    mb, finetune = baseline_config("mb", cfg), baseline_config("mb_finetune", cfg)
    assert isinstance(mb, GrBALConfig) and isinstance(finetune, GrBALConfig)
    for c in (mb, finetune):
        assert type(c) is GrBALConfig and c.name == "grbal" and c.dynamics.context == 0
        assert c.inner.steps == 0 and c.dynamics.hidden == [16]
    assert finetune.adapt_at_test and finetune.test_inner == cfg.inner
    assert not mb.adapt_at_test
