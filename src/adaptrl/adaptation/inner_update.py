"""An inner update: an inner objective descended by an inner optimizer, batched over tasks.

Given parameters ``theta`` (shared, or already per-task) and support experience for
every task, one :meth:`InnerUpdate.step` computes each task's inner-loss gradient (one
backward pass of ``sum_i L_i``: the task losses are separable) and hands it to the
optimizer, ``epochs`` times on the same batch. Shared parameters are expanded to a
leading task dimension first, so the result is always per-task.

``create_graph`` keeps the step differentiable, so an outer loss can back-propagate
through it into theta and the optimizer's meta-parameters (second-order MAML, Finn et al.
2017, eq. 1; Meta-SGD, Li et al. 2017, eq. 2). ``first_order`` treats the inner gradient
as a constant (FOMAML): ``d phi / d theta = I`` (exactly, for any optimizer).
:meth:`InnerUpdate.step_with_jacobian` also returns each step's Jacobian (for the TRPO
metric ``J^T F J`` of MAML, :mod:`adaptrl.optim.meta_trpo`), where the optimizer has one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from adaptrl.adaptation.inner_optimizers import InnerOptimizer, InnerState, StepJacobian
from adaptrl.adaptation.objectives import InnerObjective
from adaptrl.models.functional import Params, detach_params, expand_params, is_batched
from adaptrl.models.policies import MLPPolicy
from adaptrl.rollouts.trajectories import Trajectories


@dataclass(frozen=True)
class InnerUpdate:
    """``epochs`` steps of ``optimizer`` on ``objective`` per support batch."""

    objective: InnerObjective
    optimizer: InnerOptimizer
    epochs: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")

    @property
    def policy(self) -> MLPPolicy:
        """The functional model whose parameters are adapted."""
        return self.objective.policy

    def prepare(self, traj: Trajectories) -> torch.Tensor:
        """The objective's parameter-independent data for ``traj`` (e.g. advantages)."""
        return self.objective.prepare(traj)

    def per_task(self, params: Params, num_tasks: int) -> Params:
        """``params`` with a leading task dimension (a view of shared ones)."""
        return params if is_batched(params, self.policy) else expand_params(params, num_tasks)

    def init(self, params: Params, num_tasks: int) -> InnerState:
        """The optimizer's state before the first step from ``params`` on ``num_tasks`` tasks."""
        return self.optimizer.init(self.per_task(params, num_tasks))

    def detached(self) -> InnerUpdate:
        """The same update with no graph to the optimizer's meta-parameters."""
        return replace(self, optimizer=self.optimizer.detached())

    def with_optimizer(self, optimizer: InnerOptimizer) -> InnerUpdate:
        return replace(self, optimizer=optimizer)

    def step(self, params: Params, traj: Trajectories, data: torch.Tensor, state: InnerState,
             *, first_order: bool, create_graph: bool = True) -> tuple[Params, InnerState]:
        """The update on one support batch: per-task parameters ``[tasks, ...]`` and the
        optimizer's state after it. ``create_graph`` is ignored (False) with ``first_order``."""
        for _ in range(self.epochs):
            params, state, _ = self._step(params, traj, data, state, first_order, create_graph)
        return params, state

    def step_with_jacobian(self, params: Params, traj: Trajectories, data: torch.Tensor,
                           state: InnerState, *, first_order: bool, create_graph: bool = True
                           ) -> tuple[Params, InnerState, list[StepJacobian] | None]:
        """:meth:`step`, also returning every epoch's Jacobian ``d phi / d params`` in order
        (``None`` if the optimizer has no cheap one). The Jacobians hold the graph of the
        inner gradients, so products with them are valid while the caller keeps it alive."""
        jacobians: list[StepJacobian] | None = []
        for _ in range(self.epochs):
            params, state, jac = self._step(params, traj, data, state, first_order,
                                            create_graph)
            jacobians = None if jacobians is None or jac is None else [*jacobians, jac]
        return params, state, jacobians

    def _step(self, params: Params, traj: Trajectories, data: torch.Tensor, state: InnerState,
              first_order: bool, create_graph: bool
              ) -> tuple[Params, InnerState, StepJacobian | None]:
        theta = self.per_task(params, traj.num_tasks)
        # plain (non-meta) adaptation of detached parameters: make them differentiable leaves
        theta = {k: v if v.requires_grad else v.detach().requires_grad_(True)
                 for k, v in theta.items()}
        keys = list(theta)
        need_graph = create_graph and not first_order
        with torch.enable_grad():
            losses = self.objective.loss(theta, traj, data)
            grads = torch.autograd.grad(losses.sum(), [theta[k] for k in keys],
                                        create_graph=need_graph)
        g = {k: v if need_graph else v.detach() for k, v in zip(keys, grads)}
        out, state = self.optimizer.step(theta, g, state)
        if not any(v.requires_grad for v in params.values()):
            out, state = detach_params(out), detach_params(state)
        jac = self.optimizer.step_jacobian(theta, g) if need_graph else StepJacobian(theta, None)
        return out, state, jac
