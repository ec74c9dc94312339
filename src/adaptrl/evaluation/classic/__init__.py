"""Classic exploration algorithms: the hand-designed baselines of the RL² paper.

Duan et al. (2016) compare RL² against these on Bernoulli bandits (Table 1) and random
tabular MDPs (Table 2). They need no training: each is a batched torch simulation over
task instances, with hyperparameters tuned by grid search on separate instances.

* :mod:`~adaptrl.evaluation.classic.bandits` — random, greedy, epsilon-greedy, UCB1,
  Thompson sampling, optimistic Thompson sampling (May et al. 2012), the RL² authors'
  most-probable-draw Thompson variant, :func:`run_bandit`.
* :mod:`~adaptrl.evaluation.classic.gittins` — Gittins indices (finite-horizon and
  discounted) by retirement calibration, and :class:`GittinsPolicy`.
* :mod:`~adaptrl.evaluation.classic.tabular` — random, greedy, epsilon-greedy, myopic
  greedy, PSRL, optimistic PSRL, UCRL2, BEB, finite-horizon value iteration,
  :func:`run_mdp`.
* :mod:`~adaptrl.evaluation.classic.tables` — the comparison tables and their rendering.
"""

from adaptrl.evaluation.classic._common import grid, grid_search
from adaptrl.evaluation.classic.bandits import (
    UCB1, BanditPolicy, BanditState, EpsilonGreedy, Greedy, MostProbableThompson,
    OptimisticThompson, RandomBandit, Thompson, run_bandit)
from adaptrl.evaluation.classic.gittins import (
    FiniteHorizonTable, GittinsPolicy, discounted_table, finite_horizon_table, gittins_index)
from adaptrl.evaluation.classic.tables import (
    BANDIT_METHODS, MDP_METHODS, PAPER_BANDIT_SETTINGS, PAPER_MDP_SETTINGS, Method, bandit_table,
    format_table, mdp_table, render_table)
from adaptrl.evaluation.classic.tabular import (
    BEB, PSRL, TABULARL_PRIOR, UCRL2, EpsilonGreedyMDP, GreedyMDP, MDPAgent, MDPCounts, MDPPrior,
    MyopicGreedyMDP, OptimisticPSRL, RandomMDP, optimistic_envelope, optimistic_expectation, plan,
    policy_value, run_mdp, value_iteration)

__all__ = [
    "BANDIT_METHODS", "BEB", "MDP_METHODS", "PAPER_BANDIT_SETTINGS", "PAPER_MDP_SETTINGS",
    "PSRL", "UCB1", "UCRL2", "BanditPolicy", "BanditState", "EpsilonGreedy", "EpsilonGreedyMDP",
    "FiniteHorizonTable", "GittinsPolicy", "Greedy", "GreedyMDP", "MDPAgent", "MDPCounts",
    "MDPPrior", "Method", "MostProbableThompson", "MyopicGreedyMDP", "OptimisticPSRL",
    "OptimisticThompson", "RandomBandit", "RandomMDP", "TABULARL_PRIOR",
    "Thompson", "bandit_table", "discounted_table", "finite_horizon_table", "format_table",
    "gittins_index", "grid", "grid_search", "mdp_table", "optimistic_envelope",
    "optimistic_expectation", "plan", "policy_value", "render_table", "run_bandit", "run_mdp",
    "value_iteration",
]
