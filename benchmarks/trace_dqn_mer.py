"""Why does DQN-MER not learn in the RL loop? A traced run of one learner on one stage.

DQN-MER (``algorithms/dqn_mer.py``) fits fixed TD targets as well as DQN's Adam step
(``benchmarks/diagnose_dqn_mer.py``), yet along the stream its Q-values stayed near 0
while DQN's rose (docs/continual.md). This script runs *one* learner (``dqn-stream``,
``dqn-er`` or ``dqn-mer``, the preset's settings plus ``--set`` overrides) on the first
stage of a game for ``--steps`` env steps, with every learning step and target refresh
instrumented, and prints every ``--every`` env steps:

* ``upd`` / ``tgt`` — parameter updates and target refreshes so far (the schedule: one
  update every ``train_frequency`` env steps after ``learning_starts``, a target copy every
  ``target_period`` env steps);
* ``maxQ`` — mean ``max_a Q(s, a)`` over 256 fixed memory states, ``gap`` the mean gap
  between the best and second-best action value there, ``greedy`` the share of those
  states in which each action is the greedy one;
* ``td`` — the mean TD loss of the updates' batches (before each update);
* ``|g|`` — the global norm of the gradient of the mean TD loss of a batch of 32 memories
  at the parameters before each update (the same measure for every learner);
* ``|dθ|`` — the norm of each update's parameter change, ``|dW|/|W|`` each weight
  matrix's change relative to its norm (input layer first), and ``|θ-θ⁻|`` the distance of
  the online parameters from the target network's;
* ``ret`` — the training episodes' mean return.

For ``dqn-mer`` it also checks every update's batches: the newest transition must sit in
each of the ``s`` batches (at least once: it is in the reservoir too, so a memory draw may
repeat it), with its real action and its target (recomputed from the target network, so
its reward and terminal flag), and no batch may hold an all-zero observation (a
placeholder row). After every update it checks that ``state.params`` — what the next
``act`` reads — is a new parameter set, not the one before. A failed check stops the run.

    OMP_NUM_THREADS=1 python benchmarks/trace_dqn_mer.py --game flappy-bird --algo dqn-mer
    OMP_NUM_THREADS=1 python benchmarks/trace_dqn_mer.py --game flappy-bird --algo dqn-stream
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from adaptrl.agents.dqn import DQNAgent, clip_per_task, td_loss
from adaptrl.algorithms.dqn_mer import StreamDQN, StreamDQNConfig, StreamDQNState
from adaptrl.experiment.config import load_config
from adaptrl.experiment.learners import build_family
from adaptrl.models.functional import Params
from adaptrl.rollouts.online import play_online
from adaptrl.rollouts.schedule import build_schedule
from adaptrl.rollouts.trial_sampler import Step

FIRST_STAGE = {"catcher": ["schedule.low=1.0", "schedule.high=1.6"],
               "flappy-bird": ["schedule.low=135", "schedule.high=150"]}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--game", choices=list(FIRST_STAGE), default="flappy-bird")
    p.add_argument("--algo", choices=["dqn-stream", "dqn-er", "dqn-mer"], default="dqn-mer")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    return p.parse_args()


def _norm(x: Params) -> float:
    return float(torch.stack([v.square().sum() for v in x.values()]).sum().sqrt())


class Trace:
    """Counts and sums between two prints, and the per-update checks (module doc)."""

    def __init__(self, learner: StreamDQN) -> None:
        self.learner = learner
        self.updates = self.targets = 0
        self.grad: list[float] = []
        self.step: list[float] = []
        self.layers: list[list[float]] = []
        self.checked = 0
        self.probe = torch.Generator().manual_seed(12345)  # the gradient probe's draws

    def install(self) -> None:
        """Wrap the learner's ``learn`` and ``mer_batches`` (instance attributes only)."""
        learn, batches = self.learner.learn, self.learner.mer_batches

        def traced_learn(state: StreamDQNState, generator: torch.Generator) -> None:
            before = dict(state.params)
            self.grad.append(self._grad_norm(state))
            learn(state, generator)
            self.updates += 1
            self.step.append(_norm({k: state.params[k] - before[k] for k in before}))
            self.layers.append([float((state.params[k] - before[k]).norm() / before[k].norm())
                                for k in before if k.endswith("weight")])
            if any(state.params[k] is before[k] for k in before):
                raise AssertionError("learn left state.params unchanged (a stale reference)")

        def traced_batches(state: StreamDQNState, generator: torch.Generator
                           ) -> dict[str, torch.Tensor]:
            out = batches(state, generator)
            self._check_batches(state, out)
            return out

        self.learner.learn = traced_learn  # type: ignore[method-assign]
        self.learner.mer_batches = traced_batches  # type: ignore[method-assign]

    def _grad_norm(self, state: StreamDQNState) -> float:
        """Norm of the gradient of a 32-memory batch's mean TD loss at ``state.params``
        (the first learner's), unclipped; the probe's draws do not touch the run's."""
        lrn, c = self.learner, self.learner.config.dqn
        batch = state.memory.sample(32, self.probe)
        y = lrn.targets(batch, state)
        leaves = {k: v.detach().requires_grad_() for k, v in state.params.items()}
        with torch.enable_grad():
            q = lrn.network(batch.obs, leaves).gather(
                -1, batch.action.long().unsqueeze(-1)).squeeze(-1)
            g = torch.autograd.grad(td_loss(q, y, c.huber_delta).sum(), list(leaves.values()))
        _, norm = clip_per_task(dict(zip(leaves, g, strict=True)), 1.0)
        return float(norm[0])

    def _check_batches(self, state: StreamDQNState, b: dict[str, torch.Tensor]) -> None:
        """The newest transition in every batch once, real (module doc)."""
        latest, m = state.latest, self.learner.config.mer
        assert latest is not None
        obs = latest.obs[0, 0]
        same = (b["obs"][0] == obs).all(-1)  # [s, k+1]
        hits = same.sum(-1)
        if not bool((hits >= 1).all()):
            raise AssertionError(f"the newest transition is missing from a batch: {hits}")
        y_now = self.learner.targets(latest, state)[0, 0]
        where = same.float().argmax(-1)
        for i in range(m.batches):
            j = int(where[i])
            if int(b["action"][0, i, j]) != int(latest.action[0, 0]) or \
                    not torch.isclose(b["y"][0, i, j], y_now, atol=1e-5):
                raise AssertionError(f"batch {i}: the newest transition's action/target "
                                     f"differ: {b['action'][0, i, j]} vs {latest.action[0, 0]}, "
                                     f"{b['y'][0, i, j]} vs {y_now}")
        if bool((b["obs"][0].abs().sum(-1) == 0).any()):
            raise AssertionError("an all-zero observation in a batch (placeholder row?)")
        self.checked += 1

    def observe_hook(self, before: Params, state: StreamDQNState) -> None:
        if any(state.target[k] is not before[k] for k in before):
            self.targets += 1

    def flush(self) -> tuple[float, float, list[float]]:
        g = sum(self.grad) / len(self.grad) if self.grad else float("nan")
        s = sum(self.step) / len(self.step) if self.step else float("nan")
        layers = torch.tensor(self.layers).mean(0).tolist() if self.layers else []
        self.grad.clear()
        self.step.clear()
        self.layers.clear()
        return g, s, layers


