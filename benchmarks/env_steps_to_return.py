"""Env steps of meta-training until a run's training return first reaches a threshold.

Reads each run's ``metrics.jsonl`` (the trainer's log): the return of the iteration's
training episodes — ``return_post`` (MAML: after the inner step), else ``return``
(GrBAL: its MPC agent adapting online) — against the cumulative ``env_steps``. Used in
docs/model_based.md to compare GrBAL's sample efficiency with model-free MAML-TRPO's on the
same family (a training-task return, not the held-out protocol).

    python benchmarks/env_steps_to_return.py --threshold 180 runs/grbal-cartpole runs/maml-cartpole
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--threshold", type=float, required=True)
    args = parser.parse_args()
    print(f"{'run':<34} {'key':<12} {'reached at env steps':>22} {'iters':>6} "
          f"{'best return':>12} {'env steps (all)':>16}")
    for run in args.runs:
        rows = [json.loads(line) for line in Path(run, "metrics.jsonl").read_text().splitlines()]
        key = "return_post" if "return_post" in rows[0] else "return"
        first = next((r for r in rows if r[key] >= args.threshold), None)
        reached = f"{first['env_steps']:,}" if first else "not reached"
        best = max(r[key] for r in rows)
        print(f"{Path(run).name:<34} {key:<12} {reached:>22} {len(rows):>6} {best:>12.1f} "
              f"{rows[-1]['env_steps']:>16,}")


if __name__ == "__main__":
    main()
