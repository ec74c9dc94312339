"""The classic bandit and tabular-MDP algorithms by name, with their hyperparameter grids.

The registry that the RL² comparison tables (:mod:`adaptrl.evaluation.classic_tables`),
RL²'s imitation teacher (:mod:`adaptrl.agents.classic.teachers`) and ``adaptrl list`` read:
each name builds an agent from hyperparameters and names the grid it is tuned over (the
paper tunes every method on separate training instances, Duan et al. 2016, §4).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from adaptrl.agents.classic._common import Params, grid
from adaptrl.agents.classic.bandits import (
    UCB1,
    EpsilonGreedy,
    Greedy,
    MostProbableThompson,
    OptimisticThompson,
    RandomBandit,
    Thompson,
)
from adaptrl.agents.classic.gittins import GittinsPolicy
from adaptrl.agents.classic.tabular import (
    BEB,
    PSRL,
    UCRL2,
    EpsilonGreedyMDP,
    GreedyMDP,
    MDPPrior,
    MyopicGreedyMDP,
    OptimisticPSRL,
    RandomMDP,
)
from adaptrl.errors import UserError

PAPER_BANDIT_SETTINGS: tuple[tuple[int, int], ...] = tuple(
    (n, k) for n in (10, 100, 500) for k in (5, 10, 50))
PAPER_MDP_SETTINGS: tuple[int, ...] = (10, 25, 50, 75, 100)


@dataclass(frozen=True)
class Method:
    """How to build a baseline from hyperparameters, and the grid it is tuned over."""

    make: Callable[..., Any]
    grid: tuple[Params, ...] = ()

    def summary(self) -> str:
        """The first sentence of the built agent's docstring, markup removed (what
        ``adaptrl list`` shows)."""
        target = getattr(self.make, "func", self.make)  # a functools.partial's class
        paragraph = (target.__doc__ or "").strip().split("\n\n")[0]
        text = re.sub(r":\w+:`~?([^`]+)`", r"\1", " ".join(paragraph.split())).replace("``", "")
        end = re.search(r"(?<!Fig)(?<!Alg)(?<!al)(?<!Eq)\.\s+(?=[A-Z(])", text)
        return text if end is None else text[:end.start() + 1]

    def tuned(self) -> list[str]:
        """The hyperparameters its grid tunes."""
        return sorted({k for point in self.grid for k in point})


def build_method(registry: Mapping[str, Method], name: str, params: Params,
                 name_field: str = "name", params_field: str = "params") -> Any:
    """The algorithm ``registry[name]`` built with ``params``. An unknown name or a wrong
    parameter is a :class:`~adaptrl.errors.UserError` naming ``name_field`` or
    ``params_field`` (the config fields they came from)."""
    if name not in registry:
        raise UserError(f"{name_field}: must be one of {sorted(registry)}, got {name!r}")
    try:
        return registry[name].make(**params)
    except (TypeError, ValueError) as err:
        raise UserError(f"{params_field}: {name}: {err}") from err


BANDIT_METHODS: dict[str, Method] = {
    "random": Method(RandomBandit),
    "gittins": Method(GittinsPolicy),
    "thompson": Method(Thompson),
    "optimistic_thompson": Method(OptimisticThompson),
    "ucb1": Method(UCB1, tuple(grid(c=[0.05, 0.1, 0.2, 0.5, 1.0],
                                    prior=[(0.0, 0.0), (1.0, 1.0)]))),
    "epsilon_greedy": Method(EpsilonGreedy, tuple(grid(epsilon=[0.01, 0.02, 0.05, 0.1, 0.2]))),
    "greedy": Method(Greedy),
    # Not in the paper's table: the infinite-horizon discounted index, discount tuned.
    "gittins_discounted": Method(GittinsPolicy, tuple(grid(discount=[0.9, 0.99, 0.998]))),
    # Not in the paper's table under this name, but what its "OTS" column measured: the
    # RL² authors' script kept the most probable of n posterior draws (n tuned over 1..20).
    "thompson_most_probable": Method(MostProbableThompson,
                                     tuple(grid(num_samples=[1, 2, 5, 10, 20]))),
}
PAPER_BANDIT_METHODS: tuple[str, ...] = (
    "random", "gittins", "thompson", "optimistic_thompson", "ucb1", "epsilon_greedy", "greedy")


def optimistic_psrl(num_samples: int = 10, reward_prior_mean: float = 1.0) -> OptimisticPSRL:
    """:class:`OptimisticPSRL` whose prior has mean reward ``reward_prior_mean`` (1: the
    task's; 0: TabulaRL's default, with which the RL² authors ran it), else the task's."""
    return OptimisticPSRL(num_samples, MDPPrior(reward_mean=reward_prior_mean))


MDP_METHODS: dict[str, Method] = {
    "random": Method(RandomMDP),
    "psrl": Method(PSRL),
    # TabulaRL's optimistic envelope of num_samples posterior MDPs (default 10; the RL²
    # authors tuned 1..20), under the task's prior or TabulaRL's (mean reward 0).
    "optimistic_psrl": Method(optimistic_psrl, tuple(grid(
        num_samples=[1, 2, 5, 10, 20], reward_prior_mean=[1.0, 0.0]))),
    "ucrl2": Method(UCRL2, tuple(grid(scale=[0.01, 0.03, 0.1, 0.3, 1.0]))),
    "beb": Method(BEB, tuple(grid(beta=[0.1, 0.3, 1.0, 3.0, 10.0]))),
    "epsilon_greedy": Method(EpsilonGreedyMDP, tuple(grid(epsilon=[0.01, 0.02, 0.05, 0.1, 0.2]))),
    "greedy": Method(GreedyMDP),
    # Not in the paper's table: greedy without planning, how much of greedy needs a model.
    "myopic_greedy": Method(MyopicGreedyMDP),
    # Not in the paper's table: BEB re-planned before every step (the paper's episodic
    # agents re-plan per episode), with and without planning.
    "beb_per_step": Method(partial(BEB, every_step=True), tuple(grid(beta=[0.3, 0.5, 1.0, 2.0]))),
    "myopic_beb_per_step": Method(partial(BEB, every_step=True, myopic=True),
                                  tuple(grid(beta=[0.3, 0.5, 1.0, 2.0]))),
}
PAPER_MDP_METHODS: tuple[str, ...] = (
    "random", "psrl", "optimistic_psrl", "ucrl2", "beb", "epsilon_greedy", "greedy")

