"""DQN, DQN with reservoir replay and DQN-MER along a 5-stage stream, seeds batched.

The presets ``configs/{dqn-stream,dqn-er,dqn-mer}-<game>.yaml`` train one Q-network per
run (``adaptrl train ... --seed N``). Here the seeds run *together*: ``--seeds`` independent
learners in one batched :class:`~adaptrl.algorithms.dqn_mer.StreamDQN` state — each its
own Q-network (initialised from its seed), target, optimizer state and memory, each
playing its own task of the current stage in its own env slot — so that DQN-MER's
sequential per-sample steps run once for all seeds under ``torch.func.vmap``. Everything
else is the preset's: the stream (stages, iterations, env steps per iteration), the DQN,
MER's settings, the scoring. After every stage each learner is scored greedily on the
same fixed test tasks of every stage (``schedule.eval_tasks_per_stage`` per stage, drawn
as the trainer's stream scorer draws them; ``evaluation.episodes`` episodes each) into its
own :class:`~adaptrl.evaluation.stream.StreamRecord`; the table gives retained return (the
return averaged over all stages at the end of the stream), learning return, backward
transfer and forgetting, mean and 95% CI (Student t) over seeds, and the forgetting curve
(each stage's return after each stage, mean over seeds).

One difference from a single-seed run: DQN's clock (epsilon, warm-up, the gradient-step
and target schedules) counts steps of the batched env, and a slot whose episode ended
waits for the others, so with several seeds a learner takes slightly fewer live steps
per clock tick than alone.

    OMP_NUM_THREADS=1 python benchmarks/bench_dqn_mer.py --game catcher
    OMP_NUM_THREADS=1 python benchmarks/bench_dqn_mer.py --game flappy-bird --seeds 3
    python benchmarks/bench_dqn_mer.py --game catcher --quick     # 2 seeds, 2 stages

Each algorithm's result goes to ``--out`` as JSON (reused unless ``--fresh``); a run saves
its state there after every stage (``<result>.ckpt.pt``) and resumes from it when started
again with the same settings.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch

from adaptrl.agents.dqn import GreedyQActor
from adaptrl.algorithms.dqn_mer import StreamDQN, StreamDQNConfig
from adaptrl.evaluation.protocol import greedy_returns
from adaptrl.evaluation.statistics import mean_ci95
from adaptrl.evaluation.stream import METRICS, StreamRecord
from adaptrl.experiment.atomic import atomic_write, atomic_write_json
from adaptrl.experiment.config import load_config
from adaptrl.experiment.learners import build_family
from adaptrl.models.functional import named_params
from adaptrl.models.q_networks import make_q_network
from adaptrl.rollouts.online import play_online
from adaptrl.rollouts.schedule import StageStream, build_schedule

ALGOS = ("dqn-stream", "dqn-er", "dqn-mer")


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--game", choices=["catcher", "flappy-bird"], default="catcher")
    p.add_argument("--algos", nargs="+", choices=ALGOS, default=list(ALGOS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    p.add_argument("--quick", action="store_true", help="2 seeds, 2 stages of 2 x 300 steps")
    p.add_argument("--out", type=Path, default=Path("/tmp/bench_dqn_mer"))
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--verbose", action="store_true", help="per iteration: each seed's "
                   "training return, episodes, the mean TD loss")
    p.add_argument("--tracker", action="store_true", help="catcher only: first score a "
                   "scripted tracker (paddle towards the fruit) on every stage's test tasks")
    return p.parse_args()


def run(game: str, algo: str, seeds: list[int], overrides: list[str],
        verbose: bool = False, checkpoint: Path | None = None) -> dict[str, Any]:
    """One algorithm along the stream, seeds batched (module doc). With ``checkpoint`` the
    learning state, the records, the generator and the clocks are saved there after every
    stage, and a later call with the same settings resumes from it exactly."""
    config, algo_cfg = load_config(Path(f"configs/{algo}-{game}.yaml"), overrides)
    assert isinstance(algo_cfg, StreamDQNConfig)
    family = build_family(config)
    schedule = build_schedule(config.schedule, family)
    assert isinstance(schedule, StageStream)
    n, ev = len(seeds), config.evaluation
    eval_tasks = [schedule.evaluation_tasks(j, config.schedule.eval_tasks_per_stage,
                                            torch.Generator().manual_seed(ev.seed + j))
                  for j in range(schedule.num_stages)]
    inits = []
    for s in seeds:
        torch.manual_seed(s)
        net = make_q_network(family.observation_space, family.action_space,
                             tuple(algo_cfg.dqn.hidden), algo_cfg.dqn.activation,
                             algo_cfg.dqn.dueling, algo_cfg.dqn.init)
        inits.append({k: v.detach() for k, v in named_params(net).items()})
    learner = StreamDQN(algo_cfg, family.observation_space, family.action_space, net)
    generator = torch.Generator().manual_seed(seeds[0] * 1000 + n)
    records = [StreamRecord(schedule.num_stages) for _ in seeds]
    shapes = family.make_env(family.sample(n, "train", torch.Generator().manual_seed(0)), 1)
    state = learner.begin(shapes)  # (shapes only: no draw from `generator`)
    state.params = {k: torch.stack([p[k] for p in inits]) for k in inits[0]}
    state.target = {k: v.clone() for k, v in state.params.items()}
    state.opt = learner.optimizer.init(state.params)
    first, spent = 0, (0.0, 0.0)
    saved = _load_checkpoint(checkpoint, algo, game, seeds, overrides)
    if saved is not None:  # resume after the last stage it saved
        state.load_state_dict(saved["state"])
        for record, r in zip(records, saved["records"], strict=True):
            record.load_state_dict(r)
        generator.set_state(saved["generator"])
        first, spent = saved["iteration"], saved["spent"]
        print(f"{algo} {game}: resumed after iteration {first}", flush=True)
    t0, c0 = time.perf_counter(), time.process_time()
    for it in range(first, schedule.total_iterations):
        tasks = schedule.tasks(it, n, generator)
        env = family.make_env(tasks, 1)
        learner.losses.clear()
        played = play_online(env, learner, algo_cfg.env_steps, generator, state=state)
        state = played.state
        if verbose:
            _progress(algo, it, played, learner.losses, algo_cfg.dqn.epsilon(state.steps),
                      _mean_max_q(learner, state))
        done = schedule.completed_stage(it + 1)
        if done is None:
            continue
        scores = torch.stack([_scores(family, learner, state.params, i, tasks_j, ev.episodes,
                                      ev.seed + j)
                              for j, tasks_j in enumerate(eval_tasks)
                              for i in range(n)]).view(len(eval_tasks), n, -1)
        for i, record in enumerate(records):
            record.record(done, [scores[j, i] for j in range(len(eval_tasks))])
        wall, cpu = spent[0] + time.perf_counter() - t0, spent[1] + time.process_time() - c0
        print(f"{algo} {game}: stage {done} done, {wall:.0f} s wall, {cpu:.0f} s CPU, "
              "retained "
              f"{[round(float(r.metrics()['retained']['mean'] or 0), 2) for r in records]}",
              flush=True)
        if checkpoint is not None:
            atomic_write(checkpoint, partial(torch.save, {
                "algo": algo, "game": game, "seeds": seeds, "overrides": overrides,
                "iteration": it + 1, "state": state.state_dict(),
                "records": [r.state_dict() for r in records],
                "generator": generator.get_state(), "spent": (wall, cpu)}))
    out: dict[str, Any] = {"algo": algo, "game": game, "seeds": seeds,
                           "overrides": overrides,
                           "wall_s": spent[0] + time.perf_counter() - t0,
                           "cpu_s": spent[1] + time.process_time() - c0,
                           "stages": schedule.describe()}
    for name in METRICS:
        values = torch.tensor([float(r.metrics()[name]["mean"] or 0.0) for r in records],
                              dtype=torch.float64)
        mean, ci = mean_ci95(values)
        out[name] = {"mean": float(mean), "ci95": float(ci), "per_seed": values.tolist()}
    mats = [r.mean_matrix() for r in records]
    out["curve_seed_mean"] = [[sum(float(m[i][j] or 0.0) for m in mats) / n
                               for j in range(len(mats[0]))] for i in range(len(mats[0]))]
    return out


@torch.no_grad()
def tracker_returns(overrides: list[str]) -> list[float]:
    """Catcher's ceiling, roughly: a scripted tracker — push the paddle towards the fruit's
    x (a dead band of 2% of the screen) — scored like the learners (the same test tasks of
    every stage, ``evaluation.episodes`` episodes each, the same reset seeds); its mean
    return per stage."""
    config, _ = load_config(Path("configs/dqn-stream-catcher.yaml"), overrides)
    family = build_family(config)
    schedule = build_schedule(config.schedule, family)
    ev, out = config.evaluation, []
    for j in range(schedule.num_stages):
        tasks = schedule.evaluation_tasks(j, config.schedule.eval_tasks_per_stage,
                                          torch.Generator().manual_seed(ev.seed + j))
        env = family.make_env(tasks, ev.episodes)
        obs = env.reset(torch.Generator().manual_seed(ev.seed + j))
        total = torch.zeros(env.num_tasks, env.episodes_per_task)
        live = torch.ones_like(total, dtype=torch.bool)
        for _ in range(env.horizon):
            gap = obs[..., 2] - obs[..., 0]  # fruit x - paddle x, over the screen width
            res = env.step(torch.where(gap > 0.02, 2, torch.where(gap < -0.02, 0, 1)))
            total += res.reward * live
            live &= ~(res.terminated | res.truncated)
            obs = res.observation
        out.append(float(total.mean()))
    return out


def _load_checkpoint(path: Path | None, algo: str, game: str, seeds: list[int],
                     overrides: list[str]) -> dict[str, Any] | None:
    """The checkpoint :func:`run` left at ``path``, if any; one written with other settings
    is refused (resuming it would mix two experiments)."""
    if path is None or not path.exists():
        return None
    saved: dict[str, Any] = torch.load(path, weights_only=True)
    ours = {"algo": algo, "game": game, "seeds": seeds, "overrides": overrides}
    theirs = {k: saved[k] for k in ours}
    if theirs != ours:
        raise SystemExit(f"{path} holds another run ({theirs}, this one: {ours}); "
                         "use another --out or --fresh")
    return saved


@torch.no_grad()
def _mean_max_q(learner: StreamDQN, state: Any) -> list[float]:
    """Each seed's mean of ``max_a Q(s, a)`` over 256 states of its memory (fixed draws):
    where Q-values drift or diverge, it shows."""
    batch = state.memory.sample(256, torch.Generator().manual_seed(0))
    return learner.network(batch.obs, state.params).amax(-1).mean(-1).tolist()


def _progress(algo: str, it: int, played: Any, losses: list[float], eps: float,
              q: list[float]) -> None:
    """One iteration's training episodes per seed (mean and best return, count), the
    mean TD loss of its updates (all seeds together) and each seed's mean max Q."""
    log, cells = played.episodes, []
    for i in range(int(played.steps.shape[0])):
        r = log.of_task(i)[1]
        cells.append(f"{float(r.mean()):6.2f}/{float(r.max()):5.1f}/{len(r):3d}" if len(r)
                     else "   -")
    loss = sum(losses) / len(losses) if losses else float("nan")
    print(f"{algo} it {it}: eps {eps:.3f} td_loss {loss:.4f} max-Q "
          + " ".join(f"{v:.2f}" for v in q) + " return mean/max/episodes "
          + "  ".join(cells), flush=True)


