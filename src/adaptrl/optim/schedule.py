"""Learning-rate annealing for an outer loop that counts its iterations.

Schulman et al. (2017, Table 5) anneal PPO's Adam step size linearly to 0 over training
(``alpha``: 1 -> 0); late in a long run the gradient noise, not the step size, sets how
far the policy wanders around its optimum, and shrinking the step lets it settle.

The rate is a pure function of the iteration count, which every checkpoint already
holds, so a resumed run gets the very same rates as an uninterrupted one with no
scheduler state to save (torch's ``lr_scheduler`` classes keep their own step count).
"""

from __future__ import annotations

from pydantic import Field, model_validator
from torch.optim import Optimizer

from adaptrl.schema import ConfigModel


class LinearAnneal(ConfigModel):
    """``lr`` until iteration ``start``, then linear to ``final * lr`` at ``end``, then flat."""

    start: int = Field(0, ge=0, description="iteration at which the decay begins (the rate "
                                            "is the configured lr before it)")
    end: int = Field(..., ge=1, description="iteration at which the rate reaches final * lr")
    final: float = Field(0.0, ge=0, le=1, description="rate at `end` as a fraction of lr")

    @model_validator(mode="after")
    def _ordered(self) -> LinearAnneal:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self

    def factor(self, iteration: int) -> float:
        """The multiplier of the base rate for the update of iteration ``iteration``
        (0-based: the number of updates already taken)."""
        progress = min(max(iteration - self.start, 0) / (self.end - self.start), 1.0)
        return 1.0 + progress * (self.final - 1.0)


def set_learning_rate(optimizer: Optimizer, lr: float) -> None:
    """Give every parameter group of ``optimizer`` the rate ``lr``."""
    for group in optimizer.param_groups:
        group["lr"] = lr
