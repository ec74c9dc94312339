"""adaptrl's DQN against CleanRL's ``dqn.py`` on CartPole-v1, side by side; and the DQN's
training throughput on a batched built-in family.

**Learning curves** (the default mode). Both implementations train on Gymnasium's
``CartPole-v1`` with CleanRL's defaults (shared/REFERENCES.md): 500k env steps, Adam lr
2.5e-4, replay 10k, batch 128, gamma 0.99, target copied every 500 steps, a gradient step
every 10 env steps after 10k learning starts, epsilon 1 -> 0.05 over half the run, a
120-84 ReLU MLP with ``nn.Linear``'s initialisation, squared-error loss. adaptrl runs
``DQNAgent`` (``DQNConfig(total_steps=steps, init="torch")``: every other field is its
default) through the Gymnasium adapter, one task, one env slot, driven by ``play_online``;
CleanRL runs its own script, ``cleanrl/dqn.py`` from the ``cleanrl`` PyPI package (1.2.0),
unchanged, from a separate virtual environment so that it never touches adaptrl's
dependencies. The protocol is the same for both: the undiscounted return of every training
episode that ends, against the env step it ends at (0-based, CleanRL's ``global_step``;
CleanRL logs it as ``charts/episodic_return`` and prints it, and the script reads the
printout); per seed, the mean return of the episodes ending in each bin of ``--bin`` env
steps; then mean and 95% CI (Student t) over seeds per bin, and of the per-seed mean over
the last 50k steps. Every run is one fresh process with one CPU thread, the two
implementations interleaved seed by seed, so that load drifts hit both alike; its wall
time (process start to exit, imports included) is reported. Each run's episodes go to
``--out`` as JSON and a later call reuses them (``--fresh`` reruns), so an interrupted
measurement resumes. The plot (both curves with CI bands) goes to ``--plot``.

CleanRL's environment, once (CleanRL 1.2.0 declares Python < 3.11 and pins old gym /
SB3 versions that its own ``dqn.py`` refuses; these are the versions its ``dqn.py`` runs
with, on adaptrl's CPU torch wheel when the machine has one)::

    python -m venv /tmp/cleanrl-venv && /tmp/cleanrl-venv/bin/pip install torch \\
        stable-baselines3==2.3.2 gymnasium==0.29.1 "numpy<2" tensorboard setuptools && \\
        /tmp/cleanrl-venv/bin/pip install --no-deps --ignore-requires-python cleanrl==1.2.0

Without it (``--cleanrl-venv``) the CleanRL side is skipped with a message.

    python benchmarks/bench_dqn_cleanrl.py                      # 5 seeds x 500k steps
    python benchmarks/bench_dqn_cleanrl.py --quick              # 2 seeds x 30k steps
    python benchmarks/bench_dqn_cleanrl.py --seeds 5 --steps 200000 --out /tmp/dqn_cmp

**Throughput** (``--throughput``): adaptrl's DQN training on the built-in ``catcher``
family with 1, 16 and 256 tasks (``--tasks``), one env slot each, CleanRL's settings except
``learning_starts`` (``--learning-starts``, default 1000) so that the timed part is
training: after the learning starts, ``--timed-steps`` env steps per task are timed
(acting, env steps, replay, a gradient step every 10 steps and the target copies of every
task); the table gives live env steps per second over all tasks and per task. The built-in
envs reset all slots together (no autoreset), so a slot whose episode ended waits, masked,
for the batch's longest episode: ``batched steps`` counts the steps of the batched env (the
DQN's clock: a gradient step every 10 of them), ``live %`` the share of slot-steps that
were live.

    python benchmarks/bench_dqn_cleanrl.py --throughput
    python benchmarks/bench_dqn_cleanrl.py --throughput --device cuda
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IMPLS = ("adaptrl", "cleanrl")
FINAL_WINDOW = 50_000
EPISODE_LINE = re.compile(r"global_step=(\d+), episodic_return=\[?\s*([-+0-9.eE]+)")


# ------------------------------------------------------------------------- one run

def run_adaptrl(seed: int, steps: int) -> dict[str, Any]:
    """adaptrl's DQN on CartPole-v1 through the Gymnasium adapter (in this process)."""
    from adaptrl.agents.dqn import DQNConfig, learn_one_task
    from adaptrl.tasks.adapters import single_env_family

    run = learn_one_task(single_env_family("CartPole-v1"),
                         DQNConfig(total_steps=steps, init="torch"), steps, seed)
    end, returns = run.episodes.of_task(0)
    # end_step counts live steps (1-based); CleanRL's global_step is the step's index
    return {"step": (end - 1).tolist(), "return": returns.tolist()}


