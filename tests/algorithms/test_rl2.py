"""RL² (Duan et al. 2016): config, trial-level GAE, determinism, exact resume, the agent
the evaluator scores, a CLI run, and learning on Bernoulli bandits against the classic
baselines."""

from __future__ import annotations

import io
import json
import runpy
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from adaptrl.agents.classic.bandits import Greedy, RandomBandit, run_bandit
from adaptrl.agents.classic.gittins import GittinsPolicy
from adaptrl.algorithms.registry import algorithm_spec
from adaptrl.algorithms.rl2 import (
    DEFAULT_EPISODES_PER_TRIAL,
    RL2,
    RL2Agent,
    RL2Config,
    trial_advantages,
)
from adaptrl.cli.main import app
from adaptrl.evaluation.protocol import trial_curve
from adaptrl.experiment.checkpoints import save_checkpoint
from adaptrl.experiment.config import ConfigError
from adaptrl.experiment.learners import apply_init_from
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.rollouts.trial_sampler import Trials
from adaptrl.tasks.bandits import BanditBernoulli
from adaptrl.tasks.navigation import Navigation2D
from adaptrl.tasks.tabular_mdp import TabularMDP

CPU = torch.device("cpu")
TINY = {"meta_batch_size": 8, "policy": {"hidden_size": 16},
        "ppo": {"epochs": 2, "minibatches": 2}}


def learner(family: Any, seed: int = 0, **overrides: Any) -> RL2:
    torch.manual_seed(seed)  # the trainer seeds the initialisation the same way
    cfg = RL2Config(**{**TINY, **overrides})
    return RL2(family, cfg, torch.Generator().manual_seed(seed), CPU)


def run(alg: RL2, iterations: int) -> list[dict[str, float]]:
    out = []
    for _ in range(iterations):
        tasks = alg.family.sample(alg.config.meta_batch_size, "train", alg.generator)
        out.append(alg.meta_update(tasks))
    return out


# -- config ---------------------------------------------------------------------------------
def test_config_is_registered_and_strict() -> None:
    spec = algorithm_spec("rl2")
    assert spec.config_cls is RL2Config and spec.build is RL2
    with pytest.raises(ValidationError, match="lr_typo"):
        RL2Config(ppo={"lr_typo": 1.0})
    with pytest.raises(ValidationError, match="extra"):
        RL2Config(trials=3)
    with pytest.raises(ValidationError, match="episodes_per_trial"):
        RL2Config(episodes_per_trial=0)
    with pytest.raises(ValidationError, match="head_hidden"):
        RL2Config(policy={"head_hidden": [0]})


def test_episodes_per_trial_default() -> None:
    assert learner(BanditBernoulli(3, trial_length=7)).episodes_per_trial == 7
    assert learner(TabularMDP(trial_length=4)).episodes_per_trial == 4
    assert learner(Navigation2D()).episodes_per_trial == DEFAULT_EPISODES_PER_TRIAL
    assert learner(BanditBernoulli(3, 7), episodes_per_trial=3).episodes_per_trial == 3


# -- the trial as one episode -------------------------------------------------------------
def test_trial_advantages_span_episodes_and_skip_padding() -> None:
    """Known answer: with V = 0 and lambda = 1 the advantage is the discounted rest of the
    *trial*, across an episode end and over the padding left by an early termination."""
    masks = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0]).view(5, 1, 1)  # episode 1 ends at t=1
    rewards = torch.tensor([1.0, 2.0, 0.0, 4.0, 8.0]).view(5, 1, 1)
    terminated = torch.tensor([False, True, False, False, False]).view(5, 1, 1)
    steps = Trajectories(torch.zeros(5, 1, 1, 1), torch.zeros(5, 1, 1, dtype=torch.long),
                         rewards, masks, terminated, torch.zeros(5, 1, 1))
    trials = Trials(steps, torch.zeros(5, 1, 1, 3), episodes=1).compact()
    adv = trial_advantages(trials, torch.zeros(5, 1, 1), gamma=0.5, lam=1.0)
    want = torch.tensor([1 + 0.5 * 2 + 0.25 * 4 + 0.125 * 8, 2 + 0.5 * 4 + 0.25 * 8,
                         4 + 0.5 * 8, 8, 0])
    assert torch.allclose(adv.flatten(), want)
    scaled = trial_advantages(trials, torch.zeros(5, 1, 1), gamma=0.5, lam=1.0, reward_scale=0.1)
    assert torch.allclose(scaled.flatten(), 0.1 * want)
    # with values: one-step TD errors chained across the boundary
    values = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0]).view(5, 1, 1)
    td = trial_advantages(trials, values, gamma=0.5, lam=0.0).flatten()
    assert torch.allclose(td[:4], torch.tensor([1 + 0.5 - 1, 2 + 0.5 - 1, 4 + 0.5 * 1 - 1,
                                                8 - 1.0]))


