"""The classic baselines of RL² (Duan et al. 2016, Tables 1 and 2) at the paper's settings.

Bandits: ``n`` in {10, 100, 500} pulls x ``k`` in {5, 10, 50} arms; random tabular MDPs:
``n`` in {10, 25, 50, 75, 100} episodes. Every method is scored on the same ``--instances``
held-out instances (``test`` split); tuned methods first pick their hyperparameters on
``--tune-instances`` instances of the ``train`` split. Prints both tables (mean total
reward ± 95% CI half-width), the tuned hyperparameters, and where the time went.

    python benchmarks/bench_classic.py                        # the full paper grid, 1000 instances
    python benchmarks/bench_classic.py --instances 200 --only bandits
    python benchmarks/bench_classic.py --json classic.json    # also save the tables
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from adaptrl import runtime  # the CLI's runtime settings (adaptrl/runtime.py)

runtime.configure()
import torch  # noqa: E402

from adaptrl.agents.classic import (
    BANDIT_METHODS,
    MDP_METHODS,
    PAPER_BANDIT_SETTINGS,
    PAPER_MDP_SETTINGS,
    finite_horizon_table,
)
from adaptrl.evaluation.classic_tables import bandit_table, format_table, mdp_table


def tuned_params(table: dict[str, Any]) -> str:
    """One line per setting with the hyperparameters the grid search chose."""
    lines = []
    for setting in table["settings"]:
        label = ", ".join(f"{k}={v}" for k, v in setting.items() if k != "methods")
        chosen = {m: r["params"] for m, r in setting["methods"].items() if r["params"]}
        lines.append(f"  {label}: {chosen}")
    return "\n".join(lines)


def report(label: str, table: dict[str, Any], start: float, title: str) -> None:
    """Print a table, its tuned hyperparameters and its timings."""
    elapsed = time.perf_counter() - start
    print(format_table(table, title))
    print("tuned:\n" + tuned_params(table))
    print(f"seconds per method: {seconds_by_method(table)}")
    print(f"{label} total: {elapsed:.1f} s\n")


def seconds_by_method(table: dict[str, Any]) -> str:
    """Total seconds per method over all settings (tuning included)."""
    totals: dict[str, float] = {}
    for setting in table["settings"]:
        for method, result in setting["methods"].items():
            totals[method] = totals.get(method, 0.0) + result["seconds"]
    return ", ".join(f"{m} {s:.1f}" for m, s in totals.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--tune-instances", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["bandits", "mdps"], default=None)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 is fastest for these many small ops, and "
                             "far faster than 2 on a loaded machine")
    parser.add_argument("--json", default=None, help="write both tables to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.instances} instances, "
          f"{args.tune_instances} tuning instances, seed {args.seed}")
    tables: dict[str, Any] = {}

    if args.only in (None, "bandits"):
        start = time.perf_counter()
        for n in sorted({n for n, _ in PAPER_BANDIT_SETTINGS}):
            t0 = time.perf_counter()
            finite_horizon_table(n)
            print(f"finite-horizon Gittins table, n={n}: {time.perf_counter() - t0:.1f} s")
        tables["bandits"] = bandit_table(PAPER_BANDIT_SETTINGS, args.instances, args.seed,
                                         list(BANDIT_METHODS), args.tune_instances)
        report("bandits", tables["bandits"], start, "RL² Table 1 baselines: Bernoulli "
               "bandits, total reward over n pulls")

    if args.only in (None, "mdps"):
        start = time.perf_counter()
        tables["mdps"] = mdp_table(PAPER_MDP_SETTINGS, args.instances, args.seed,
                                   list(MDP_METHODS), args.tune_instances)
        report("MDPs", tables["mdps"], start, "RL² Table 2 baselines: random MDPs (S=10, "
               "A=5, H=10), total reward over n episodes")

    if args.json:
        with open(args.json, "w") as handle:
            json.dump(tables, handle, indent=1)


if __name__ == "__main__":
    main()
