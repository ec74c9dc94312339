"""Policies: MLP Gaussian (continuous actions) and MLP categorical (discrete actions).

Each policy maps ``(observation, params)`` to a :class:`torch.distributions.Distribution`
whose ``log_prob`` is per-sample (summed over action dimensions). ``params`` is a dict as
returned by ``named_params(policy)``, optionally with a leading task dimension
(see :mod:`adaptrl.models.functional`).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import gymnasium as gym
import torch
from pydantic import Field
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from adaptrl.models.functional import MLP, Params, named_params
from adaptrl.randomness import categorical, randn
from adaptrl.schema import ConfigModel

_LOG_2PI = math.log(2 * math.pi)


def _per_task(x: torch.Tensor, like: torch.Tensor, task_dim: int) -> torch.Tensor:
    """Reshape a per-task vector ``[n, d]`` to broadcast against ``like`` (tasks at
    ``task_dim``)."""
    if x.dim() == 1:
        return x
    shape = [1] * like.dim()
    shape[task_dim], shape[-1] = x.shape[0], x.shape[-1]
    return x.reshape(shape)


class GaussianMLPPolicy(nn.Module):
    """Gaussian policy: MLP mean, learned state-independent log-std (MAML paper, App. A.2)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (100, 100),
                 activation: str = "relu", init_std: float = 1.0,
                 min_log_std: float = -6.0) -> None:
        super().__init__()
        self.mean = MLP(obs_dim, act_dim, hidden, activation, out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(torch.tensor(init_std).log())))
        self.min_log_std = min_log_std

    def mean_log_std(self, obs: torch.Tensor, params: Params | None = None,
                     task_dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian's mean ``[..., act]`` and log-std (broadcastable to the mean)."""
        p = named_params(self) if params is None else params
        mean = self.mean(obs, p, prefix="mean.", task_dim=task_dim)
        log_std = _per_task(p["log_std"], mean, task_dim).clamp_min(self.min_log_std)
        return mean, log_std

    def distribution(self, obs: torch.Tensor, params: Params | None = None,
                     task_dim: int = 0) -> Distribution:
        """``pi(.|obs)``; per-task ``params`` need the task dimension of ``obs`` at ``task_dim``."""
        mean, log_std = self.mean_log_std(obs, params, task_dim)
        return Independent(Normal(mean, log_std.exp(), validate_args=False), 1,
                           validate_args=False)

    def act(self, obs: torch.Tensor, params: Params | None, generator: torch.Generator,
            deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``a = mean + std * noise`` and its log-density in one pass (the sampler's
        hot path: no distribution object; draws the same noise as :meth:`sample`).

        ``log pi(a|s) = -|noise|^2 / 2 - sum(log std) - d/2 log(2 pi)``; deterministic
        acting returns the mean (noise 0).
        """
        mean, log_std = self.mean_log_std(obs, params)
        const = log_std.sum(-1) + 0.5 * mean.shape[-1] * _LOG_2PI
        if deterministic:
            return mean, (-const).expand(mean.shape[:-1])
        noise = randn(mean.shape, generator, mean.device, mean.dtype)
        action = torch.addcmul(mean, log_std.exp(), noise)
        return action, noise.square_().sum(-1).mul_(-0.5).sub_(const)

    @staticmethod
    def sample(dist: Distribution, generator: torch.Generator) -> torch.Tensor:
        base = dist.base_dist  # type: ignore[attr-defined]
        noise = randn(base.loc.shape, generator, base.loc.device, base.loc.dtype)
        return base.loc + base.scale * noise


class CategoricalMLPPolicy(nn.Module):
    """Categorical policy over ``n`` discrete actions with MLP logits."""

    def __init__(self, obs_dim: int, num_actions: int, hidden: tuple[int, ...] = (100, 100),
                 activation: str = "relu") -> None:
        super().__init__()
        self.logits = MLP(obs_dim, num_actions, hidden, activation, out_gain=0.01)

    def distribution(self, obs: torch.Tensor, params: Params | None = None,
                     task_dim: int = 0) -> Distribution:
        """``pi(.|obs)``; per-task ``params`` need the task dimension of ``obs`` at ``task_dim``."""
        p = named_params(self) if params is None else params
        logits = self.logits(obs, p, prefix="logits.", task_dim=task_dim)
        return Categorical(logits=logits, validate_args=False)

    def act(self, obs: torch.Tensor, params: Params | None, generator: torch.Generator,
            deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample an action (greedy if ``deterministic``) and its log-probability."""
        p = named_params(self) if params is None else params
        log_probs = torch.log_softmax(self.logits(obs, p, prefix="logits."), dim=-1)
        if deterministic:
            action = log_probs.argmax(-1)
        else:
            action = categorical(log_probs.exp(), generator)
        return action, log_probs.gather(-1, action.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def sample(dist: Distribution, generator: torch.Generator) -> torch.Tensor:
        return categorical(dist.probs, generator)  # type: ignore[attr-defined]


def space_dims(space: gym.Space) -> int:
    """Flat size of a Box, or the number of values of a Discrete space (one-hot input)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Box):
        return int(torch.tensor(space.shape).prod())
    raise ValueError(f"unsupported space {space}; allowed: Box, Discrete")


def make_policy(observation_space: gym.Space, action_space: gym.Space,
                hidden: tuple[int, ...] = (100, 100), activation: str = "relu",
                init_std: float = 1.0) -> GaussianMLPPolicy | CategoricalMLPPolicy:
    """The feed-forward policy that fits the spaces: Gaussian for Box, categorical for Discrete."""
    obs_dim = space_dims(observation_space)
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalMLPPolicy(obs_dim, int(action_space.n), hidden, activation)
    if isinstance(action_space, gym.spaces.Box):
        return GaussianMLPPolicy(obs_dim, space_dims(action_space), hidden, activation, init_std)
    raise ValueError(f"unsupported action space {action_space}; allowed: Box, Discrete")


LayerSizes = list[Annotated[int, Field(ge=1)]]
"""Hidden-layer sizes in a config: each at least 1 (an error names the offending index)."""


MLPPolicy = GaussianMLPPolicy | CategoricalMLPPolicy
"""A functional MLP policy of either action space (what :class:`PolicyConfig` builds)."""


class PolicyConfig(ConfigModel):
    """Feed-forward policy settings (default: the MAML paper's 2 x 100 ReLU)."""

    hidden: LayerSizes = Field(default_factory=lambda: [100, 100],
                               description="hidden layer sizes")
    activation: Literal["relu", "tanh", "elu", "gelu", "silu"] = "relu"
    init_std: float = Field(1.0, gt=0, description="initial std of a Gaussian policy")

    def build(self, observation_space: gym.Space, action_space: gym.Space) -> MLPPolicy:
        return make_policy(observation_space, action_space, tuple(self.hidden),
                           self.activation, self.init_std)