# -- the optional clock input --------------------------------------------------------------
def test_clock_input_reports_episode_and_trial_progress() -> None:
    """Known answer: with ``clock_input`` the last two GRU inputs of step ``t`` of a trial
    of 2 episodes of horizon 3 are ``(t mod 3) / 3`` and ``t / 6``; the update's re-run of
    the stored inputs reproduces the sampled log-probs."""
    family = TabularMDP(num_states=3, num_actions=2, horizon=3, trial_length=2)
    alg = learner(family, policy={"hidden_size": 8, "clock_input": True})
    assert alg.policy.input_dim == 3 + 2 + 2 + 2
    tasks = family.sample(4, "train", alg.generator)
    trials = alg.agent().trials(family, tasks, 2, 1, alg.generator)
    t = torch.arange(6.0)
    want = torch.stack([(t % 3) / 3, t / 6], -1).view(6, 1, 1, 2).expand(6, 4, 1, 2)
    assert torch.allclose(trials.inputs[..., -2:], want)
    dist, _ = alg.policy.sequence(trials.inputs)
    assert torch.allclose(dist.log_prob(trials.steps.actions), trials.steps.log_probs, atol=1e-5)
    with pytest.raises(ValueError, match="clock"):
        alg.policy.encode(torch.zeros(1, 3), torch.tensor([0]), torch.zeros(1), torch.zeros(1))
    plain = learner(family).policy  # without the option the clock is ignored
    x = plain.encode(torch.zeros(1, 3), torch.tensor([0]), torch.zeros(1), torch.zeros(1),
                     torch.ones(2))
    assert x.shape == (1, plain.input_dim) == (1, 3 + 2 + 2)


def test_transition_input_reports_the_previous_state_and_action() -> None:
    """The sampler offers the observation at which the previous action was taken, also
    across an episode boundary: step ``t``'s pair block is ``[1, onehot(s_{t-1})] (x)
    onehot(a_{t-1})`` (zeros at ``t = 0``), its reward block that times ``r_{t-1}``; the
    update's re-run of the stored inputs reproduces the sampled log-probs."""
    family = TabularMDP(num_states=3, num_actions=2, horizon=3, trial_length=2)
    alg = learner(family, policy={"hidden_size": 8, "transition_input": True})
    assert alg.policy.input_dim == 3 + 2 + 2 + 2 * (1 + 3) * 2
    tasks = family.sample(4, "train", alg.generator)
    trials = alg.agent().trials(family, tasks, 2, 1, alg.generator)
    steps = trials.steps
    key = torch.cat([torch.ones_like(steps.observations[..., :1]), steps.observations], -1)
    pair = (key.unsqueeze(-1)
            * torch.nn.functional.one_hot(steps.actions, 2).unsqueeze(-2)).flatten(-2)
    want = torch.cat([torch.zeros_like(pair[:1]), pair[:-1]])
    reward = torch.cat([torch.zeros_like(steps.rewards[:1]), steps.rewards[:-1]]).unsqueeze(-1)
    assert torch.equal(trials.inputs[..., 7:15], want)
    assert torch.allclose(trials.inputs[..., 15:], want * reward)
    assert want[3].sum() == 8  # the first step of episode 2 sees episode 1's last transition
    dist, _ = alg.policy.sequence(trials.inputs)
    assert torch.allclose(dist.log_prob(trials.steps.actions), trials.steps.log_probs, atol=1e-5)


# -- meta-update, determinism, resume -----------------------------------------------------
def test_meta_update_metrics() -> None:
    family = BanditBernoulli(3, trial_length=5)
    alg = learner(family, trials_per_task=2)
    (m,) = run(alg, 1)
    assert alg.env_steps == 8 * 2 * 5 and m["env_steps_iteration"] == 80
    assert 0 <= m["return_trial"] <= 5
    assert 0 <= m["return_first_episode"] <= 1 and 0 <= m["return_last_episode"] <= 1
    assert {"ppo/policy_loss", "ppo/value_loss", "ppo/entropy", "ppo/approx_kl"} <= set(m)


