"""Policies: per-task batched parameters, time-major inputs, log-probabilities, sampling."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from adaptrl.models.functional import Params, fast_tanh, named_params
from adaptrl.models.policies import CategoricalMLPPolicy, GaussianMLPPolicy


def per_task_params(policy: torch.nn.Module, n: int, seed: int = 0) -> Params:
    """Different parameters for each of ``n`` tasks (the policy's own, perturbed)."""
    g = torch.Generator().manual_seed(seed)
    return {k: v.detach() + 0.3 * torch.randn(n, *v.shape, generator=g)
            for k, v in named_params(policy).items()}


Build = Callable[[], GaussianMLPPolicy | CategoricalMLPPolicy]
POLICIES: list[Build] = [lambda: GaussianMLPPolicy(3, 2, hidden=(16, 8), activation="tanh"),
                         lambda: GaussianMLPPolicy(3, 2, hidden=(16,), activation="relu"),
                         lambda: CategoricalMLPPolicy(3, 4, hidden=(8, 8))]


def summary(dist: torch.distributions.Distribution) -> torch.Tensor:
    """The distribution's parameters as one tensor (mean and std, or probabilities)."""
    if isinstance(dist, torch.distributions.Categorical):
        return dist.probs
    base = dist.base_dist  # type: ignore[attr-defined]
    return torch.cat([base.loc, base.scale.expand_as(base.loc)], -1)


@pytest.mark.parametrize("build", POLICIES)
def test_batched_params_equal_looping_over_tasks(build: Build) -> None:
    torch.manual_seed(0)
    policy = build()
    n, e = 4, 5
    params = per_task_params(policy, n)
    obs = torch.randn(n, e, 3)
    batched = summary(policy.distribution(obs, params))
    for i in range(n):
        alone = summary(policy.distribution(obs[i], {k: v[i] for k, v in params.items()}))
        torch.testing.assert_close(batched[i], alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("build", POLICIES)
def test_task_dim_one_equals_task_dim_zero_after_moving_dims(build: Build) -> None:
    torch.manual_seed(1)
    policy = build()
    T, n, e = 6, 3, 2
    params = per_task_params(policy, n, seed=1)
    obs = torch.randn(T, n, e, 3)
    time_major = summary(policy.distribution(obs, params, task_dim=1))
    task_major = summary(policy.distribution(obs.movedim(1, 0), params, task_dim=0))
    torch.testing.assert_close(time_major, task_major.movedim(0, 1))


def test_gaussian_log_prob_known_answer() -> None:
    policy = GaussianMLPPolicy(1, 2, hidden=(4,))
    with torch.no_grad():
        policy.log_std.fill_(math.log(2.0))
        for layer in policy.mean.layers:
            layer.weight.zero_()
            layer.bias.zero_()
    dist = policy.distribution(torch.zeros(1, 1))  # mean 0, std 2 in both dimensions
    # sum over dims of -a^2 / (2 std^2) - log std - log(2 pi) / 2
    expected = -(1.0 + 9.0) / 8 - 2 * math.log(2.0) - math.log(2 * math.pi)
    got = dist.log_prob(torch.tensor([[1.0, -3.0]]))
    torch.testing.assert_close(got, torch.tensor([expected]))


@pytest.mark.parametrize("build", POLICIES)
def test_act_samples_like_sample_and_returns_the_log_prob(build: Build) -> None:
    torch.manual_seed(2)
    policy = build()
    params = per_task_params(policy, 3, seed=2)
    obs = torch.randn(3, 7, 3)
    with torch.no_grad():
        action, log_prob = policy.act(obs, params, torch.Generator().manual_seed(5))
        dist = policy.distribution(obs, params)
        reference = policy.sample(dist, torch.Generator().manual_seed(5))
    torch.testing.assert_close(action, reference)
    torch.testing.assert_close(log_prob, dist.log_prob(action), rtol=1e-5, atol=1e-5)
    greedy, greedy_lp = policy.act(obs, params, torch.Generator(), deterministic=True)
    expected = dist.probs.argmax(-1) if hasattr(dist, "probs") else dist.mean
    torch.testing.assert_close(greedy, expected)
    torch.testing.assert_close(greedy_lp, dist.log_prob(greedy), rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch-internal jit use in forward AD
def test_fast_tanh_is_tanh_with_exact_derivatives() -> None:
    x = torch.linspace(-30, 30, 2001, dtype=torch.float64)
    torch.testing.assert_close(fast_tanh(x), torch.tanh(x), rtol=0, atol=1e-15)
    x32 = x.float()
    torch.testing.assert_close(fast_tanh(x32), torch.tanh(x32), rtol=0, atol=3e-7)
    small = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fast_tanh, (small,))
    assert torch.autograd.gradgradcheck(fast_tanh, (small,))
    assert torch.autograd.gradcheck(fast_tanh, (small,), check_forward_ad=True)
    tangent = torch.ones_like(small)
    _, jvp = torch.func.jvp(fast_tanh, (small,), (tangent,))
    torch.testing.assert_close(jvp, 1 - torch.tanh(small) ** 2)
    torch.testing.assert_close(torch.func.vmap(fast_tanh)(small), torch.tanh(small))
