"""The RL² table's summary lines: RL² against the best of the paper's algorithms, and
against a stronger variant beyond the paper's table where one scores higher."""

from __future__ import annotations

from typing import Any

import torch

from adaptrl.algorithms.rl2 import RL2, RL2Config
from adaptrl.experiment.classic_table import BEYOND_PAPER_MDP_METHODS, classic_table, paired_lines
from adaptrl.tasks.tabular_mdp import TabularMDP


def _row(methods: dict[str, float], diffs: dict[str, tuple[float, float]]) -> dict[str, Any]:
    return {"n": 25, "methods": {k: {"mean": v, "ci95": 1.0} for k, v in methods.items()},
            "rl2_minus": {k: {"mean": m, "ci95": c} for k, (m, c) in diffs.items()}}


def test_paired_lines_name_the_papers_best_and_a_stronger_variant() -> None:
    row = _row({"greedy": 432.9, "beb": 450.5, "beb_per_step": 461.9, "rl2": 451.0},
               {"greedy": (18.1, 3.0), "beb": (0.5, 2.7), "beb_per_step": (-10.9, 2.8)})
    first, second = paired_lines({"settings": [row]})
    assert first == ("n=25: rl2 - beb = +0.50 ± 2.70 on the same instances (paired 95% CI): "
                     "not distinguishable from the best classic algorithm")
    assert second.startswith("n=25: rl2 - beb_per_step = -10.90 ± 2.80")
    assert second.endswith("below a stronger variant, not in the paper's table")
    # where the paper's best is the best of all, one line
    row = _row({"beb": 450.5, "beb_per_step": 440.0},
               {"beb": (4.0, 1.0), "beb_per_step": (14.0, 1.0)})
    assert paired_lines({"settings": [row]}) == [
        "n=25: rl2 - beb = +4.00 ± 1.00 on the same instances (paired 95% CI): above the "
        "best classic algorithm"]


def test_an_mdp_runs_table_scores_per_step_beb_beside_the_papers_algorithms() -> None:
    family = TabularMDP(num_states=3, num_actions=2, horizon=3, trial_length=2)
    agent = RL2(family, RL2Config(policy={"hidden_size": 4}), torch.Generator().manual_seed(0),
                torch.device("cpu")).agent()
    table = classic_table(family, agent, 20, 0, torch.device("cpu"))
    assert table is not None
    (row,) = table["settings"]
    assert set(BEYOND_PAPER_MDP_METHODS) <= set(row["methods"]) and "beb" in row["methods"]
    assert set(row["rl2_minus"]) == set(row["methods"]) - {"rl2"}
