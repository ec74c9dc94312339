"""Can MER's inner optimiser fit DQN's targets at all? A fixed-target regression check.

DQN-MER (``algorithms/dqn_mer.py``) replaces DQN's Adam step by MER's update: per-sample
SGD (step ``alpha``) through ``s`` batches of ``k`` memories plus the newest transition,
with Reptile steps ``beta`` / ``gamma`` (Riemer et al. 2019, Algorithm 1). Along a stream
it did not learn catcher while DQN did (docs/continual.md). This script separates the
optimiser from the RL loop: plain DQN (``dqn-stream``, Adam) plays ``--collect`` env steps
of the preset's first stage; its ring memory is then a fixed data set and its final
Q-network a fixed target network, so every transition has a fixed one-step target
``y = r + gamma (1 - terminated) max_a Q_target(s', a)`` (the TD targets a DQN update
sees, with the bootstrap frozen). From the same fresh initialisation each update rule
takes ``--updates`` updates (as many as a 30k-step stream takes at ``train_frequency``
4: 7,500) on draws from 80% of the transitions, and the script prints the squared TD
error on the held-out 20% along the way, and at the end the greedy return of the fitted
network on the stage's test tasks (does a fit of equal error give an equal policy?):

* ``adam`` — DQN's step: Adam (``dqn.lr``) on the mean loss of a uniform batch of 32;
* ``mer a=.. b=.. s=..`` — MER's update as DQN-MER takes it: ``s`` batches of ``k = 15``
  draws plus one "current" draw, per-sample SGD at ``alpha``, Reptile ``beta``, ``gamma = 1``,
  squared or Huber loss (``--huber``).

    OMP_NUM_THREADS=1 python benchmarks/diagnose_dqn_mer.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from adaptrl.adaptation.inner_optimizers import Adam
from adaptrl.adaptation.mer import Example, mer_batches, mer_update
from adaptrl.agents.dqn import DQNAgent, GreedyQActor, td_loss
from adaptrl.algorithms.dqn_mer import StreamDQN, StreamDQNConfig
from adaptrl.evaluation.protocol import greedy_returns
from adaptrl.experiment.config import load_config
from adaptrl.experiment.learners import build_family
from adaptrl.models.functional import Params
from adaptrl.rollouts.online import play_online
from adaptrl.rollouts.schedule import build_schedule

STAGE_0 = ["schedule.num_stages=1", "schedule.iterations_per_stage=6", "iterations=6",
           "schedule.low=1.0", "schedule.high=1.6"]


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--collect", type=int, default=10_000, help="DQN's env steps")
    p.add_argument("--updates", type=int, default=7500)
    p.add_argument("--every", type=int, default=1500, help="score every N updates")
    p.add_argument("--huber", type=float, default=None, help="Huber delta (default: squared)")
    p.add_argument("--rules", nargs="+", default=["adam", "mer:0.01:0.3:1", "mer:0.01:1:1",
                                                    "mer:0.001:1:1", "mer:0.03:1:1"],
                   help="adam, or mer:ALPHA:BETA:S")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args()


def main() -> None:
    torch.set_num_threads(1)
    a = parse()
    config, cfg = load_config(Path("configs/dqn-stream-catcher.yaml"), STAGE_0)
    assert isinstance(cfg, StreamDQNConfig)
    family = build_family(config)
    schedule = build_schedule(config.schedule, family)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    network = DQNAgent(cfg.dqn, family.observation_space, family.action_space).network
    learner = StreamDQN(cfg, family.observation_space, family.action_space, network)
    env = family.make_env(schedule.tasks(0, 1, gen), 1)
    c0 = time.process_time()
    state = play_online(env, learner, a.collect, gen).state
    data = state.memory.data
    n = int(state.memory.size[0])
    y = learner.targets(data, state)[0, :n]  # the trained net as a frozen target network
    obs, act = data.obs[0, :n], data.action[0, :n].long()
    perm = torch.randperm(n, generator=gen)
    train, test = perm[: int(0.8 * n)], perm[int(0.8 * n):]
    print(f"collected {a.collect} steps of catcher stage 0 with DQN ({n} transitions, "
          f"{time.process_time() - c0:.0f} s CPU); targets mean {float(y.mean()):.2f}, "
          f"std {float(y.std()):.2f}; held-out {len(test)}", flush=True)
    init = {k: v.clone() for k, v in learner.dqn.initial_params().items()}
    ev = config.evaluation
    test_tasks = schedule.evaluation_tasks(0, config.schedule.eval_tasks_per_stage,
                                           torch.Generator().manual_seed(ev.seed))
    test_env = family.make_env(test_tasks, ev.episodes)

    def greedy(params: Params) -> float:
        """The greedy return of ``params`` on the stage's test tasks (as the stream scores)."""
        mine = {k: v.expand(len(test_tasks), *v.shape).clone() for k, v in params.items()}
        return float(greedy_returns(test_env, GreedyQActor(network, mine), ev.seed).mean())

    target = {k: v[0] for k, v in state.target.items()}
    print(f"greedy return on the stage's test tasks: the collecting DQN {greedy(target):.2f} "
          f"(its target network), fresh weights {greedy(init):.2f}", flush=True)

    def held_out(params: Params) -> float:
        with torch.no_grad():
            q = network(obs[test], params).gather(-1, act[test].unsqueeze(-1)).squeeze(-1)
            return float((q - y[test]).square().mean())

    def loss(params: Params, ex: Example) -> torch.Tensor:
        q = network(ex["obs"].unsqueeze(0), params)[0].gather(0, ex["action"].view(1))
        return td_loss(q.view(1, 1), ex["y"].view(1, 1), a.huber)[0]

    fields = {"obs": obs, "action": act, "y": y}
    print(f"squared TD error on held-out transitions, every {a.every} updates "
          f"({'Huber ' + str(a.huber) if a.huber else 'squared'} loss for MER)")
    for rule in a.rules:
        params = {k: v.clone() for k, v in init.items()}
        g = torch.Generator().manual_seed(a.seed + 1)
        curve = [held_out(params)]
        c0 = time.process_time()
        if rule == "adam":
            opt = Adam(cfg.dqn.lr)
            p1 = {k: v.unsqueeze(0) for k, v in params.items()}
            st = opt.init(p1)
        else:
            _, alpha, beta, s = rule.split(":")
        for u in range(1, a.updates + 1):
            if rule == "adam":
                idx = train[torch.randint(0, len(train), (cfg.dqn.batch_size,), generator=g)]
                leaves = {k: v.detach().requires_grad_() for k, v in p1.items()}
                q = network(obs[idx].unsqueeze(0), leaves).gather(
                    -1, act[idx].view(1, -1, 1)).squeeze(-1)
                grads = torch.autograd.grad(td_loss(q, y[idx].unsqueeze(0), None).sum(),
                                            list(leaves.values()))
                p1, st = opt.step(p1, dict(zip(leaves, grads, strict=True)), st)
                params = {k: v[0] for k, v in p1.items()}
            else:
                si, k = int(s), 15
                idx = train[torch.randint(0, len(train), (si * k + 1,), generator=g)]
                mem = {f: v[idx[:-1]].reshape(si, k, *v.shape[1:]) for f, v in fields.items()}
                now = {f: v[idx[-1]] for f, v in fields.items()}
                batches = mer_batches(now, mem, g)
                params = {k2: v.detach() for k2, v in mer_update(
                    params, loss, batches, float(alpha), float(beta), 1.0).items()}
            if u % a.every == 0:
                curve.append(held_out(params))
        print(f"{rule:>16}: " + " ".join(f"{v:8.4f}" for v in curve)
              + f"   greedy return {greedy(params):.2f} ({time.process_time() - c0:.0f} s CPU)",
              flush=True)


if __name__ == "__main__":
    main()
