"""Where an RL² agent wins or loses against a classic algorithm, episode by episode.

`adaptrl evaluate` on a tabular-MDP or bandit run reports the total reward per trial and
the paired difference with each classic algorithm. This script splits that difference
over the episodes of the trial, on the very instances and random streams of the table
(the classic algorithm with the parameters the table tuned), so the per-episode
differences add up to the table's figure. An agent ahead early and behind late exploits
too soon; one behind early and ahead late explores more than it gains.

Run:  python examples/rl2_episode_gap.py RUN_DIR [--seed 12345] [--method beb]
      [--checkpoint latest]   (RUN_DIR must hold an eval.json with the table of that seed)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from adaptrl.agents.classic.tabular import run_mdp
from adaptrl.evaluation.classic_tables import MDP_METHODS, run_generator, setting_instances
from adaptrl.evaluation.statistics import mean_ci95
from adaptrl.experiment.config import CHECKPOINT_NAMES
from adaptrl.experiment.evaluate import load_learner, load_run
from adaptrl.experiment.learners import build_family


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--seed", type=int, default=12345, help="the table's evaluation seed")
    parser.add_argument("--method", default="beb", choices=sorted(MDP_METHODS))
    parser.add_argument("--checkpoint", default="latest", choices=CHECKPOINT_NAMES)
    args = parser.parse_args()

    run, config, algo = load_run(args.run_dir)
    if config.family.name != "tabular-mdp":
        parser.error(f"{args.run_dir} is a {config.family.name} run; this script needs "
                     "tabular-mdp")
    family = build_family(config)
    n = int(family.trial_length)
    key = (n,)
    table = json.loads(run.eval_json.read_text())["table"]
    if table["seed"] != args.seed:
        parser.error(f"{run.eval_json} holds the table of seed {table['seed']}; run "
                     f"`adaptrl evaluate {args.run_dir} --seed {args.seed}` first")
    row = next(r for r in table["settings"] if r["n"] == n)
    params = row["methods"][args.method]["params"]

    tasks = setting_instances(family, key, table["num_instances"], args.seed)
    classic = run_mdp(MDP_METHODS[args.method].make(**params), tasks.params["transitions"],
                      tasks.params["reward_mean"], n,
                      run_generator(args.seed, key, args.method), family.horizon)
    agent = load_learner(run, config, algo, args.checkpoint).agent()
    with torch.no_grad():
        rl2 = agent.trials(family, tasks, n, 1, run_generator(args.seed, key, "rl2"),
                           torch.device(config.device)).episode_returns()
    rl2 = rl2.reshape(n, -1).T.double().cpu()  # [instances, episodes]
    diff = rl2 - classic.double()
    print(f"{args.run_dir} n={n}: rl2 {rl2.sum(1).mean():.2f}, {args.method} "
          f"{classic.sum(1).double().mean():.2f} ({params})")
    print("rl2 - " + args.method + " per episode: " +
          " ".join(f"{float(d):+.2f}" for d in diff.mean(0)))
    spans = [(0, n // 5), (n // 5, 2 * n // 5), (2 * n // 5, n)]  # two fifths, the rest
    for a, b in spans:
        mean, ci = mean_ci95(diff[:, a:b].sum(1))
        print(f"  episodes {a + 1}-{b}: {float(mean):+.2f} ± {float(ci):.2f}")
    mean, ci = mean_ci95(diff.sum(1))
    print(f"  whole trial: {float(mean):+.2f} ± {float(ci):.2f} (the table's paired figure)")


if __name__ == "__main__":
    main()