@pytest.mark.parametrize("family", [BanditBernoulli(3, 4), Navigation2D(horizon=6)],
                         ids=["bandit", "navigation"])
def test_same_seed_same_metrics(family: Any) -> None:
    a = run(learner(family, seed=5), 3)
    b = run(learner(family, seed=5), 3)
    c = run(learner(family, seed=6), 3)
    assert a == b
    assert a != c


def test_state_dict_round_trip_reproduces_the_next_update() -> None:
    family = TabularMDP(num_states=3, num_actions=2, horizon=3, trial_length=2)
    alg = learner(family, seed=1)
    run(alg, 2)
    buf = io.BytesIO()
    torch.save(alg.state_dict(), buf)
    gen_state = alg.generator.get_state()
    expected = run(alg, 1)[0]
    buf.seek(0)
    resumed = learner(family, seed=99)  # other initial weights: all must come from the state
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    resumed.generator.set_state(gen_state)
    assert run(resumed, 1)[0] == expected
    for k, v in alg.policy.state_dict().items():
        assert torch.equal(v, resumed.policy.state_dict()[k])


def test_critic_warmup_fits_the_critic_and_leaves_the_policy() -> None:
    family = TabularMDP(num_states=3, num_actions=2, horizon=3, trial_length=2)
    alg = learner(family, critic_warmup_iterations=2, policy={"hidden_size": 16,
                                                             "value_trunk": "separate"})
    critic = {id(p) for p in alg.policy.critic_parameters()}

    def snapshot() -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in alg.policy.named_parameters()}

    def moved(before: dict[str, torch.Tensor]) -> set[str]:
        return {k for k, v in alg.policy.named_parameters() if not torch.equal(v, before[k])}

    actor = {k for k, v in alg.policy.named_parameters() if id(v) not in critic}
    start = snapshot()
    metrics = run(alg, 2)
    assert [m["critic_warmup"] for m in metrics] == [1.0, 1.0]
    assert all(m["ppo/approx_kl"] == 0.0 for m in metrics)
    assert moved(start) == {k for k, _ in alg.policy.named_parameters()} - actor
    after_warmup = snapshot()
    assert run(alg, 1)[0]["critic_warmup"] == 0.0
    assert moved(after_warmup) >= actor  # then the whole policy trains
    # ... with the critic's Adam state carried over: 2 warm-up + 1 full iteration of
    # 2 epochs x 2 minibatches are 12 steps for a critic weight, 4 for an actor weight
    steps = {k: int(alg.optimizer.state[p]["step"]) for k, p in alg.policy.named_parameters()}
    assert {steps[k] for k in steps if k not in actor} == {12}
    assert {steps[k] for k in actor} == {4}


def test_privileged_critic_reads_the_task_and_fits_the_value_better() -> None:
    """``critic_task_input``: the critic GRU reads every trial's arm probabilities, so its
    value loss (random policy, critic only) falls well below the plain separate critic's,
    which must infer them from the trial."""
    family = BanditBernoulli(5, trial_length=10)

    def value_loss(privileged: bool) -> float:
        alg = learner(family, meta_batch_size=64, critic_warmup_iterations=100,
                      policy={"hidden_size": 16, "value_trunk": "separate",
                              "critic_task_input": privileged},
                      ppo={**TINY["ppo"], "lr": 0.003})
        losses = [m["ppo/value_loss"] for m in run(alg, 40)]
        if privileged:
            assert alg.policy.value_gru.input_size == alg.policy.input_dim + 5
        return sum(losses[-10:]) / 10

    assert value_loss(True) < 0.8 * value_loss(False)
    alg = learner(family, trials_per_task=2, policy={"hidden_size": 16, "value_trunk":
                                                     "separate", "critic_task_input": True})
    assert run(alg, 1)[0]["ppo/approx_kl"] > 0  # trains with several trials per task
    with pytest.raises(ValidationError, match="critic_task_input: true needs value_trunk"):
        RL2Config(policy={"critic_task_input": True})


def test_init_critic_false_takes_only_the_actor(tmp_path: Path) -> None:
    family = TabularMDP(num_states=3, num_actions=2, horizon=3, trial_length=2)
    source = learner(family, seed=3)  # shared trunk
    (tmp_path / "src" / "checkpoints").mkdir(parents=True)
    save_checkpoint({"learner": source.state_dict()},
                    tmp_path / "src" / "checkpoints" / "best.pt")
    alg = learner(family, seed=4, init_from=str(tmp_path / "src"), init_critic=False,
                  policy={"hidden_size": 16, "value_trunk": "separate"})
    critic = {k: v.clone() for k, v in alg.policy.state_dict().items() if k.startswith("value")}
    apply_init_from(alg, alg.config)
    for k, v in alg.policy.state_dict().items():
        expected = critic[k] if k.startswith("value") else source.policy.state_dict()[k]
        assert torch.equal(v, expected), k