def cleanrl_script(venv: Path) -> Path | None:
    """``cleanrl/dqn.py`` in ``venv``, or ``None`` when the venv or the package is absent."""
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    # cleanrl is a namespace package (no __init__.py): its folder is on __path__
    out = subprocess.run([str(python), "-c", "import cleanrl; print(list(cleanrl.__path__)[0])"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return None
    script = Path(out.stdout.strip()) / "dqn.py"
    return script if script.exists() else None


def run_cleanrl(venv: Path, script: Path, seed: int, steps: int) -> dict[str, Any]:
    """CleanRL's own ``dqn.py`` (its defaults; CPU; no tracking, no video), its printed
    episodic returns parsed."""
    with tempfile.TemporaryDirectory() as tmp:  # it writes runs/<name>/ events there
        out = subprocess.run([str(venv / "bin" / "python"), str(script), "--seed", str(seed),
                              "--total-timesteps", str(steps), "--cuda", "False",
                              "--track", "False", "--capture-video", "False"],
                             cwd=tmp, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"CleanRL's dqn.py failed:\n{out.stderr[-3000:]}")
    found = EPISODE_LINE.findall(out.stdout)
    return {"step": [int(s) for s, _ in found], "return": [float(r) for _, r in found]}


def worker(impl: str, seed: int, steps: int, venv: Path, path: Path) -> None:
    """Run one (implementation, seed) in this fresh process and write its episodes."""
    start = time.perf_counter()
    if impl == "adaptrl":
        result = run_adaptrl(seed, steps)
    else:
        script = cleanrl_script(venv)
        if script is None:
            raise SystemExit(f"no CleanRL in {venv}")
        result = run_cleanrl(venv, script, seed, steps)
    result.update(impl=impl, seed=seed, steps=steps, worker_s=time.perf_counter() - start)
    path.write_text(json.dumps(result))


def launch(impl: str, seed: int, steps: int, venv: Path, path: Path, threads: int) -> float:
    """Run one measurement in a fresh process; its wall time (s), imports included."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": str(ROOT / "src")}
    start = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--worker", impl, "--seed", str(seed),
                    "--steps", str(steps), "--cleanrl-venv", str(venv), "--result", str(path)],
                   check=True, env=env)
    wall = time.perf_counter() - start
    result = json.loads(path.read_text())
    result["wall_s"] = wall
    path.write_text(json.dumps(result))
    return wall


# ------------------------------------------------------------------------ statistics

def t_quantile(dof: int) -> float:
    """The 97.5% quantile of Student's t with ``dof`` degrees of freedom."""
    from scipy import stats
    return float(stats.t.ppf(0.975, dof))


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and 95% CI half-width (Student t over the values; nan for fewer than 2)."""
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return math.nan, math.nan
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, math.nan
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
    return m, t_quantile(len(vals) - 1) * sd / math.sqrt(len(vals))


def binned(run: dict[str, Any], width: int, steps: int) -> list[float]:
    """Mean return of the run's episodes ending in each bin ``[k w, (k+1) w)``."""
    bins = math.ceil(steps / width)
    sums, counts = [0.0] * bins, [0] * bins
    for s, r in zip(run["step"], run["return"], strict=True):
        k = min(int(s) // width, bins - 1)
        sums[k] += r
        counts[k] += 1
    return [sums[k] / counts[k] if counts[k] else math.nan for k in range(bins)]


def final_mean(run: dict[str, Any], steps: int) -> float:
    """Mean return of the episodes ending in the run's last 50k steps (or last fifth)."""
    window = min(FINAL_WINDOW, max(1, steps // 5))
    last = [r for s, r in zip(run["step"], run["return"], strict=True) if s >= steps - window]
    return sum(last) / len(last) if last else math.nan


# ------------------------------------------------------------------------- reporting

def report(runs: dict[str, list[dict[str, Any]]], steps: int, width: int, plot: Path | None
           ) -> None:
    impls = [i for i in IMPLS if runs[i]]
    curves = {i: [binned(r, width, steps) for r in runs[i]] for i in impls}
    bins = math.ceil(steps / width)
    print(f"\nCartPole-v1, {steps:,} env steps, episodic return of training episodes, mean "
          f"over the episodes ending in each {width:,}-step bin, then mean +- 95% CI over "
          "seeds (" + ", ".join(f"{i}: {len(runs[i])} seeds" for i in impls) + ")\n")
    head = f"{'bin end':>9}" + "".join(f" | {i + ' mean':>13} {'+-CI':>7}" for i in impls)
    print(head)
    print("-" * len(head))
    stats: dict[str, list[tuple[float, float]]] = {
        i: [mean_ci([c[k] for c in curves[i]]) for k in range(bins)] for i in impls}
    for k in range(bins):
        row = f"{min((k + 1) * width, steps):>9,}"
        for i in impls:
            m, ci = stats[i][k]
            row += f" | {m:>13.1f} {ci:>7.1f}"
        print(row)
    window = min(FINAL_WINDOW, max(1, steps // 5))
    print(f"\nfinal: mean return over the last {window:,} steps (per seed, then over seeds)\n")
    print(f"{'impl':<8} | {'seeds':>5} | {'final mean':>10} | {'95% CI':>7} | per seed"
          f"{'':<30} | {'wall s mean':>11} | {'wall s per run'}")
    for i in impls:
        finals = [final_mean(r, steps) for r in runs[i]]
        m, ci = mean_ci(finals)
        walls = [r["wall_s"] for r in runs[i]]
        print(f"{i:<8} | {len(finals):>5} | {m:>10.1f} | {ci:>7.1f} | "
              f"{' '.join(f'{f:.0f}' for f in finals):<38} | {sum(walls) / len(walls):>11.1f}"
              f" | {' '.join(f'{w:.0f}' for w in walls)}")
    if len(impls) == 2:
        overlap = sum(1 for k in range(bins) if _overlap(stats["adaptrl"][k],
                                                         stats["cleanrl"][k]))
        print(f"\nbins whose 95% CIs overlap: {overlap} of {bins}")
    if plot is not None:
        draw(stats, impls, runs, steps, width, plot)


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    if any(math.isnan(x) for x in (*a, *b)):
        return False
    return abs(a[0] - b[0]) <= a[1] + b[1]


def draw(stats: dict[str, list[tuple[float, float]]], impls: list[str],
         runs: dict[str, list[dict[str, Any]]], steps: int, width: int, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    colors = {"adaptrl": "tab:blue", "cleanrl": "tab:orange"}
    for i in impls:
        x = [min((k + 0.5) * width, steps) for k in range(len(stats[i]))]
        m = [s[0] for s in stats[i]]
        lo = [s[0] - (0 if math.isnan(s[1]) else s[1]) for s in stats[i]]
        hi = [s[0] + (0 if math.isnan(s[1]) else s[1]) for s in stats[i]]
        walls = [r["wall_s"] for r in runs[i]]
        label = (f"{'adaptrl DQNAgent' if i == 'adaptrl' else 'CleanRL dqn.py'} "
                 f"({len(runs[i])} seeds, {sum(walls) / len(walls) / 60:.1f} min/run)")
        ax.plot(x, m, color=colors[i], label=label)
        ax.fill_between(x, lo, hi, color=colors[i], alpha=0.25, linewidth=0)
    ax.set_xlabel("env step")
    ax.set_ylabel(f"episodic return (training episodes, {width // 1000}k-step bins)")
    ax.set_title("DQN on CartPole-v1, CleanRL defaults: mean and 95% CI over seeds")
    ax.set_ylim(0, 520)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"\nplot: {path}")


def compare(args: argparse.Namespace) -> None:
    venv = Path(args.cleanrl_venv)
    impls = list(IMPLS)
    if cleanrl_script(venv) is None:
        print(f"CleanRL skipped: no virtual environment with the cleanrl package at {venv} "
              "(see this script's docstring for the one-line setup)", flush=True)
        impls.remove("cleanrl")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {i: [] for i in IMPLS}
    for seed in range(1, args.seeds + 1):
        for impl in impls:
            path = out / f"{impl}_steps{args.steps}_seed{seed}.json"
            if path.exists() and not args.fresh:
                result = json.loads(path.read_text())
                if "wall_s" in result:
                    runs[impl].append(result)
                    print(f"{impl} seed {seed}: reused {path}", flush=True)
                    continue
            wall = launch(impl, seed, args.steps, venv, path, args.threads)
            result = json.loads(path.read_text())
            runs[impl].append(result)
            print(f"{impl} seed {seed}: {len(result['return'])} episodes, final mean "
                  f"{final_mean(result, args.steps):.1f}, wall {wall:.0f} s "
                  f"({time.strftime('%H:%M:%S')})", flush=True)
    report(runs, args.steps, args.bin, None if args.no_plot else Path(args.plot))


# ------------------------------------------------------------------------ throughput

def throughput(args: argparse.Namespace) -> None:
    import torch

    from adaptrl.agents.dqn import DQNAgent, DQNConfig
    from adaptrl.rollouts.online import play_online
    from adaptrl.tasks import make

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    family = make(args.family)
    print(f"\nadaptrl DQN training throughput on {args.family} (one env slot per task, "
          f"CleanRL's settings, learning_starts {args.learning_starts}, "
          f"{args.timed_steps} timed env steps per task after it; device {device}, "
          f"{torch.get_num_threads()} threads)\n")
    print(f"{'tasks':>6} | {'env steps/s':>12} | {'per task':>9} | {'batched steps':>13} | "
          f"{'live %':>6} | {'updates':>8} | {'time s':>7}")
    print("-" * 80)
    for n in args.tasks:
        gen = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        tasks = family.sample(n, "train", gen)
        cfg = DQNConfig(learning_starts=args.learning_starts,
                        total_steps=args.learning_starts + args.timed_steps)
        agent = DQNAgent(cfg, family.observation_space, family.action_space)
        env = family.make_env(tasks, 1, device)
        run = play_online(env, agent, args.learning_starts + 20, gen)  # fill; first updates
        updates, clock = run.state.updates, run.state.steps
        _sync(device)
        start = time.perf_counter()
        run = play_online(env, agent, args.timed_steps, gen, state=run.state)
        _sync(device)
        elapsed = time.perf_counter() - start
        total = int(run.steps.sum())  # live steps: n x timed_steps
        batched = run.state.steps - clock
        print(f"{n:>6} | {total / elapsed:>12,.0f} | {args.timed_steps / elapsed:>9,.0f} | "
              f"{batched:>13,} | {100 * total / (n * batched):>6.0f} | "
              f"{run.state.updates - updates:>8} | {elapsed:>7.2f}", flush=True)


def _sync(device: Any) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500_000, help="env steps per run")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 1..N per implementation")
    parser.add_argument("--quick", action="store_true", help="2 seeds x 30k steps, 5k bins")
    parser.add_argument("--bin", type=int, default=10_000, help="env steps per bin")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    parser.add_argument("--cleanrl-venv", default="/tmp/cleanrl-venv",
                        help="virtual environment with the cleanrl package")
    parser.add_argument("--out", default="/tmp/dqn_cleanrl", help="folder of per-run results")
    parser.add_argument("--fresh", action="store_true", help="rerun runs already in --out")
    parser.add_argument("--plot", default=str(ROOT / "docs" / "img" / "dqn_cleanrl_cartpole.png"))
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--throughput", action="store_true",
                        help="measure training env steps/s at --tasks parallel tasks instead")
    parser.add_argument("--family", default="catcher", help="built-in family (throughput)")
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 16, 256])
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--timed-steps", type=int, default=2000,
                        help="timed env steps per task (throughput)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.seed, args.steps, Path(args.cleanrl_venv), Path(args.result))
    elif args.throughput:
        if args.quick:
            args.timed_steps = min(args.timed_steps, 300)
        throughput(args)
    else:
        if args.quick:
            args.seeds, args.steps, args.bin = min(args.seeds, 2), 30_000, 5_000
        compare(args)


if __name__ == "__main__":
    main()
