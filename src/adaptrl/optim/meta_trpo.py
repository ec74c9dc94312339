"""TRPO through an inner loop: MAML-TRPO's outer step (Finn et al. 2017, §3.2 and App. A.2).

The surrogate ``L(theta) = sum_i L_Ti(phi_i(theta); D'_i)`` and its KL are functions of
the meta-parameters *through* the inner adaptation ``phi(theta)``, which the caller
replays on the recorded support episodes (:class:`Replay`). TRPO's metric is the Hessian
of the mean KL through that adaptation, applied one of two ways:

* the cheap, exact pull-back ``J^T F J`` (:func:`adaptrl.optim.fisher.pullback_metric`):
  at theta_old the KL and its gradient in ``phi`` vanish, so the Hessian in theta is
  ``F_phi`` pulled back through the inner steps' Jacobians ``J_k`` (Hessian-vector
  products of the inner loss, no third derivatives). It needs those Jacobians
  (:class:`InnerJacobians`) and covers theta only, so the caller offers it when the
  inner optimizer has a cheap Jacobian and no meta-parameters of its own (MAML, FOMAML);
* otherwise the Hessian of a KL through the replayed inner loop by autograd
  (:meth:`MetaTRPO.subsample_kl`), which also covers learned step sizes, transforms and
  stateful inner optimizers (Meta-SGD, Meta-Curvature, an Adam inner loop).

Both are estimated on the first ``m = trpo.fisher_fraction x episodes`` episodes of every
task (a uniform subsample, as episodes are i.i.d.; Schulman 2016 uses 10%); the gradient
and the line search always use all the data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn
from torch.distributions import Distribution

from adaptrl.models.functional import Params, named_params
from adaptrl.models.policies import MLPPolicy
from adaptrl.optim.fisher import KLHessian, LinearStep, flat_product, pullback_metric
from adaptrl.optim.trpo import TRPOConfig, trpo_step
from adaptrl.rollouts.losses import detached, importance_loss, mean_kl
from adaptrl.rollouts.sampler import trajectory_distribution
from adaptrl.rollouts.trajectories import Trajectories

Support = tuple[Trajectories, torch.Tensor]
"""Support episodes of one inner step and the inner objective's data for them."""


class Replay(Protocol):
    """``phi(theta)`` at the current meta-parameters: the inner steps replayed on
    ``supports``, keeping the graph to the meta-parameters if ``differentiable``."""

    def __call__(self, supports: list[Support], differentiable: bool) -> Params: ...


class InnerJacobians(Protocol):
    """The Jacobians ``J_1..J_K`` of the recorded inner steps, taken at the points the
    sampled inner loop passed through, on ``supports`` (a subsample of the recorded support
    batches), or on the recorded batches themselves (``None``)."""

    def __call__(self, supports: list[Support] | None) -> Sequence[LinearStep]: ...


@dataclass(frozen=True)
class MetaTRPO:
    """TRPO on the outer surrogate of a policy adapted by an inner loop."""

    policy: MLPPolicy
    config: TRPOConfig
    episodes_per_task: int

    def step(self, parameters: list[nn.Parameter], replay: Replay, supports: list[Support],
             query: Trajectories, q_adv: torch.Tensor, dist: Distribution, loss: torch.Tensor,
             phi_old: Params, jacobians: InnerJacobians | None) -> dict[str, float]:
        """One TRPO update of ``parameters`` in place; returns its diagnostics.

        ``dist`` and ``loss`` are the query's policy and mean surrogate at theta_old,
        computed through the inner steps taken while sampling (their graph is reused);
        ``phi_old`` are the adapted parameters there (detached). With ``jacobians`` the
        metric is the pulled-back ``J^T F J``, else the autograd Hessian of
        :meth:`subsample_kl`.
        """
        old_dist = detached(dist)

        def surrogate(differentiable: bool) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.enable_grad():
                phi = replay(supports, differentiable)
            with torch.set_grad_enabled(differentiable):
                new = trajectory_distribution(self.policy, query, phi)
                loss = importance_loss(new, query, q_adv).mean()
                kl = mean_kl(old_dist, new, query.masks).mean()
            return loss, kl

        if jacobians is not None:
            metric = self.pulled_back_metric(supports, query, phi_old, old_dist, jacobians)
            return trpo_step(parameters, surrogate, self.config, loss=loss,
                             fisher_product=metric)
        return trpo_step(parameters, surrogate, self.config, loss=loss,
                         fisher_kl=lambda: self.subsample_kl(replay, supports, query))

    def metric_episodes(self) -> slice | None:
        """The episodes (the first ``m`` of every task) the metric is estimated on, ``None``
        for all of them."""
        e = self.episodes_per_task
        m = max(1, round(self.config.fisher_fraction * e))
        return slice(0, m) if m < e else None

    def metric_data(self, supports: list[Support], query: Trajectories
                    ) -> tuple[list[Support], Trajectories, bool]:
        """The support and query episodes the metric is estimated on, and whether they are
        a subsample."""
        sub = self.metric_episodes()
        if sub is None:
            return supports, query, False
        return ([(traj.select_episodes(sub), data[:, :, sub]) for traj, data in supports],
                query.select_episodes(sub), True)

    def subsample_kl(self, replay: Replay, supports: list[Support],
                     query: Trajectories) -> torch.Tensor:
        """A KL whose Hessian at the current meta-parameters is the metric through the inner
        loop: the inner steps replayed on the metric's support episodes, then
        ``KL(pi_phi_old || pi_phi)`` on its query episodes; zero, with a zero gradient, at
        the current point, as a trust-region metric must be."""
        supports, query, _ = self.metric_data(supports, query)
        with torch.enable_grad():
            phi = replay(supports, True)
            dist = trajectory_distribution(self.policy, query, phi)
            return mean_kl(detached(dist), dist, query.masks).mean()

    def pulled_back_metric(self, supports: list[Support], query: Trajectories,
                           phi_old: Params, old_dist: Distribution, jacobians: InnerJacobians
                           ) -> Callable[[torch.Tensor], torch.Tensor]:
        """``v -> J^T F J v`` on flat vectors, at theta_old: ``F`` the Fisher of the adapted
        policies on the metric's query episodes at ``phi_old``, ``J`` the inner steps'
        Jacobians on its support episodes, taken at the same points as the full inner steps
        (identity for first-order steps)."""
        supports, query, subsampled = self.metric_data(supports, query)
        steps = jacobians(supports if subsampled else None)
        if subsampled:
            with torch.no_grad():
                old_dist = trajectory_distribution(self.policy, query, phi_old)
        leaf = {k: v.detach().requires_grad_(True) for k, v in phi_old.items()}
        with torch.enable_grad():
            kl = mean_kl(old_dist, trajectory_distribution(self.policy, query, leaf),
                         query.masks)
            fisher = KLHessian(kl.mean(), leaf)
        theta = named_params(self.policy)
        product = pullback_metric(fisher, steps, query.num_tasks if supports else None)
        return flat_product(product, theta)