def test_init_widen_continues_a_narrower_agent_unchanged(tmp_path: Path) -> None:
    family = TabularMDP(num_states=3, num_actions=2, horizon=3, trial_length=2)
    source = learner(family, seed=3, policy={"hidden_size": 8, "value_trunk": "separate"})
    (tmp_path / "src" / "checkpoints").mkdir(parents=True)
    save_checkpoint({"learner": source.state_dict()},
                    tmp_path / "src" / "checkpoints" / "best.pt")
    wide = {"hidden_size": 16, "value_trunk": "separate"}
    refused = learner(family, init_from=str(tmp_path / "src"), policy=wide)
    with pytest.raises(ConfigError, match="8 units.*init_widen: true"):
        apply_init_from(refused, refused.config)
    alg = learner(family, seed=4, init_from=str(tmp_path / "src"), init_widen=True, policy=wide)
    apply_init_from(alg, alg.config)
    x = torch.randn(6, 5, source.policy.input_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        (d_src, v_src), (d_new, v_new) = source.policy.sequence(x), alg.policy.sequence(x)
    assert alg.policy.hidden_size == 16
    assert torch.allclose(d_src.logits, d_new.logits, atol=1e-6)
    assert torch.allclose(v_src, v_new, atol=1e-6)


# -- the agent the evaluator scores ---------------------------------------------------------
def test_agent_scores_per_episode_and_per_trial() -> None:
    family = Navigation2D(horizon=5)
    agent = learner(family).agent()
    assert agent.unit == "episodes"
    tasks = family.sample(4, "test", torch.Generator().manual_seed(0))
    per_episode = trial_curve(family, agent, tasks, 2, 2, torch.Generator().manual_seed(1), CPU)
    per_trial = agent.trial_returns(family, tasks, 3, 2, torch.Generator().manual_seed(1), CPU)
    assert per_episode.shape == (3, 4) and per_trial.shape == (4,)
    assert torch.allclose(per_episode.sum(0), per_trial)
    assert (per_episode < 0).all()  # minus a distance at every step


def test_test_actions_mode_plays_the_most_likely_action_and_training_still_samples() -> None:
    family = BanditBernoulli(4, trial_length=6)
    assert learner(family).agent().deterministic is False
    alg = learner(family, seed=3, test_actions="mode")
    tasks = family.sample(16, "test", torch.Generator().manual_seed(0))
    trials = alg.agent().trials(family, tasks, 6, 1, torch.Generator().manual_seed(1), CPU)
    with torch.no_grad():
        dist, _ = alg.policy.sequence(trials.inputs.reshape(6, 16, -1))
    assert torch.equal(trials.steps.actions.reshape(6, 16), dist.logits.argmax(-1))
    # the untrained policy is near uniform: a sampling learner leaves its arg-max often
    training = RL2Agent(alg.policy).trials(family, tasks, 6, 1,
                                           torch.Generator().manual_seed(1), CPU)
    assert not torch.equal(training.steps.actions.reshape(6, 16), dist.logits.argmax(-1))
    with pytest.raises(ValidationError, match="test_actions"):
        RL2Config(test_actions="greedy")


def test_cli_train_and_evaluate(tmp_path: Path) -> None:
    cfg = {"name": "rl2-tiny", "seed": 0, "iterations": 2, "checkpoint_every": 1,
           "family": {"name": "bandit-bernoulli", "params": {"num_arms": 3, "trial_length": 4}},
           "algorithm": {"name": "rl2", **TINY},
           "evaluation": {"num_tasks": 5, "steps": 3, "episodes": 2, "baselines": ["oracle"]},
           "logging": {"tensorboard": False, "progress": False}}
    path = tmp_path / "rl2.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["train", str(path), "--run-dir", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    ev = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert ev["unit"] == "episodes" and ev["algorithm"] == "rl2"
    assert len(ev["methods"]["agent"]["mean"]) == 4
    # the paper's table row for this setting: RL² beside the classic algorithms, scored on
    # the same instances, with a paired difference against each of them
    (row,) = ev["table"]["settings"]
    assert (row["n"], row["k"]) == (4, 3)
    assert set(row["rl2_minus"]) == set(row["methods"]) - {"rl2"}
    for name, diff in row["rl2_minus"].items():
        gap = row["methods"]["rl2"]["mean"] - row["methods"][name]["mean"]
        assert diff["mean"] == pytest.approx(gap, abs=1e-9) and diff["ci95"] > 0
    assert "on the same instances (paired 95% CI)" in res.output


def test_episode_gap_example_splits_the_tables_paired_figure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
        ) -> None:
    """examples/rl2_episode_gap.py replays the table's instances and random streams: its
    per-episode differences add up to the table's paired RL² - BEB figure."""
    cfg = {"name": "rl2-mdp-tiny", "seed": 0, "iterations": 1,
           "family": {"name": "tabular-mdp", "params": {"num_states": 4, "num_actions": 2,
                                                         "horizon": 3, "trial_length": 5}},
           "algorithm": {"name": "rl2", **TINY, "test_actions": "mode"},
           "evaluation": {"num_tasks": 40, "steps": 4, "episodes": 1, "baselines": [],
                          "seed": 7},
           "logging": {"tensorboard": False, "progress": False}}
    path = tmp_path / "mdp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["train", str(path), "--run-dir", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    (row,) = json.loads((tmp_path / "run" / "eval.json").read_text())["table"]["settings"]
    script = Path(__file__).parents[2] / "examples" / "rl2_episode_gap.py"
    monkeypatch.setattr("sys.argv", [str(script), str(tmp_path / "run"), "--seed", "7"])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    per_episode = [float(x) for x in out.split("per episode:")[1].split("\n")[0].split()]
    whole = float(out.split("whole trial:")[1].split("±")[0])
    assert len(per_episode) == 5
    assert sum(per_episode) == pytest.approx(row["rl2_minus"]["beb"]["mean"], abs=0.02)
    assert whole == pytest.approx(row["rl2_minus"]["beb"]["mean"], abs=0.006)


