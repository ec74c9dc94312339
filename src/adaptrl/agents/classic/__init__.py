"""Classic exploration algorithms: the hand-designed baselines of the RL² paper.

Duan et al. (2016) compare RL² against these on Bernoulli bandits (Table 1) and random
tabular MDPs (Table 2). They need no training: each is a batched torch simulation over
task instances, with hyperparameters tuned by grid search on separate instances. They are
agents in adaptrl's sense — scored beside the meta-learners, listed by ``adaptrl list``,
and one of them can teach RL² (:mod:`~adaptrl.agents.classic.teachers`).

* :mod:`~adaptrl.agents.classic.bandits` — random, greedy, epsilon-greedy, UCB1,
  Thompson sampling, optimistic Thompson sampling (May et al. 2012), the RL² authors'
  most-probable-draw Thompson variant, :func:`run_bandit`.
* :mod:`~adaptrl.agents.classic.gittins` — Gittins indices (finite-horizon and
  discounted) by retirement calibration, and :class:`GittinsPolicy`.
* :mod:`~adaptrl.agents.classic.tabular` — random, greedy, epsilon-greedy, myopic
  greedy, PSRL, optimistic PSRL, UCRL2, BEB (planning with
  :mod:`adaptrl.planning.value_iteration`), :func:`run_mdp`.
* :mod:`~adaptrl.agents.classic.methods` — every algorithm by name with its tuning grid.
* :mod:`~adaptrl.agents.classic.trial_agents` — any of them as a trial actor under the one
  agent contract (:class:`ClassicBanditAgent`, :class:`ClassicMDPAgent`,
  :func:`classic_agent` by name), scored by :mod:`adaptrl.evaluation.protocol` like RL².
* :mod:`adaptrl.evaluation.classic_tables` scores them: the paper's comparison tables.
"""

from adaptrl.agents.classic._common import grid, grid_search
from adaptrl.agents.classic.bandits import (
    UCB1,
    BanditPolicy,
    BanditState,
    EpsilonGreedy,
    Greedy,
    MostProbableThompson,
    OptimisticThompson,
    RandomBandit,
    Thompson,
    run_bandit,
)
from adaptrl.agents.classic.gittins import (
    FiniteHorizonTable,
    GittinsPolicy,
    discounted_table,
    finite_horizon_table,
    gittins_index,
)
from adaptrl.agents.classic.methods import (
    BANDIT_METHODS,
    MDP_METHODS,
    PAPER_BANDIT_METHODS,
    PAPER_BANDIT_SETTINGS,
    PAPER_MDP_METHODS,
    PAPER_MDP_SETTINGS,
    Method,
)
from adaptrl.agents.classic.tabular import (
    BEB,
    PSRL,
    TABULARL_PRIOR,
    UCRL2,
    EpsilonGreedyMDP,
    GreedyMDP,
    MDPAgent,
    MDPCounts,
    MDPPrior,
    MDPTrialMemory,
    MyopicGreedyMDP,
    OptimisticPSRL,
    RandomMDP,
    optimistic_envelope,
    optimistic_expectation,
    run_mdp,
)
from adaptrl.agents.classic.trial_agents import (
    ClassicAgent,
    ClassicBanditAgent,
    ClassicMDPAgent,
    MDPTrialState,
    classic_agent,
)

__all__ = [
    "BANDIT_METHODS", "BEB", "MDP_METHODS", "PAPER_BANDIT_METHODS", "PAPER_BANDIT_SETTINGS",
    "PAPER_MDP_METHODS", "PAPER_MDP_SETTINGS", "PSRL", "UCB1", "UCRL2", "BanditPolicy",
    "BanditState", "ClassicAgent", "ClassicBanditAgent", "ClassicMDPAgent", "EpsilonGreedy",
    "EpsilonGreedyMDP", "FiniteHorizonTable", "GittinsPolicy", "Greedy", "GreedyMDP", "MDPAgent",
    "MDPCounts", "MDPPrior", "MDPTrialMemory", "MDPTrialState", "Method", "MostProbableThompson",
    "MyopicGreedyMDP", "OptimisticPSRL", "OptimisticThompson", "RandomBandit", "RandomMDP",
    "TABULARL_PRIOR", "Thompson", "classic_agent", "discounted_table", "finite_horizon_table",
    "gittins_index", "grid", "grid_search", "optimistic_envelope", "optimistic_expectation",
    "run_bandit", "run_mdp",
]