def _scores(family: Any, learner: StreamDQN, params: dict[str, torch.Tensor], i: int,
            tasks: Any, episodes: int, seed: int) -> torch.Tensor:
    """Learner ``i``'s greedy return on each of ``tasks`` (``episodes`` episodes each)."""
    env = family.make_env(tasks, episodes)
    mine = {k: v[i].expand(len(tasks), *v.shape[1:]).clone() for k, v in params.items()}
    return greedy_returns(env, GreedyQActor(learner.network, mine), seed)


def fmt(m: dict[str, float]) -> str:
    return f"{m['mean']:.2f} ± {m['ci95']:.2f}"


def main() -> None:
    torch.set_num_threads(1)
    a = parse()
    overrides = list(a.set)
    if a.quick:
        a.seeds = 2
        overrides += ["schedule.num_stages=2", "schedule.iterations_per_stage=2",
                      "iterations=4", "algorithm.env_steps=300",
                      "algorithm.dqn.learning_starts=100"]
    seeds = list(range(1, a.seeds + 1))
    if a.tracker:
        if a.game != "catcher":
            raise SystemExit("--tracker: catcher only")
        per_stage = tracker_returns(overrides)
        print("scripted tracker, return per stage: "
              + "  ".join(f"{v:.2f}" for v in per_stage)
              + f"; mean over stages {sum(per_stage) / len(per_stage):.2f}", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for algo in a.algos:
        path = a.out / f"{algo}-{a.game}-seeds{a.seeds}{'-quick' if a.quick else ''}.json"
        if path.exists() and not a.fresh:
            rows.append(json.loads(path.read_text()))
            continue
        ckpt = path.with_suffix(".ckpt.pt")
        if a.fresh:
            ckpt.unlink(missing_ok=True)
        row = run(a.game, algo, seeds, overrides, a.verbose, ckpt)
        atomic_write_json(path, row)
        rows.append(row)
    print(f"\n{a.game}: {len(seeds)} seeds (mean ± 95% CI over seeds)\n")
    print("| algorithm | retained return (all stages, end) | learning return | backward "
          "transfer | forgetting | wall s | CPU s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['algo']} | {fmt(r['retained'])} | {fmt(r['learning'])} | "
              f"{fmt(r['backward_transfer'])} | {fmt(r['forgetting'])} | {r['wall_s']:.0f} | "
              f"{r['cpu_s']:.0f} |")
    print("\nforgetting curve (return on stage j after stage i, mean over seeds):")
    for r in rows:
        print(f"  {r['algo']}:")
        for i, row in enumerate(r["curve_seed_mean"]):
            print(f"    after stage {i}: " + "  ".join(f"{v:6.2f}" for v in row))


if __name__ == "__main__":
    main()