# -- learning ---------------------------------------------------------------------------------
# The RL² paper's bandits (§4.1): k = 5 arms, p_i ~ U[0, 1], a trial of n = 10 pulls.
# At n = 10 the posterior-mean greedy rule (untried arm = 0.5) is already within 0.02 of
# the Gittins index (Bayes-optimal): nothing can beat it by a margin, so the margins below
# are against random and the *empirical-mean* greedy (every arm pulled once first), and
# the trained agent must come close to Gittins.
BANDIT = BanditBernoulli(num_arms=5, trial_length=10)
LEARN = {"meta_batch_size": 256, "gamma": 0.99, "gae_lambda": 0.95,
         "policy": {"hidden_size": 64},
         "ppo": {"lr": 0.03, "epochs": 2, "minibatches": 2, "entropy_coef": 0.01}}


def held_out_scores(alg: RL2 | None, num: int = 4000) -> dict[str, float]:
    """Mean total reward over ``num`` held-out bandits (test split) per method."""
    g = torch.Generator().manual_seed(2024)
    tasks = BANDIT.sample(num, "test", g)
    p = tasks.params["p"]
    scores = {name: float(run_bandit(policy, p, 10, g).sum(1).mean())
              for name, policy in [("random", RandomBandit()), ("greedy", Greedy((0.0, 0.0))),
                                   ("greedy_posterior", Greedy()), ("gittins", GittinsPolicy())]}
    if alg is not None:
        scores["rl2"] = float(alg.agent().trial_returns(BANDIT, tasks, 10, 1, g, CPU).mean())
    return scores


def test_learns_bandit_fast() -> None:
    """100 iterations (~8 s on one core): a real improvement over the untrained agent."""
    alg = learner(BANDIT, seed=0, **LEARN)
    before = held_out_scores(alg, 2000)["rl2"]
    run(alg, 100)
    after = held_out_scores(alg, 2000)
    assert before < after["random"] + 0.2, (before, after)  # untrained: about uniform
    assert after["rl2"] > after["random"] + 0.6, after


@pytest.mark.slow
def test_learns_bandit_and_beats_baselines() -> None:
    """250 iterations (~30 s on one core): beats random and greedy, close to Gittins."""
    alg = learner(BANDIT, seed=0, **LEARN)
    run(alg, 250)
    s = held_out_scores(alg)
    assert s["rl2"] > s["random"] + 1.0, s
    assert s["rl2"] > s["greedy"] + 0.3, s
    assert s["rl2"] > s["gittins"] - 0.35, s
