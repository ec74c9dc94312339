"""Dynamics models: an MLP that predicts the normalised state change, called functionally.

The model of GrBAL (Nagabandi et al. 2019, §5; and of Nagabandi et al. 2018, §IV-A):
``s' = s + delta_mean + delta_std * f_theta((s - obs_mean) / obs_std, (a - act_mean) / act_std)``,
fitted by the mean squared error of ``f_theta`` against the normalised change
``((s' - s) - delta_mean) / delta_std``. The normalisation statistics are fitted on data
(:meth:`DynamicsModel.fit_normalizer`) and kept as buffers, so they are checkpointed with
the weights but are not parameters: an inner step never moves them. Discrete actions enter
one-hot.

Like the policies, the model is called with an explicit parameter dict; a leading task
dimension on the parameters (per-task adapted models) makes one batched call serve every
task (:mod:`adaptrl.models.functional`). Options:

* ``gaussian`` — the head also predicts a log standard deviation per output and the loss
  is the Gaussian negative log-likelihood (PETS, Chua et al. 2018, eq. 1); predictions use
  the mean;
* ``ensemble`` — ``E`` independently initialised members trained on the same batches (no
  bootstrap resampling), whose losses add and whose mean predictions are averaged;
* ``context`` — ReBAL's recurrent model (Nagabandi, Clavera et al. 2019, §4: the update
  rule is a recurrent network): a GRU reads the last M transitions ``(s, a, s' - s)``,
  normalised, oldest first, and its final hidden state ``h`` (``context`` wide; ``0`` for no
  transitions) is a further input of every member, ``f_theta(s, a, h)``. Adapting to a task
  is computing ``h`` (:meth:`DynamicsModel.encode`); the weights stay. The context travels in
  the parameter dict under :data:`CONTEXT`, so a per-slot context is a per-slot model to
  the planner like GrBAL's per-slot weights. (The paper's recurrent model is an LSTM of 256
  units, REFERENCES.md; a GRU, the code base's recurrent cell as in RL², of ``context``
  units for these low-dimensional systems, like the 64 x 64 model.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from adaptrl.models.functional import MLP, Params, named_params
from adaptrl.models.recurrent import sub_params

CONTEXT = "context"
"""The key of a recurrent model's context ``[N, context]`` in a parameter dict."""

LOG_STD_RANGE = (-10.0, 2.0)
"""Bounds of a Gaussian head's predicted log standard deviation (normalised units)."""


