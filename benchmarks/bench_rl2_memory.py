"""Can RL²'s GRU hold the memory a random tabular MDP asks for? An imitation diagnostic.

RL² (PPO on a GRU policy) settles at ~122 on the RL² paper's MDPs with n = 10 episodes,
far below greedy / BEB (~155). This script asks whether the *policy class* is the limit,
with the reinforcement learning taken out: the same :class:`RecurrentPolicy` (same
inputs ``[s_t, a_{t-1}, r_{t-1}, d_{t-1}, clock]``, same GRU) is trained by supervised
learning to imitate an expert that only needs a memory of each (state, action)'s rewards:

* **expert** — per-step myopic greedy: in state ``s`` take an action with the highest
  posterior-mean reward ``(mu0 + sum of its rewards in s) / (1 + its tries in s)``
  (prior ``N(1, 1)``, unit noise; :meth:`MDPCounts.posterior_rewards`), updated after
  every step, no planning. It scores ~159 on these MDPs, above BEB.
* **imitation** — DAgger (Ross et al. 2011): trials are played by a mixture that takes
  the expert's action with probability ``beta`` (1 -> 0 over ``--anneal`` iterations) and
  the GRU's otherwise; every step is labelled with the expert's action *set* (its ties:
  untried actions share the prior mean), and the GRU maximises the probability it puts
  on that set (``-log sum_{a in set} pi(a)``), backpropagating through whole trials.

Printed: the expert's score, the set accuracy (the GRU's most likely action is one the
expert would take) and the trial return of the mixture while training, then the GRU's
own score on ``--instances`` held-out MDPs (mean ± 95% CI), sampling and arg-max.
If the imitation stays near RL²'s ~122 the GRU does not learn that memory in this budget
even when told the right action at every step; see docs/rl2.md.

    python benchmarks/bench_rl2_memory.py                      # GRU 128, 10 minutes
    python benchmarks/bench_rl2_memory.py --hidden 256 --seconds 1800
"""

from __future__ import annotations

import argparse
import time

import torch

from adaptrl.algorithms.rl2 import RL2Agent
from adaptrl.evaluation.classic.tabular import MDPCounts, MDPPrior
from adaptrl.evaluation.statistics import mean_ci95
from adaptrl.models.recurrent import RecurrentPolicy
from adaptrl.tasks import make
from adaptrl.tasks.base import Tasks
from adaptrl.tasks.tabular_mdp import TabularMDP


def play(family: TabularMDP, policy: RecurrentPolicy, tasks: Tasks, beta: float,
         generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One trial per MDP, acting as the expert with probability ``beta`` at every step.

    Returns the GRU inputs ``[T, N, input_dim]``, the expert's action sets ``[T, N, A]``
    (bool) and the trial returns ``[N]``.
    """
    n, horizon, episodes = len(tasks), family.horizon, family.trial_length
    steps = episodes * horizon
    env = family.make_env(tasks, 1)
    counts = MDPCounts.empty(n, family.num_states, family.num_actions, horizon)
    prior = MDPPrior()
    h = policy.initial_state((n, 1), torch.device("cpu"))
    prev_action, prev_reward, prev_done = policy.initial_feedback((n, 1), torch.device("cpu"))
    t = torch.arange(steps, dtype=torch.float32)
    clocks = torch.stack([(t % horizon) / horizon, t / steps], dim=-1)
    rows = torch.arange(n)
    inputs, labels, total = [], [], torch.zeros(n)
    for k in range(episodes):
        obs = env.reset(generator)
        for step in range(k * horizon, (k + 1) * horizon):
            state = obs[:, 0].argmax(-1)
            x = policy.encode(obs, prev_action, prev_reward, prev_done, clocks[step])
            with torch.no_grad():
                dist, h = policy.step(x, h)
            value = counts.posterior_rewards(prior)[0][rows, state]  # [N, A]
            best = value >= value.max(-1, keepdim=True).values - 1e-9
            expert = (best.float() + torch.rand(best.shape, generator=generator)).argmax(-1)
            own = policy.sample(dist, generator)[:, 0]
            action = torch.where(torch.rand(n, generator=generator) < beta, expert, own)
            result = env.step(action.unsqueeze(-1))
            next_state = result.observation[:, 0].argmax(-1)
            counts.update(state, action, result.reward[:, 0], next_state)
            inputs.append(x[:, 0])
            labels.append(best)
            total += result.reward[:, 0]
            prev_action, prev_reward = action.unsqueeze(-1), result.reward
            prev_done = (result.terminated | result.truncated).float()
            obs = result.observation
    return torch.stack(inputs), torch.stack(labels), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=128, help="GRU units")
    parser.add_argument("--head", type=int, nargs="*", default=[], help="head hidden layers")
    parser.add_argument("--episodes", type=int, default=10, help="n: episodes per trial")
    parser.add_argument("--seconds", type=float, default=600.0, help="training budget")
    parser.add_argument("--batch", type=int, default=256, help="MDPs (trials) per iteration")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    parser.add_argument("--anneal", type=int, default=200,
                        help="iterations over which beta goes from 1 (expert) to 0 (GRU)")
    parser.add_argument("--instances", type=int, default=1000, help="held-out test MDPs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    family = make("tabular-mdp", trial_length=args.episodes)
    policy = RecurrentPolicy(family.observation_space, family.action_space, args.hidden,
                             tuple(args.head), "relu", clock_input=True)
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed + 1)
    test = family.sample(args.instances, "test", torch.Generator().manual_seed(args.seed))
    _, _, expert = play(family, policy, test, 1.0, torch.Generator().manual_seed(args.seed))
    mean, ci = mean_ci95(expert.double())
    print(f"expert (per-step myopic greedy): {mean:.1f} ± {ci:.1f}", flush=True)
    start, iteration = time.perf_counter(), 0
    while time.perf_counter() - start < args.seconds:
        beta = max(0.0, 1.0 - iteration / args.anneal)
        tasks = family.sample(args.batch, "train", generator)
        inputs, labels, total = play(family, policy, tasks, beta, generator)
        for _ in range(4):
            dist, _ = policy.sequence(inputs)
            log_probs = torch.log_softmax(dist.logits, dim=-1)
            loss = -torch.logsumexp(log_probs.masked_fill(~labels, -1e9), dim=-1).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            optimizer.step()
        if iteration % 25 == 0:
            hit = labels.gather(-1, dist.logits.argmax(-1, keepdim=True)).float().mean()
            print(f"it {iteration:5d}  {time.perf_counter() - start:6.0f} s  beta {beta:.2f}  "
                  f"loss {loss.item():.3f}  set accuracy {hit:.3f}  "
                  f"trial return {total.mean():.1f}", flush=True)
        iteration += 1
    for deterministic in (False, True):
        agent = RL2Agent(policy, deterministic=deterministic)
        scores = agent.trial_returns(family, test, args.episodes, 1,
                                     torch.Generator().manual_seed(args.seed))
        mean, ci = mean_ci95(scores.double())
        print(f"GRU imitation ({'arg-max' if deterministic else 'sampled'} actions): "
              f"{mean:.1f} ± {ci:.1f}  after {iteration} iterations", flush=True)


if __name__ == "__main__":
    main()
