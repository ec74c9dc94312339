"""The RL² paper's tables for a bandit / tabular-MDP run: classic algorithms beside RL².

For a memory-based run on ``bandit-bernoulli`` or ``tabular-mdp``, the evaluation adds
the paper's table (Duan et al. 2016, Tables 1-2): rows = settings, columns = methods,
mean total reward per trial with its 95% CI over instances. The run's own setting gets
an ``rl2`` column scored on held-out (``test``) instances; with ``all_settings`` the
table also lists every setting of the paper for the classic algorithms (they need no
training; several minutes on 2 cores because of the n = 500 Gittins table).
"""

from __future__ import annotations

from typing import Any

import torch

from adaptrl.evaluation.classic.tables import (PAPER_BANDIT_SETTINGS, PAPER_MDP_SETTINGS,
                                               bandit_table, mdp_table)
from adaptrl.evaluation.statistics import mean_ci95
from adaptrl.tasks.base import TaskFamily

CLASSIC_FAMILIES = ("bandit-bernoulli", "tabular-mdp")


def classic_table(family_name: str, family: TaskFamily, agent: Any, num_instances: int,
                  seed: int, device: torch.device, all_settings: bool = False
                  ) -> dict[str, Any] | None:
    """The table for ``family`` with an ``rl2`` column in the run's own setting row."""
    if family_name not in CLASSIC_FAMILIES or not hasattr(agent, "trial_returns"):
        return None
    n = int(getattr(family, "trial_length"))
    if family_name == "bandit-bernoulli":
        k = int(getattr(family, "num_arms"))
        own: tuple[int, ...] = (n, k)
        settings = list(dict.fromkeys([own, *PAPER_BANDIT_SETTINGS])) if all_settings else [own]
        table = bandit_table(settings, num_instances=num_instances, seed=seed)
    else:
        own = (n,)
        rows = list(dict.fromkeys([n, *PAPER_MDP_SETTINGS])) if all_settings else [n]
        table = mdp_table(rows, num_instances=num_instances, seed=seed,
                          num_states=int(getattr(family, "num_states")),
                          num_actions=int(getattr(family, "num_actions")),
                          horizon=int(family.horizon))
    tasks = family.sample(num_instances, "test", torch.Generator().manual_seed(seed))
    totals = agent.trial_returns(family, tasks, n, 1, torch.Generator().manual_seed(seed),
                                 device)
    mean, ci = mean_ci95(totals.double())
    for row in table["settings"]:
        key = (row["n"], row["k"]) if "k" in row else (row["n"],)
        if key == own:
            row["methods"]["rl2"] = {"mean": float(mean), "ci95": float(ci)}
    return table
