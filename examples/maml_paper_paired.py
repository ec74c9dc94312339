"""MAML navigation runs against the paper's own per-goal returns, goal by goal.

The reference code's meta-test saved MAML's average return on each of its 40 test goals
after 0-4 gradient steps (docs/data/maml-navigation-paper-returns.json; their means are
the paper's Table 4), and its goals are known (configs/tasks/maml-navigation-paper-
goals.json). This script scores every run given on those goals, averages the runs per
goal (seeds), and prints the runs' curve beside the paper's and the paired difference
per goal with its 95% CI: the comparison with the least spread, since goal difficulty
cancels out.

Run:  python examples/maml_paper_paired.py RUN_DIR [RUN_DIR ...] [--checkpoint best]
      (runs of configs/maml-navigation.yaml; each is scored with its own evaluation
      settings, e.g. its evaluation.batch_unit)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from adaptrl.evaluation.statistics import mean_ci95
from adaptrl.experiment.config import CHECKPOINT_NAMES
from adaptrl.experiment.evaluate import evaluate_run

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "docs/data/maml-navigation-paper-returns.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--checkpoint", default="best", choices=CHECKPOINT_NAMES)
    args = parser.parse_args()

    paper = json.loads(PAPER.read_text())
    tasks_file = str(REPO / paper["tasks_file"])
    reference = torch.tensor(paper["per_task"], dtype=torch.float64)  # [steps, goals]
    curves = []
    for run in args.run_dirs:
        result = evaluate_run(run, num_tasks=reference.shape[1], checkpoint=args.checkpoint,
                              write=False, baselines=False, tasks_file=tasks_file)
        per_task = torch.tensor(result["methods"]["agent"]["per_task"], dtype=torch.float64)
        curves.append(per_task)
        mean, ci = mean_ci95(per_task)
        print(f"{run} ({result['batch_unit']}, checkpoint {args.checkpoint} = iteration "
              f"{result['checkpoint_iteration']}): "
              + " / ".join(f"{m:.2f} ± {c:.2f}" for m, c in zip(mean, ci)))
    ours = torch.stack(curves).mean(0)  # per goal, averaged over the runs
    steps = min(ours.shape[0], reference.shape[0])
    ours, reference = ours[:steps], reference[:steps]
    rows = {"paper (reference code's saved returns)": reference,
            f"runs, mean of {len(curves)} per goal": ours,
            "runs − paper, paired per goal": ours - reference}
    print(f"\n{'':40s}" + "".join(f"{f'{k} step' + ('s' if k != 1 else ''):>17s}"
                                   for k in range(steps)))
    for name, x in rows.items():
        mean, ci = mean_ci95(x)
        print(f"{name:40s}" + "".join(f"{f'{m:+.2f} ± {c:.2f}':>17s}"
                                      for m, c in zip(mean, ci)))


if __name__ == "__main__":
    main()
