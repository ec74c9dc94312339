"""The RL² paper's tables for a bandit / tabular-MDP run: classic algorithms beside RL².

For a memory-based run on ``bandit-bernoulli`` or ``tabular-mdp``, the evaluation adds
the paper's table (Duan et al. 2016, Tables 1-2): rows = settings, columns = methods,
mean total reward per trial with its 95% CI over instances. The run's own setting gets
an ``rl2`` column, scored on the very held-out instances the classic algorithms played,
and ``rl2_minus``: RL² minus each classic algorithm, instance by instance, with the 95% CI
of that paired difference (the test of "RL² matches the best one": the per-instance
differences cancel the spread of instance difficulty that two unpaired CIs both carry).
On MDPs the table also scores BEB re-planned before every step (not in the paper, and
stronger than its BEB), and the summary lines give RL² against both. With
``all_settings`` the table also lists every setting of the paper for the classic
algorithms (they need no training; several minutes on 2 cores because of the n = 500
Gittins table).
"""

from __future__ import annotations

from typing import Any

import torch

from adaptrl.evaluation.classic_tables import (
    PAPER_BANDIT_METHODS,
    PAPER_BANDIT_SETTINGS,
    PAPER_MDP_METHODS,
    PAPER_MDP_SETTINGS,
    bandit_table,
    mdp_table,
    run_generator,
    setting_instances,
    setting_key,
    setting_label,
)
from adaptrl.evaluation.statistics import mean_ci95, paired_difference
from adaptrl.rollouts.trial_sampler import TrialActor, play_trials, trial_returns
from adaptrl.tasks.bandits import BanditBernoulli
from adaptrl.tasks.base import TaskFamily
from adaptrl.tasks.tabular_mdp import TabularMDP

BEYOND_PAPER_MDP_METHODS = ("beb_per_step",)
"""Scored beside the paper's seven on MDPs: BEB re-planned before every step, stronger than
the paper's episodic BEB (461.9 against 450.5 at n = 25), so that RL² is also measured
against the best classic algorithm we know, not only the best of the paper's table."""
PAPER_METHODS = frozenset(PAPER_BANDIT_METHODS) | frozenset(PAPER_MDP_METHODS)


def classic_table(family: TaskFamily, agent: Any, num_instances: int,
                  seed: int, device: torch.device, all_settings: bool = False
                  ) -> dict[str, Any] | None:
    """The table for ``family`` with an ``rl2`` column and ``rl2_minus`` (paired
    differences) in the run's own setting row; ``None`` unless the family is a bandit or
    tabular-MDP family and the agent adapts within a trial
    (:class:`~adaptrl.rollouts.trial_sampler.TrialActor`)."""
    if not isinstance(agent, TrialActor):
        return None
    scores: dict[tuple[int, ...], dict[str, torch.Tensor]] = {}
    own: tuple[int, ...]
    if isinstance(family, BanditBernoulli):
        n = family.trial_length
        own = (n, family.num_arms)
        bandit_settings = [(n, family.num_arms), *PAPER_BANDIT_SETTINGS] if all_settings \
            else [(n, family.num_arms)]
        table = bandit_table(list(dict.fromkeys(bandit_settings)), num_instances=num_instances,
                             seed=seed, scores=scores)
    elif isinstance(family, TabularMDP):
        n = family.trial_length
        own = (n,)
        rows = list(dict.fromkeys([n, *PAPER_MDP_SETTINGS])) if all_settings else [n]
        table = mdp_table(rows, num_instances=num_instances, seed=seed,
                          methods=[*PAPER_MDP_METHODS, *BEYOND_PAPER_MDP_METHODS],
                          num_states=family.num_states, num_actions=family.num_actions,
                          horizon=family.horizon, scores=scores)
    else:
        return None
    tasks = setting_instances(family, own, num_instances, seed)
    env = family.make_env(tasks, 1, device)
    played = play_trials(env, agent, n, run_generator(seed, own, "rl2"))
    totals = trial_returns(played).mean(-1).double().cpu()
    mean, ci = mean_ci95(totals)
    for row in table["settings"]:
        if setting_key(row) == own:
            row["methods"]["rl2"] = {"mean": float(mean), "ci95": float(ci)}
            row["rl2_minus"] = {name: _paired(totals, other.cpu())
                                for name, other in scores[own].items()}
    return table


def _paired(rl2: torch.Tensor, other: torch.Tensor) -> dict[str, float]:
    """RL² minus another method, per instance ``[instances]`` each: mean and 95% CI."""
    diff = paired_difference(rl2.unsqueeze(0), other.unsqueeze(0))
    return {"mean": diff["mean"][0], "ci95": diff["ci95"][0]}


def paired_lines(table: dict[str, Any]) -> list[str]:
    """Per row with ``rl2_minus``: RL² against the row's best algorithm of the paper's
    table, and against the best of all where a variant beyond the paper's scores higher."""
    lines = []
    for row in table["settings"]:
        diffs = row.get("rl2_minus")
        if not diffs:
            continue

        def score(name: str, row: dict[str, Any] = row) -> float:
            return float(row["methods"][name]["mean"])
        in_paper = [name for name in diffs if name in PAPER_METHODS]
        best = max(in_paper or diffs, key=score)
        lines.append(_paired_line(row, best, diffs[best], "the best classic algorithm"))
        overall = max(diffs, key=score)
        if overall != best:
            lines.append(_paired_line(row, overall, diffs[overall],
                                      "a stronger variant, not in the paper's table"))
    return lines


def _paired_line(row: dict[str, Any], name: str, d: dict[str, float], what: str) -> str:
    verdict = ("above" if d["mean"] - d["ci95"] > 0 else
               "below" if d["mean"] + d["ci95"] < 0 else "not distinguishable from")
    return (f"{setting_label(row)}: rl2 - {name} = {d['mean']:+.2f} ± {d['ci95']:.2f} "
            f"on the same instances (paired 95% CI): {verdict} {what}")