class DynamicsModel(nn.Module):
    """``E`` MLPs predicting the normalised state change from ``(s, a)`` (module docstring).

    ``obs_dim``: the observation's size; ``action_dim``: a Box action's size, or with
    ``choices`` the number of discrete actions (actions are then indices ``[...]``).
    """

    def __init__(self, obs_dim: int, action_dim: int = 0, choices: int | None = None,
                 hidden: tuple[int, ...] = (200, 200), activation: str = "relu",
                 gaussian: bool = False, ensemble: int = 1, context: int = 0) -> None:
        super().__init__()
        if (choices is None) == (action_dim == 0):
            raise ValueError("give either action_dim (a Box action) or choices (discrete)")
        if ensemble < 1:
            raise ValueError(f"ensemble must be >= 1, got {ensemble}")
        if context < 0:
            raise ValueError(f"context must be >= 0 (0: no recurrent context), got {context}")
        self.obs_dim, self.choices = obs_dim, choices
        self.action_features = choices if choices is not None else action_dim
        self.gaussian, self.context = gaussian, context
        out = obs_dim * (2 if gaussian else 1)
        self.members = nn.ModuleList(MLP(obs_dim + self.action_features + context, out,
                                         tuple(hidden), activation) for _ in range(ensemble))
        if context:
            self.encoder = nn.GRU(2 * obs_dim + self.action_features, context, batch_first=True)
        for name, size in (("obs", obs_dim), ("act", self.action_features),
                           ("delta", obs_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(size))
            self.register_buffer(f"{name}_std", torch.ones(size))

    # -- normalisation --
    def action_input(self, action: torch.Tensor) -> torch.Tensor:
        """Actions as float features: one-hot for discrete ones."""
        if self.choices is not None:
            return F.one_hot(action.long(), self.choices).to(self.obs_mean.dtype)
        return action.to(self.obs_mean.dtype)

    @torch.no_grad()
    def fit_normalizer(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor,
                       min_std: float = 1e-6) -> None:
        """Set the input and output statistics from transitions (any leading dims): the
        mean and standard deviation of ``s``, ``a`` and ``s' - s``. A discrete action's
        one-hot features are left unnormalised."""
        def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            flat = x.reshape(-1, x.shape[-1]).to(self.obs_mean.dtype)
            return flat.mean(0), flat.std(0, unbiased=False).clamp(min=min_std)
        self.obs_mean, self.obs_std = stats(obs)
        self.delta_mean, self.delta_std = stats(next_obs - obs)
        if self.choices is None:
            self.act_mean, self.act_std = stats(self.action_input(action))

    def _state_action(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        o = (obs.to(self.obs_mean.dtype) - self.obs_mean) / self.obs_std
        a = (self.action_input(action) - self.act_mean) / self.act_std
        return torch.cat([o, a], dim=-1)

    def _inputs(self, obs: torch.Tensor, action: torch.Tensor,
                context: torch.Tensor | None = None) -> torch.Tensor:
        x = self._state_action(obs, action)
        if not self.context:
            return x
        if context is None:
            raise ValueError(f"a recurrent model needs its context (params[{CONTEXT!r}], "
                             "from DynamicsModel.encode)")
        h = context.reshape(context.shape[0], *([1] * (x.dim() - 2)), self.context)
        return torch.cat([x, h.expand(*x.shape[:-1], self.context).to(x.dtype)], dim=-1)

    def encode(self, params: Params | None, obs: torch.Tensor, action: torch.Tensor,
               next_obs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """ReBAL's adaptation: the GRU's hidden state ``[N, context]`` after reading each
        row's transitions ``[N, M, ...]`` oldest first (zeros where none is filled).
        ``mask [N, M]`` must mark a suffix of each row (the last ``min(seen, M)``, as
        :class:`~adaptrl.planning.controller.Window` fills); the filled rows are moved to
        the front and the state is read after the last of them, so the unfilled ones are
        never read. ``params`` (default: the model's own) may carry ``encoder.*``."""
        if not self.context:
            raise ValueError("encode needs a model with a recurrent context (context > 0)")
        n, m = obs.shape[:2]
        x = torch.cat([self._state_action(obs, action), self.normalised_target(obs, next_obs)],
                      dim=-1)
        filled = (torch.full((n,), m, device=obs.device) if mask is None
                  else mask.sum(-1))
        order = torch.arange(m, device=obs.device)
        if mask is not None and not torch.equal(mask, order >= (m - filled)[:, None]):
            raise ValueError("encode reads windows whose filled rows are the last ones")
        index = (order + (m - filled)[:, None]) % m  # the filled rows first, in order
        x = x.gather(1, index[..., None].expand_as(x))
        enc = sub_params(params, "encoder.")
        out, _ = (self.encoder(x) if enc is None
                  else functional_call(self.encoder, enc, (x,)))  # [N, M, context]
        last = out.gather(1, (filled - 1).clamp(min=0).reshape(n, 1, 1).expand(
            n, 1, self.context))[:, 0]
        return torch.where((filled > 0)[:, None], last, torch.zeros_like(last))

    def normalised_target(self, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """``((s' - s) - delta_mean) / delta_std``: what the network regresses."""
        delta = (next_obs - obs).to(self.obs_mean.dtype)
        return (delta - self.delta_mean) / self.delta_std

    # -- functional calls --
    def outputs(self, obs: torch.Tensor, action: torch.Tensor, params: Params | None = None
                ) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Per member: the normalised mean change and (Gaussian head) its log std.

        ``obs [..., obs_dim]``, ``action [..., act]`` (or ``[...]`` indices); with per-task
        ``params`` (leading dim ``n``) the inputs' first dim is the task."""
        p = named_params(self) if params is None else params
        x = self._inputs(obs, action, p.get(CONTEXT))
        out = []
        for e, member in enumerate(self.members):
            y = member(x, p, prefix=f"members.{e}.")
            if self.gaussian:
                mean, log_std = y.split(self.obs_dim, dim=-1)
                out.append((mean, log_std.clamp(*LOG_STD_RANGE)))
            else:
                out.append((y, None))
        return out

    def predict(self, obs: torch.Tensor, action: torch.Tensor, params: Params | None = None
                ) -> torch.Tensor:
        """The predicted next observation (mean over members), in ``obs``'s dtype."""
        means = torch.stack([m for m, _ in self.outputs(obs, action, params)]).mean(0)
        return (obs.to(means.dtype) + self.delta_mean + self.delta_std * means).to(obs.dtype)

    def loss(self, params: Params | None, obs: torch.Tensor, action: torch.Tensor,
             next_obs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-task loss ``[n]`` on transitions ``[n, N, ...]``: the mean over rows (those
        with ``mask [n, N]`` set) of the squared error of the normalised change, summed over
        its dims, or its Gaussian negative log-likelihood; summed over ensemble members."""
        target = self.normalised_target(obs, next_obs)
        total = torch.zeros(target.shape[0], dtype=target.dtype, device=target.device)
        for mean, log_std in self.outputs(obs, action, params):
            if log_std is None:
                per_row = (mean - target).square().sum(-1)
            else:
                z = (mean - target) * torch.exp(-log_std)
                per_row = (0.5 * z.square() + log_std).sum(-1)
            per_row = per_row.reshape(per_row.shape[0], -1)
            if mask is None:
                total = total + per_row.mean(-1)
            else:
                m = mask.reshape(per_row.shape).to(per_row.dtype)
                total = total + (per_row * m).sum(-1) / m.sum(-1).clamp(min=1.0)
        return total