def main() -> None:
    torch.set_num_threads(1)
    a = parse()
    overrides = ["schedule.num_stages=1", "schedule.iterations_per_stage=6", "iterations=6",
                 *FIRST_STAGE[a.game], *a.set]
    config, cfg = load_config(Path(f"configs/{a.algo}-{a.game}.yaml"), overrides)
    assert isinstance(cfg, StreamDQNConfig)
    family = build_family(config)
    schedule = build_schedule(config.schedule, family)
    torch.manual_seed(a.seed)
    network = DQNAgent(cfg.dqn, family.observation_space, family.action_space).network
    learner = StreamDQN(cfg, family.observation_space, family.action_space, network)
    gen = torch.Generator().manual_seed(a.seed)
    trace = Trace(learner)
    trace.install()
    observe = learner.observe

    def traced_observe(step: Step, state: StreamDQNState) -> StreamDQNState:
        before = dict(state.target)
        out = observe(step, state)
        trace.observe_hook(before, out)
        return out

    learner.observe = traced_observe  # type: ignore[method-assign]
    print(f"{a.algo} on {a.game} stage 0 ({overrides}); dqn lr {cfg.dqn.lr}, mer {cfg.mer}",
          flush=True)
    state: Any = None
    c0, t0 = time.process_time(), time.perf_counter()
    returns: list[float] = []
    for done in range(a.every, a.steps + 1, a.every):
        env = family.make_env(schedule.tasks(0, 1, gen), 1)
        run = play_online(env, learner, a.every, gen, state=state)
        state = run.state
        returns += run.episodes.returns.tolist()
        losses = list(learner.losses)
        g, s, layers = trace.flush()
        with torch.no_grad():
            probe = state.memory.sample(256, torch.Generator().manual_seed(0))
            qs = learner.network(probe.obs, state.params)
            q = float(qs.amax(-1).mean())
            top2 = qs.topk(2, -1).values
            action_gap = float((top2[..., 0] - top2[..., 1]).mean())
            greedy = qs.argmax(-1).flatten()
            share = torch.bincount(greedy, minlength=qs.shape[-1]).float() / greedy.numel()
            gap = _norm({k: state.params[k] - state.target[k] for k in state.params})
        td = sum(losses) / len(losses) if losses else float("nan")
        ret = sum(returns) / len(returns) if returns else float("nan")
        print(f"step {done:6d} upd {trace.updates:5d} tgt {trace.targets:4d} "
              f"eps {cfg.dqn.epsilon(state.steps):.2f} maxQ {q:7.3f} gap {action_gap:.3f} "
              f"greedy {'/'.join(f'{v:.2f}' for v in share.tolist())} td {td:.4f} "
              f"|g| {g:.4f} |dθ| {s:.5f} |dW|/|W| {'/'.join(f'{v:.1e}' for v in layers)} "
              f"|θ-θ⁻| {gap:.4f} ret {ret:6.2f} ({len(returns)} ep)"
              f"{' batches ok ' + str(trace.checked) if trace.checked else ''}", flush=True)
        returns.clear()
        learner.losses.clear()
    print(f"{time.process_time() - c0:.0f} s CPU, {time.perf_counter() - t0:.0f} s wall",
          flush=True)


if __name__ == "__main__":
    main()
