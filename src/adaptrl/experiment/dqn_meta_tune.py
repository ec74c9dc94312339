"""Meta-learn DQN's discount and learning rate across a preset's *training* tasks by
meta-gradients and write them to the file the ``dqn_metatuned`` baseline reads (issue 28,
item 5a; the method: :mod:`adaptrl.algorithms.dqn_meta_hparams`).

The base — the non-differentiable hyperparameters and ``eta``'s starting point — is the
black-box search's file (``algorithm.tuned``, written by
:mod:`adaptrl.experiment.hyperparameter_search`) where the preset names one, else the
preset's ``algorithm.dqn``; the meta-gradient's settings are ``algorithm.metagrad``. The
training tasks are drawn as the search draws them (``tasks`` from the ``train`` split with
``task_seed``), the budget is the protocol's (``evaluation.steps x env_steps_per_unit``).
A run checkpoints after every unit beside the output (``OUT.s<seed>.pt``, removed when
the file is written), so an interrupted meta-training resumes.

Run::

    python -m adaptrl.experiment.dqn_meta_tune configs/dqn-reptile-catcher.yaml \\
        --out configs/tuned/dqn-catcher-metagrad.yaml
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import yaml

from adaptrl.adaptation.meta_gradient import discount, step_size
from adaptrl.algorithms.dqn_hparams import read_tuned, tuned_dqn_config
from adaptrl.algorithms.dqn_meta_hparams import (
    METHOD,
    MetaTuneConfig,
    MetaTunedDQN,
    meta_tune,
)
from adaptrl.experiment.atomic import atomic_write_text
from adaptrl.experiment.hyperparameter_search import load_dqn_preset, preset_parser


def run_meta_tune(preset: Path, settings: MetaTuneConfig, out: Path,
                  overrides: list[str] | None = None) -> MetaTunedDQN:
    """Meta-train ``preset``'s DQN's gamma and lr on its training tasks (every seed of
    ``settings``), write the result to ``out`` and return it."""
    p = load_dqn_preset(preset, overrides, "meta-tune", settings.env_steps, settings.tasks,
                        settings.task_seed)
    config, algo_cfg, family, device = p.config, p.algo, p.family, p.device
    env_steps, tasks, ev = p.env_steps, p.tasks, p.config.evaluation
    if algo_cfg.tuned is not None:
        dqn = tuned_dqn_config(algo_cfg.dqn, read_tuned(algo_cfg.tuned), config.family.name)
        base = (f"the black-box search's file {algo_cfg.tuned} (epsilon schedule, target "
                "period, train frequency; gamma and lr: eta's start); the rest the preset's")
    else:
        dqn = algo_cfg.dqn
        base = "the preset's algorithm.dqn (no algorithm.tuned)"
    mg = algo_cfg.model_copy(update={"dqn": dqn}).meta_gradient_dqn()
    start, cpu = time.time(), time.process_time()
    etas, trajectories = [], []
    for seed in settings.seeds:
        eta, trajectory = meta_tune(family, mg, tasks, env_steps, ev.env_steps_per_unit, seed,
                                    device, out.with_suffix(f".s{seed}.pt"))
        etas.append(eta.double())
        trajectories.append(trajectory)
    eta = torch.stack(etas).mean(0)
    learned = {"gamma": float(discount(eta[0])), "lr": float(step_size(eta[1]))}
    learned = {k: v for k, v in learned.items() if k in mg.meta.learn}
    trajectory = [{k: sum(t[i][k] for t in trajectories) / len(trajectories) for k in p}
                  for i, p in enumerate(trajectories[0])]
    result = MetaTunedDQN(
        family=config.family.name, preset=str(preset), method=METHOD, base=base,
        env_steps=env_steps, tasks=settings.tasks, task_seed=settings.task_seed,
        seeds=settings.seeds, meta=mg.meta.model_dump(), learned=list(learned),
        hyperparameters={"lr": dqn.lr, "gamma": dqn.gamma,
                         "exploration_fraction": dqn.exploration_fraction,
                         "epsilon_end": dqn.epsilon_end, "target_period": dqn.target_period,
                         "train_frequency": dqn.train_frequency, **learned},
        trajectory=trajectory, wall_s=round(time.time() - start, 1),
        cpu_s=round(time.process_time() - cpu, 1))
    tuned_dqn_config(algo_cfg.dqn, result)  # the result is a valid DQN config
    atomic_write_text(out, yaml.safe_dump(result.model_dump(), sort_keys=False))
    for seed in settings.seeds:
        out.with_suffix(f".s{seed}.pt").unlink(missing_ok=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = preset_parser(__doc__.split("\n\n")[0], "algorithm.dqn / tuned / metagrad",
                           "the meta-tuned file (YAML)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    settings = MetaTuneConfig(tasks=args.tasks, seeds=args.seeds, env_steps=args.env_steps)
    result = run_meta_tune(args.preset, settings, args.out, args.overrides)
    print(f"gamma {result.hyperparameters['gamma']:.5g}, lr {result.hyperparameters['lr']:.4g}"
          f" ({result.wall_s:.0f} s wall, {result.cpu_s:.0f} s CPU) -> {args.out}")


if __name__ == "__main__":
    main()
