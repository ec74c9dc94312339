"""RL² speed: env steps/s of trial sampling and seconds per RL² meta-iteration.

Settings are read from the RL² configs (``configs/rl2-bandit-k10-n100.yaml`` and
``configs/rl2-mdp-n25.yaml`` by default): their family, meta-batch, policy and PPO
settings. For each config:

* *sampling*: ``sample_trials`` of one full trial in every slot of a meta-batch, timed
  over ``--repeats`` calls after a warm-up; steps/s = live env steps / seconds (policy
  forward, action sampling and env step included: the whole hot path);
* *iteration*: ``RL2.meta_update`` (sampling + GAE + all PPO epochs with backpropagation
  through whole trials), mean seconds over ``--iterations`` after one warm-up iteration.

    python benchmarks/bench_rl2.py                         # the two reference settings
    python benchmarks/bench_rl2.py configs/rl2-bandit-k5-n10.yaml --threads 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from adaptrl import runtime  # the CLI's runtime settings (adaptrl/runtime.py)

runtime.configure()
import torch  # noqa: E402
import yaml

from adaptrl.algorithms.rl2 import RL2, RL2Config
from adaptrl.rollouts.trial_sampler import sample_trials
from adaptrl.tasks import make

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [ROOT / "configs" / "rl2-bandit-k10-n100.yaml", ROOT / "configs" / "rl2-mdp-n25.yaml"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(config_path: Path, device: torch.device, repeats: int, iterations: int
          ) -> dict[str, float]:
    raw = yaml.safe_load(config_path.read_text())
    family = make(raw["family"]["name"], **raw["family"].get("params", {}))
    cfg = RL2Config.model_validate(raw["algorithm"])
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    alg = RL2(family, cfg, generator, device)
    tasks = family.sample(cfg.meta_batch_size, "train", generator)

    env = family.make_env(tasks, cfg.trials_per_task, device)
    sample_trials(env, alg.policy, None, alg.episodes_per_trial, generator)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    steps = 0
    for _ in range(repeats):
        steps += sample_trials(env, alg.policy, None, alg.episodes_per_trial, generator).num_steps
    _sync(device)
    sample_s = time.perf_counter() - t0

    alg.meta_update(tasks)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iterations):
        alg.meta_update(tasks)
    _sync(device)
    iter_s = (time.perf_counter() - t0) / iterations
    return {"steps_per_iteration": steps / repeats, "sampling_steps_per_s": steps / sample_s,
            "sampling_s": sample_s / repeats, "iteration_s": iter_s,
            "iteration_steps_per_s": steps / repeats / iter_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", type=Path, default=DEFAULT)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed sampling calls")
    parser.add_argument("--iterations", type=int, default=3, help="timed meta-iterations")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__}")
    print(f"{'config':<26} {'steps/iter':>10} {'sample steps/s':>15} {'sample s':>9} "
          f"{'s/iteration':>12} {'iter steps/s':>13}")
    for path in args.configs:
        r = bench(path, device, args.repeats, args.iterations)
        print(f"{path.stem:<26} {r['steps_per_iteration']:>10.0f} "
              f"{r['sampling_steps_per_s']:>15,.0f} {r['sampling_s']:>9.3f} "
              f"{r['iteration_s']:>12.3f} {r['iteration_steps_per_s']:>13,.0f}")


if __name__ == "__main__":
    main()
