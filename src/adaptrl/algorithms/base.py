"""What every meta-learner offers the trainer and the evaluator.

A meta-learner owns its models and outer optimiser; the trainer calls
``meta_update(tasks)`` once per meta-iteration and checkpoints ``state_dict()``; the
evaluator asks for ``agent()``, the thing that adapts to a new task under the
evaluation protocol (by gradient steps, or within its memory for RL²).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from pydantic import Field
from torch import nn

from adaptrl.adaptation.inner_optimizers import InnerOptimizer, InnerState
from adaptrl.adaptation.inner_update import InnerUpdate
from adaptrl.agents.contract import AdaptationUnit, Agent
from adaptrl.models.functional import Params, detach_params
from adaptrl.models.policies import MLPPolicy
from adaptrl.rollouts.trajectories import Trajectories, pack_live_steps
from adaptrl.schema import ConfigModel
from adaptrl.tasks.base import Tasks


@dataclass
class GradientAgent:
    """An initialisation plus an inner update: adapts by gradient steps.

    ``schedule[k]`` is the inner optimizer of adaptation step ``k`` (the last one repeats),
    e.g. SGD with the MAML paper's meta-test step sizes ``[0.1, 0.05]``, or the one learned
    optimizer of Meta-SGD. The optimizer's per-task state (Adam's moments) is carried from
    one step to the next and starts afresh at step 0 (a new batch of tasks).
    """

    policy: MLPPolicy
    params: Params
    update: InnerUpdate
    schedule: list[InnerOptimizer]
    unit: AdaptationUnit = AdaptationUnit.GRADIENT_STEPS
    _state: InnerState | None = field(default=None, init=False, repr=False)

    def initial_params(self) -> Params:
        return detach_params(self.params)

    def adapt(self, params: Params, support: Trajectories, step: int) -> Params:
        """Adapted per-task parameters after one more inner step on ``support``."""
        update = self.update.with_optimizer(self.schedule[min(step, len(self.schedule) - 1)])
        if step == 0 or self._state is None:
            self._state = update.init(params, support.num_tasks)
        data = update.prepare(support)
        if float(support.masks.mean()) < 0.5:
            # mostly padding (a step-counted batch of many short episodes): the inner loss
            # is a mean over live steps, so pack them and leave the padding out of the
            # gradient's memory and compute
            support, data = pack_live_steps(support, data)
        new, self._state = update.step(params, support, data, self._state, first_order=True,
                                       create_graph=False)
        return detach_params(new)


class AlgorithmConfig(ConfigModel):
    """The fields every algorithm's config has; the trainer reads only these.

    Each algorithm's config subclasses it, narrowing ``name`` to its registered name.
    """

    name: str
    meta_batch_size: int = Field(20, ge=1, description="tasks per meta-iteration")
    init_from: str | None = Field(
        None, description="a run directory whose best policy initialises this run "
                          "(e.g. an `aggregation` run), or one of its checkpoint files "
                          "(checkpoints/latest.pt); applied when training starts")


@runtime_checkable
class MetaLearner(Protocol):
    """The interface the trainer and the evaluator drive every algorithm through."""

    env_steps: int

    @property
    def policy(self) -> nn.Module:
        """The meta-learned network (read-only here: each learner narrows its type)."""
        ...

    def meta_update(self, tasks: Tasks) -> dict[str, float]:
        """One outer-loop iteration on a batch of training tasks; returns metrics."""
        ...

    def agent(self, step_sizes: list[float] | None = None) -> Agent:
        """The adapting agent the evaluation protocol scores."""
        ...

    def load_initial_policy(self, state: dict[str, torch.Tensor]) -> None:
        """``init_from``: start from another run's policy weights (all, or the part this
        learner takes from them)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
