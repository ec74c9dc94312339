"""Record the pinned runs: ``.venv/bin/python tests/regression/record_pins.py [CASE ...]``.

What is pinned
--------------
``pins.json`` holds, for every case of ``pinned_cases.CASES``, the outcome of a tiny seeded
run through the public experiment path (a YAML config read by ``load_config``, ``train``
with its trained baselines, ``evaluate_run``), as a flat ``{key: value}`` dict:

* every iteration's metrics (``train/<learner>/it<i>/<metric>``: all numeric keys of
  ``metrics.jsonl`` but ``wall_time_s``; env_steps included) of the meta-learner and of
  each trained baseline (pretrained, pretrained_adam, aggregation);
* a fingerprint of the latest and best checkpoints (``ckpt/...``): per tensor of the
  learner's state (weights, learned step sizes and transforms, optimiser moments), its
  float64 sum and sum of squares, shape and dtype; the run generator's state by CRC-32;
  the best iteration and score;
* the evaluation (``eval/...``): adaptation-curve means and 95% CIs, per-task scores,
  paired differences, for the agent and its baselines (pretrained, pretrained_adam,
  aggregation, scratch, oracle);
* for RL², its setting's classic table with its ``rl2`` column and paired differences
  (``eval/table/...``), and the classic bandit / tabular-MDP agents' tables
  (``table/...``) on two small settings each, with their tuned hyperparameters and
  per-instance scores (the optimistic Thompson sampling and optimistic PSRL methods are
  left out: ``pinned_cases.EXCLUDED_METHODS``).

The cases cover MAML (TRPO, PPO and Adam outer loops), FOMAML, Meta-SGD (TRPO and PPO),
Meta-Curvature (Kronecker transform), Reptile (SGD and Adam outer steps, VPG and PPO inner
rules), model aggregation (softmax and top-k; as MAML's ``init_from``), RL² (plain PPO;
DAgger from BEB, critic warm-up, then PPO), on navigation-2d, bandit-bernoulli,
tabular-mdp, tracking-2d, pendulum-physics and cartpole-physics. The whole suite takes
about 5 s of CPU on one thread (8 s with pytest's start-up).

``tests/regression/test_pinned_runs.py`` re-runs every case and compares: by default
with ``rtol=1e-5, atol=1e-7`` on floats (other CPUs round differently), exactly (``==``,
bit for bit) with ``ADAPTRL_PINS_EXACT=1``; integers, strings and the set of keys always
exactly. A failure names the case, the key and both values.

When to re-record
-----------------
Only for an intended change of behaviour (a bug fix that changes numbers, a new default,
a new case), never to make a refactor pass: a refactor must leave every pin bit for bit
equal (``ADAPTRL_PINS_EXACT=1``). Re-record only the cases that changed
(``record_pins.py CASE ...``; no names: all cases) on the machine the pins came from, and
give the reason in the commit message together with the pins.json diff.

Pins describe committed code. While the work tree holds someone's unfinished edits,
record from a clean export of a commit instead (``pins.json`` keeps ``recorded_from``)::

    git archive HEAD src | tar -x -C /tmp/adaptrl-head
    PYTHONPATH=/tmp/adaptrl-head/src .venv/bin/python tests/regression/record_pins.py \
        --recorded-from "commit $(git rev-parse --short HEAD)"

Every case runs with one intra-op thread (``pinned_cases.run_case``): with two threads
torch splits some reductions differently and the last bits of the PPO cases change.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from pinned_cases import CASES, differences, run_case  # the script's folder is on sys.path

import adaptrl

HERE = Path(__file__).resolve().parent
PINS = HERE / "pins.json"


def load_pins(path: Path = PINS) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {"cases": {}}


def _source() -> str:
    """The commit of the adaptrl package imported, and whether its sources had edits."""
    src = Path(adaptrl.__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=src, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "."], cwd=src, text=True,
                               capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"{src} (not a git checkout)"
    return f"commit {head}" + (" with uncommitted edits under src/adaptrl" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help=f"cases to re-record (default: all): "
                                                 f"{', '.join(CASES)}")
    parser.add_argument("--recorded-from", default=None,
                        help="what the pins were recorded from, kept in pins.json (e.g. "
                             "'commit 20ae2b3'); default: the adaptrl package's git HEAD")
    args = parser.parse_args(argv)
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; allowed: {list(CASES)}")
    pins = load_pins()
    cases = dict(pins.get("cases", {}))
    for stale in set(cases) - set(CASES):
        print(f"dropping {stale}: no such case any more")
        del cases[stale]
    total = 0.0
    for name in args.cases or list(CASES):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            cases[name] = run_case(name, Path(tmp))
            seconds = time.perf_counter() - start
        total += seconds
        print(f"{name}: {len(cases[name])} values ({seconds:.2f} s)")
    data: dict[str, Any] = {"about": "pinned seeded runs; see tests/regression/record_pins.py",
            "recorded_from": args.recorded_from or _source(),
            "torch": torch.__version__, "python": sys.version.split()[0],
            "cases": {name: dict(sorted(cases[name].items())) for name in CASES
                      if name in cases}}
    PINS.write_text(json.dumps(data, indent=1) + "\n")
    # JSON writes floats by repr, which reads back exactly: check it
    back = load_pins()["cases"]
    bad = [line for name in data["cases"]
           for line in differences(name, data["cases"][name], back[name], exact=True)]
    if bad:
        print("pins.json does not read back exactly:\n" + "\n".join(bad[:20]))
        return 1
    print(f"wrote {PINS} ({len(data['cases'])} cases, {total:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
