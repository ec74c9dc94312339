"""Action-value networks for value-based learners (DQN and its meta-learned variants).

:class:`QNetwork` maps an observation to one value per discrete action, ``Q(s, .)``
``[..., actions]``. Like the policies of :mod:`adaptrl.models.policies` it is called with
an explicit parameter dict, and a parameter may carry a leading *task* dimension: with
per-task parameters ``[tasks, ...]`` and observations ``[tasks, ...]`` one batched call
evaluates every task's own Q-network (:mod:`adaptrl.models.functional`), which is how a
DQN learner runs a batch of tasks without a Python loop over them.

Two heads:

* plain (Mnih et al. 2015, "Human-level control through deep reinforcement learning"):
  the MLP's last layer outputs ``Q(s, a)`` directly;
* dueling (Wang et al. 2016, "Dueling network architectures for deep reinforcement
  learning", eq. 9): the last hidden layer feeds a value head ``V(s)`` and an advantage
  head ``A(s, a)``, aggregated as ``Q = V + A - mean_a A``, so that ``V`` is identifiable
  (``mean_a Q(s, a) = V(s)``).

Conditioning (``eta_dim > 0``): the network also takes a vector ``eta`` of ``eta_dim``
hyperparameters as an input, appended to the observation, so that ``Q(s, .; eta)`` can
follow a hyperparameter that changes during learning (the discount of meta-gradient RL:
Xu, van Hasselt, Silver 2018, whose value function and policy take eta as an input so
that their estimates do not drift out of date as eta moves). The first layer's weights on
``eta`` are a learned linear embedding of it added to the observation's.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import nn

from adaptrl.models.functional import MLP, Params, activation, linear, named_params
from adaptrl.models.policies import space_dims


class QNetwork(nn.Module):
    """An MLP Q-network over ``num_actions`` actions, optionally dueling (see module doc).

    ``init``: ``"xavier"`` (Glorot-uniform weights, zero biases: adaptrl's MLP) or
    ``"torch"`` (``nn.Linear``'s own initialisation, uniform in ``+-1/sqrt(fan_in)`` for
    weights and biases: what CleanRL's ``dqn.py`` uses).

    Parameter names: ``body.layers.{i}.{weight,bias}`` for the MLP (its output is ``Q``
    for a plain network, the last hidden features for a dueling one) and, when dueling,
    ``value.{weight,bias}`` and ``advantage.{weight,bias}``.
    """

    def __init__(self, obs_dim: int, num_actions: int, hidden: tuple[int, ...] = (120, 84),
                 act: str = "relu", dueling: bool = False, init: str = "xavier",
                 eta_dim: int = 0) -> None:
        super().__init__()
        if dueling and not hidden:
            raise ValueError("a dueling Q-network needs at least one hidden layer")
        if eta_dim < 0:
            raise ValueError(f"eta_dim must be >= 0, got {eta_dim}")
        self.num_actions = num_actions
        self.dueling = dueling
        self.eta_dim = eta_dim
        self._act = activation(act)
        in_dim = obs_dim + eta_dim
        if dueling:
            self.body = MLP(in_dim, hidden[-1], hidden[:-1], act)
            self.value = nn.Linear(hidden[-1], 1)
            self.advantage = nn.Linear(hidden[-1], num_actions)
        else:
            self.body = MLP(in_dim, num_actions, hidden, act)
        if init == "torch":
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    module.reset_parameters()
        elif init != "xavier":
            raise ValueError(f"init must be 'xavier' or 'torch', got {init!r}")

    def forward(self, obs: torch.Tensor, params: Params | None = None,
                eta: torch.Tensor | None = None) -> torch.Tensor:
        """``Q(obs, .)`` ``[..., actions]``; per-task ``params`` need ``obs [tasks, ...]``.

        ``eta``: the conditioning input of a network with ``eta_dim > 0`` (required there,
        refused otherwise), ``[eta_dim]`` for every row or ``[tasks, eta_dim]`` per task
        (broadcast over the observation's other leading dims)."""
        p = named_params(self) if params is None else params
        if (eta is None) != (self.eta_dim == 0):
            raise ValueError(f"this Q-network has eta_dim = {self.eta_dim}: "
                             + ("pass eta" if eta is None else "it takes no eta"))
        if eta is not None:
            obs = torch.cat([obs, _broadcast_eta(eta, obs)], dim=-1)
        x = self.body(obs, p, prefix="body.")
        if not self.dueling:
            return x
        x = self._act(x)
        value = linear(x, p["value.weight"], p["value.bias"])
        adv = linear(x, p["advantage.weight"], p["advantage.bias"])
        return value + adv - adv.mean(-1, keepdim=True)


def _broadcast_eta(eta: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
    """``eta`` ``[d]`` or ``[tasks, d]`` expanded to ``obs``'s leading dims ``[..., d]``."""
    d = eta.shape[-1]
    if eta.dim() == 2:
        eta = eta.view(eta.shape[0], *([1] * (obs.dim() - 2)), d)
    return eta.to(obs.dtype).expand(*obs.shape[:-1], d)


def make_q_network(observation_space: gym.Space, action_space: gym.Space,
                   hidden: tuple[int, ...] = (120, 84), act: str = "relu",
                   dueling: bool = False, init: str = "xavier", eta_dim: int = 0) -> QNetwork:
    """The Q-network for the spaces; the action space must be ``Discrete``."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ValueError(f"a Q-network needs a Discrete action space, got {action_space}")
    return QNetwork(space_dims(observation_space), int(action_space.n), hidden, act, dueling,
                    init, eta_dim)
