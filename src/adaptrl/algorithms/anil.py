"""ANIL for reinforcement learning (Raghu, Raghu, Bengio & Vinyals, ICLR 2020, §4).

"Almost No Inner Loop": MAML whose inner loop adapts only the network's *head*, its last
linear layer; the body (and a Gaussian policy's log-std) is meta-learned by the outer loop
but held fixed while adapting. The paper's finding is that MAML's inner loop mostly
re-uses features rather than learning new ones, so adapting the head alone performs
about as well (their Table 2 for RL on HalfCheetah and 2D navigation).

    phi_head = theta_head - alpha grad_head L_Ti(theta)       phi_body = theta_body
    theta    <- outer step on sum_i L_Ti(phi_i(theta); D'_i)   (all of theta)

In adaptrl this is MAML with one more inner optimizer, :class:`HeadSGD`: SGD whose step is
zero outside the head. Everything else (sampling, the REINFORCE inner loss, TRPO / PPO /
Adam outer steps, second or first order, the evaluation protocol and its baselines) is
MAML's, by composition: this file is the whole algorithm (docs/adding-an-algorithm.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import model_validator
from torch import nn

from adaptrl.adaptation.inner_optimizers import InnerState, StepJacobian
from adaptrl.agents.contract import AdaptationUnit
from adaptrl.algorithms.common import GRADIENT_FAMILY_BASELINES
from adaptrl.algorithms.maml import MAML, MAMLConfig
from adaptrl.algorithms.registry import register_algorithm
from adaptrl.models.functional import Params
from adaptrl.tasks.base import TaskFamily

_LAYER = re.compile(r"^(?P<net>.+)\.layers\.(?P<index>\d+)\.(weight|bias)$")


def head_parameters(names: list[str]) -> frozenset[str]:
    """The names of the last linear layer of every MLP in ``names`` (``*.layers.<k>.*`` with
    the largest ``k`` per network): a policy's output layer."""
    last: dict[str, int] = {}
    for name in names:
        m = _LAYER.match(name)
        if m:
            last[m["net"]] = max(last.get(m["net"], -1), int(m["index"]))
    head = frozenset(n for n in names if (m := _LAYER.match(n)) and
                     int(m["index"]) == last[m["net"]])
    if not head:
        raise ValueError(f"ANIL needs an MLP head (parameters '<net>.layers.<k>.weight'), "
                         f"got {sorted(names)}")
    return head


@dataclass(frozen=True, eq=False)
class HeadSGD:
    """``phi = theta - lr (.) m (.) g`` with the mask ``m`` 1 on the head, 0 elsewhere.

    Linear in the gradient, so its step has the exact Jacobian ``I - P H`` that MAML-TRPO's
    pulled-back metric uses; an evaluation step-size schedule replaces ``lr`` and keeps the
    head (:meth:`with_lr`)."""

    lr: float
    head: frozenset[str]

    def init(self, params: Params) -> InnerState:
        return {}

    def step(self, params: Params, grads: Params, state: InnerState
             ) -> tuple[Params, InnerState]:
        step = self.precondition(grads)
        return {k: params[k] - step[k] for k in params}, state

    def precondition(self, grads: Params) -> Params:
        return {k: self.lr * g if k in self.head else torch.zeros_like(g)
                for k, g in grads.items()}

    def precondition_adjoint(self, w: Params) -> Params:
        return self.precondition(w)  # a diagonal map is its own transpose

    def meta_parameters(self) -> list[nn.Parameter]:
        return []

    def detached(self) -> HeadSGD:
        return self

    def step_jacobian(self, inputs: Params, grads: Params) -> StepJacobian:
        return StepJacobian(inputs, grads, self)

    def summary(self) -> dict[str, float]:
        return {}

    def with_lr(self, lr: float) -> HeadSGD:
        return HeadSGD(float(lr), self.head)


class ANILConfig(MAMLConfig):
    """MAML's settings; the inner loop is SGD on the head with step size ``inner.lr``."""

    name: Literal["anil"] = "anil"  # type: ignore[assignment]

    @model_validator(mode="after")
    def _sgd_inner_loop(self) -> ANILConfig:
        if self.inner.optimizer != "sgd":
            raise ValueError(f"inner.optimizer: ANIL's inner loop is SGD on the head, got "
                             f"{self.inner.optimizer!r}; allowed: sgd")
        return self


def build_anil(family: TaskFamily, config: ANILConfig, generator: torch.Generator,
               device: torch.device) -> MAML:
    """MAML whose inner optimizer steps the policy's head only."""
    return MAML(family, config, generator, device,
                inner_optimizer=lambda params: HeadSGD(config.inner.lr,
                                                       head_parameters(list(params))))


register_algorithm("anil", ANILConfig, build_anil,
                   "ANIL (Raghu et al. 2020): MAML whose inner loop adapts only the policy's "
                   "last layer", unit=AdaptationUnit.GRADIENT_STEPS,
                   baselines=GRADIENT_FAMILY_BASELINES)
