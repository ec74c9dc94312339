"""Known answers of the MPC planners (planning/mpc.py): each finds the optimum of a
linear-quadratic control problem (checked against the finite-horizon Riccati solution,
batched over tasks with different dynamics) and of a small discrete problem (checked
against enumeration); plans are deterministic under a seed."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch

from adaptrl.planning.mpc import (
    ActionDomain,
    PlannerSettings,
    cem,
    mppi,
    predicted_returns,
    random_shooting,
    shift_warm_start,
)

H = 5
Q = torch.eye(2)
R = 0.1


def lq_problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three tasks: a double integrator with per-task input gain; ``A [2, 2]``,
    ``B [n, 2, 1]``, start states ``s0 [n, 2]``."""
    A = torch.tensor([[1.0, 0.1], [0.0, 1.0]])
    gains = torch.tensor([0.1, 0.2, 0.05])
    B = torch.zeros(3, 2, 1)
    B[:, 1, 0] = gains
    s0 = torch.tensor([[1.0, 0.0], [-0.5, 0.5], [0.3, -1.0]])
    return A, B, s0


def lq_functions(A: torch.Tensor, B: torch.Tensor):
    def dynamics(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:  # [n, C, 2], [n, C, 1]
        return s @ A.T + torch.einsum("nij,ncj->nci", B, a)

    def reward(s: torch.Tensor, a: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        return -((s @ Q * s).sum(-1) + R * a.square().sum(-1))
    return dynamics, reward


def riccati(A: torch.Tensor, B: torch.Tensor, s0: torch.Tensor, horizon: int = H
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimal return ``-s0' P0 s0`` and first action ``-K0 s0`` per task (float64) of the
    ``horizon``-step problem (backward Riccati recursion, no terminal cost)."""
    values, firsts = [], []
    for b, s in zip(B.double(), s0.double()):
        a64 = A.double()
        P = torch.zeros(2, 2, dtype=torch.float64)
        K = torch.zeros(1, 2, dtype=torch.float64)
        for _ in range(horizon):
            K = torch.linalg.solve(R + b.T @ P @ b, b.T @ P @ a64)
            P = Q.double() + a64.T @ P @ (a64 - b @ K)
        values.append(-(s @ P @ s))
        firsts.append(-(K @ s))
    return torch.stack(values), torch.stack(firsts)


BOX = ActionDomain(torch.tensor([-8.0]), torch.tensor([8.0]))


def test_riccati_reference_is_the_optimum_of_the_sequence_problem() -> None:
    """The reference itself: the Riccati value equals the closed-form least-squares optimum
    over the whole action sequence (the cost is a quadratic in the sequence)."""
    A, B, s0 = lq_problem()
    dynamics, reward = lq_functions(A, B)
    value, _ = riccati(A, B, s0)
    # cost(u) is quadratic: find its minimiser from values at 0, e_i and e_i + e_j
    n = s0.shape[0]

    def cost(u: torch.Tensor) -> torch.Tensor:  # u [n, H]
        return -predicted_returns(s0.double(), u.double().reshape(n, 1, H, 1),
                                  lambda s, a: s @ A.double().T + torch.einsum(
                                      "nij,ncj->nci", B.double(), a),
                                  lambda s, a, s2: -((s * s).sum(-1) + R * a.square().sum(-1))
                                  )[:, 0]
    eye = torch.eye(H, dtype=torch.float64)
    c0 = cost(torch.zeros(n, H))
    ci = torch.stack([cost(eye[i].expand(n, H)) for i in range(H)], -1)
    cij = torch.stack([torch.stack([cost((eye[i] + eye[j]).expand(n, H)) for j in range(H)],
                                   -1) for i in range(H)], -2)
    hess = cij - ci.unsqueeze(-1) - ci.unsqueeze(-2) + c0[:, None, None]  # = u' M u terms
    lin = ci - c0[:, None] - 0.5 * torch.diagonal(hess, dim1=-2, dim2=-1)
    u_star = -torch.linalg.solve(hess, lin)
    assert torch.allclose(-cost(u_star), value, rtol=1e-9)
    del dynamics, reward


@pytest.mark.parametrize("planner", ["random_shooting", "cem", "mppi"])
def test_planner_finds_the_lq_optimum(planner: str) -> None:
    A, B, s0 = lq_problem()
    dynamics, reward = lq_functions(A, B)
    horizon = 2 if planner == "random_shooting" else H
    value, first = riccati(A, B, s0, horizon)
    gen = torch.Generator().manual_seed(0)
    if planner == "random_shooting":  # uniform draws: near the optimum in a 2-d box
        plan = random_shooting(s0, dynamics, reward, BOX, gen, horizon=2, candidates=20000)
        rtol, atol = 2e-3, 0.15
    elif planner == "cem":
        plan = cem(s0, dynamics, reward, BOX, gen, horizon=H, candidates=500, iterations=15,
                   smoothing=0.1)
        rtol, atol = 1e-4, 0.02
    else:
        plan = mppi(s0, dynamics, reward, BOX, gen, horizon=H, candidates=1000,
                    iterations=20, temperature=0.01, noise=0.1)
        rtol, atol = 1e-2, 0.1  # a softmax-weighted mean: slightly off the optimum
    achieved = predicted_returns(s0, plan.actions.unsqueeze(1), dynamics, reward)[:, 0]
    assert torch.allclose(plan.value, achieved, rtol=1e-5)
    assert (achieved.double() <= value + 1e-6).all()  # nothing beats the optimum
    assert torch.allclose(achieved.double(), value, rtol=rtol), (achieved, value)
    assert torch.allclose(plan.actions[:, 0].double(), first, atol=atol), (plan.actions, first)


def discrete_problem() -> tuple[torch.Tensor, object, object]:
    """Walk on the integers: ``s' = s + a - 1``, ``a`` in {0, 1, 2}, reward ``-s'^2``."""
    s0 = torch.tensor([[3.0], [-2.0], [0.0]])

    def dynamics(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return s + (a.unsqueeze(-1) - 1).to(s.dtype)

    def reward(s: torch.Tensor, a: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        return -s2[..., 0].square()
    return s0, dynamics, reward


@pytest.mark.parametrize("planner", ["random_shooting", "cem"])
def test_discrete_planner_finds_the_enumerated_optimum(planner: str) -> None:
    s0, dynamics, reward = discrete_problem()
    horizon = 4
    every = torch.tensor(list(itertools.product(range(3), repeat=horizon)))  # [81, H]
    all_returns = predicted_returns(s0, every.expand(3, -1, -1), dynamics, reward)  # type: ignore[arg-type]
    best = all_returns.max(1).values  # [-(2^2 + 1 + 0 + 0), -(1 + 0 ...), 0]
    assert best.tolist() == [-5.0, -1.0, 0.0]
    domain = ActionDomain.of(gym.spaces.Discrete(3))
    gen = torch.Generator().manual_seed(0)
    settings = PlannerSettings(name=planner, horizon=horizon, candidates=200,
                               iterations=4)
    plan = settings.plan(s0, dynamics, reward, domain, gen)  # type: ignore[arg-type]
    assert plan.value.tolist() == best.tolist()
    assert plan.actions[:, 0].tolist() == [0, 2, 1]  # step toward 0 (stay at 0)


def test_mppi_refuses_discrete_actions() -> None:
    s0, dynamics, reward = discrete_problem()
    with pytest.raises(ValueError, match="mppi plans over Box"):
        mppi(s0, dynamics, reward, ActionDomain(choices=3),  # type: ignore[arg-type]
             torch.Generator().manual_seed(0))


@pytest.mark.parametrize("planner", ["random_shooting", "cem", "mppi"])
def test_plans_are_deterministic_under_a_seed(planner: str) -> None:
    A, B, s0 = lq_problem()
    dynamics, reward = lq_functions(A, B)
    settings = PlannerSettings(name=planner, horizon=H, candidates=64,
                               iterations=2)

    def run(seed: int) -> torch.Tensor:
        return settings.plan(s0, dynamics, reward, BOX, torch.Generator().manual_seed(seed)
                             ).actions
    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


def test_warm_start_shifts_by_one_step() -> None:
    mean = torch.arange(6.0).reshape(1, 3, 2)
    box = ActionDomain(torch.tensor([-1.0, 1.0]), torch.tensor([1.0, 3.0]))
    shifted = shift_warm_start(mean, box)
    assert shifted is not None
    assert shifted.tolist() == [[[2.0, 3.0], [4.0, 5.0], [0.0, 2.0]]]
    probs = torch.tensor([[[0.9, 0.1], [0.2, 0.8]]])
    out = shift_warm_start(probs, ActionDomain(choices=2))
    assert out is not None and torch.allclose(out, torch.tensor([[[0.2, 0.8], [0.5, 0.5]]]))


def test_terminal_stops_the_reward() -> None:
    s0 = torch.zeros(1, 1)
    seqs = torch.ones(1, 1, 5, 1)

    def dynamics(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return s + a

    def one(s: torch.Tensor, a: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        return torch.ones(s.shape[:-1])
    ret = predicted_returns(s0, seqs, dynamics, one, lambda s: s[..., 0] >= 3)
    assert ret.item() == 3.0  # steps to 1, 2, 3 (terminal, counted), then nothing


def test_domain_of_spaces_and_errors() -> None:
    box = ActionDomain.of(gym.spaces.Box(-2.0, 2.0, (1,), np.float32))
    assert box.shape == (1,) and not box.discrete
    assert ActionDomain.of(gym.spaces.Discrete(2)).choices == 2
    with pytest.raises(ValueError, match="Box or Discrete"):
        ActionDomain.of(gym.spaces.MultiBinary(3))
    with pytest.raises(ValueError, match="random_shooting"):
        PlannerSettings(name="ilqr")
    with pytest.raises(ValueError, match="horizon"):
        PlannerSettings(horizon=0)
