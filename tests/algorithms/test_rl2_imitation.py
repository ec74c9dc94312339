"""RL²'s imitation stage (DAgger from a classic algorithm): the loss, the teacher following
the trial actually played, the phases imitation -> critic warm-up -> PPO, exact resume,
config errors, and that imitation learns the teacher's behaviour."""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from test_rl2 import run  # the meta-iteration loop of the RL² tests

from adaptrl.agents.classic.tabular import BEB, MDPCounts, MDPTeacher, RandomMDP, run_mdp
from adaptrl.agents.classic.teachers import build_teacher
from adaptrl.algorithms.rl2 import RL2, RL2Config
from adaptrl.errors import UserError
from adaptrl.evaluation.statistics import mean_ci95
from adaptrl.experiment.learners import build_learner
from adaptrl.models.recurrent import RecurrentPolicy
from adaptrl.rollouts.imitation import LabellingPolicy, TeacherEnv, imitation_loss
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.rollouts.trial_sampler import Trials, flatten_trials, sample_trials
from adaptrl.tasks.bandits import BanditBernoulli
from adaptrl.tasks.tabular_mdp import TabularMDP

CPU = torch.device("cpu")
SMALL = TabularMDP(num_states=3, num_actions=2, horizon=3, trial_length=2)
IMITATE = {"meta_batch_size": 8, "policy": {"hidden_size": 16, "value_trunk": "separate"},
           "ppo": {"epochs": 2, "minibatches": 2},
           "imitation": {"teacher": "beb", "params": {"beta": 1.0}, "iterations": 2,
                         "epochs": 2, "minibatches": 2}}


def learner(family: Any = SMALL, seed: int = 0, **overrides: Any) -> RL2:
    cfg = RL2Config(**{**IMITATE, **overrides})
    return build_learner(family, cfg, torch.Generator().manual_seed(seed), CPU, init_seed=seed)


# -- the loss ---------------------------------------------------------------------------
def test_imitation_loss_is_the_cross_entropy_over_live_steps() -> None:
    logits = torch.tensor([[[0.0, math.log(3.0)]], [[2.0, 0.0]], [[5.0, -5.0]]])  # [T=3, 1, A=2]
    targets = torch.tensor([[[0.0, 1.0]], [[0.5, 0.5]], [[0.0, 1.0]]])
    masks = torch.tensor([[1.0], [1.0], [0.0]])  # the last step is padding
    loss, stats = imitation_loss(logits, targets, masks)
    p = torch.softmax(torch.tensor([2.0, 0.0]), 0)
    expected = (-math.log(0.75) - 0.5 * (math.log(p[0]) + math.log(p[1]))) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    # step 0: arg-max 1, a teacher action; step 1: arg-max 0, also one (0.5); padding ignored
    assert float(stats["agreement"]) == pytest.approx(1.0)
    # KL = cross-entropy less the labels' entropy (ln 2 at the tied step)
    assert float(stats["kl"]) == pytest.approx(expected - math.log(2.0) / 2, rel=1e-6)
    wrong = torch.tensor([[[0.0, 1.0]], [[0.0, 1.0]], [[1.0, 0.0]]])
    assert float(imitation_loss(logits, wrong, masks)[1]["agreement"]) == pytest.approx(0.5)


def test_counts_update_skips_instances_that_are_not_live() -> None:
    counts = MDPCounts.empty(2, 2, 2, horizon=3)
    counts.update(torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([2.0, 5.0]),
                  torch.tensor([1, 1]), live=torch.tensor([True, False]))
    assert counts.visits[0, 0, 1] == 1 and counts.visits[1].sum() == 0
    assert counts.transitions[0, 0, 1, 1] == 1 and counts.transitions[1].sum() == 0
    assert counts.reward_sum[0, 0, 1] == 2.0 and counts.reward_sum[1].sum() == 0


# -- the teacher follows the trial ------------------------------------------------------
def _labelled_trial(teacher: MDPTeacher, family: TabularMDP, tasks: Any, trials: int,
                    beta: float, seed: int) -> tuple[Trials, torch.Tensor]:
    policy = RecurrentPolicy(family.observation_space, family.action_space, 8,
                             transition_input=True)
    env = TeacherEnv(family.make_env(tasks, trials), teacher)
    labeller = LabellingPolicy(policy, env, beta)
    out = sample_trials(env, labeller, None, family.trial_length,
                        torch.Generator().manual_seed(seed))
    return out, labeller.stacked_labels(out.steps.masks.shape[0])


def test_teacher_counts_are_those_of_the_trial_played() -> None:
    family = TabularMDP(num_states=4, num_actions=3, horizon=5, trial_length=3)
    tasks = family.sample(6, "train", torch.Generator().manual_seed(0))
    teacher = MDPTeacher(RandomMDP(), 4, 3, 5)
    trials, labels = _labelled_trial(teacher, family, tasks, trials=2, beta=0.0, seed=1)
    assert labels.shape == (15, 6, 2, 3)
    assert torch.allclose(labels, torch.full_like(labels, 1 / 3))  # the random teacher's
    states = trials.steps.observations.argmax(-1)  # [T, tasks, trials]
    actions = trials.steps.actions
    counts = teacher.counts
    assert counts is not None
    visits = counts.visits.reshape(6, 2, 4, 3)
    rewards = counts.reward_sum.reshape(6, 2, 4, 3)
    for n in range(6):
        for m in range(2):
            expected = torch.zeros(4, 3)
            expected_r = torch.zeros(4, 3)
            for t in range(15):
                expected[states[t, n, m], actions[t, n, m]] += 1
                expected_r[states[t, n, m], actions[t, n, m]] += trials.steps.rewards[t, n, m]
            assert torch.equal(visits[n, m], expected)
            assert torch.allclose(rewards[n, m], expected_r, atol=1e-5)
    # transitions: within an episode the next state is the next observation
    trans = counts.transitions.reshape(6, 2, 4, 3, 4)
    s, a, s2 = int(states[0, 0, 0]), int(actions[0, 0, 0]), int(states[1, 0, 0])
    assert trans[0, 0, s, a, s2] >= 1
    assert float(trans.sum()) == 6 * 2 * 15


def test_teacher_acting_alone_scores_like_the_classic_algorithm() -> None:
    """beta = 1: every action is BEB's, planned from the counts the teacher kept, so the
    trial returns match :func:`run_mdp` with BEB (a different random stream) within CI;
    a broken teacher (wrong state, step or counts) plays far worse."""
    family = TabularMDP(num_states=10, num_actions=5, horizon=10, trial_length=5)
    tasks = family.sample(400, "test", torch.Generator().manual_seed(3))
    trials, _ = _labelled_trial(MDPTeacher(BEB(1.0), 10, 5, 10), family, tasks, trials=1,
                                beta=1.0, seed=4)
    ours = trials.trial_returns()[:, 0].double()
    reference = run_mdp(BEB(1.0), tasks.params["transitions"], tasks.params["reward_mean"], 5,
                        torch.Generator().manual_seed(5)).sum(1).double()
    random = run_mdp(RandomMDP(), tasks.params["transitions"], tasks.params["reward_mean"], 5,
                     torch.Generator().manual_seed(5)).sum(1).double()
    (m1, c1), (m2, c2) = mean_ci95(ours), mean_ci95(reference)
    assert abs(m1 - m2) < c1 + c2
    assert m1 > mean_ci95(random)[0] + 10


def test_labels_are_the_teachers_plan_from_the_earlier_episodes() -> None:
    """Known answer: myopic greedy's label at every step is an action of highest posterior-
    mean reward in the current state, from the rewards of the *earlier episodes* of the
    trial (it re-plans at episode starts), recomputed here from the trajectory alone."""
    family = TabularMDP(num_states=3, num_actions=3, horizon=4, trial_length=4)
    tasks = family.sample(20, "train", torch.Generator().manual_seed(2))
    teacher = MDPTeacher(build_teacher(family, "myopic_greedy", {}).agent, 3, 3, 4)
    trials, labels = _labelled_trial(teacher, family, tasks, trials=1, beta=0.5, seed=6)
    states = trials.steps.observations.argmax(-1)[:, :, 0]
    actions, rewards = trials.steps.actions[:, :, 0], trials.steps.rewards[:, :, 0]
    visits, reward_sum = torch.zeros(20, 3, 3), torch.zeros(20, 3, 3)
    rows = torch.arange(20)
    for k in range(4):
        mean = (1.0 + reward_sum) / (1.0 + visits)  # prior N(1, 1), unit noise
        for t in range(4 * k, 4 * k + 4):
            best = mean[rows, states[t]]
            top = best >= best.max(-1, keepdim=True).values - 1e-5
            label = labels[t, :, 0]
            assert torch.allclose(label.sum(-1), torch.ones(20))
            assert bool(((label > 0) <= top).all())
        for t in range(4 * k, 4 * k + 4):
            visits[rows, states[t], actions[t]] += 1
            reward_sum[rows, states[t], actions[t]] += rewards[t]


def test_a_per_step_teacher_replans_from_every_step_so_far() -> None:
    """Known answer: myopic per-step BEB's label is an action of highest posterior-mean
    reward plus bonus ``beta / (1 + n)`` in the current state, from *every* earlier step of
    the trial, the current episode's included."""
    family = TabularMDP(num_states=3, num_actions=3, horizon=4, trial_length=3)
    tasks = family.sample(20, "train", torch.Generator().manual_seed(4))
    agent = BEB(0.7, every_step=True, myopic=True)
    trials, labels = _labelled_trial(MDPTeacher(agent, 3, 3, 4), family, tasks, trials=1,
                                     beta=0.5, seed=8)
    states = trials.steps.observations.argmax(-1)[:, :, 0]
    actions, rewards = trials.steps.actions[:, :, 0], trials.steps.rewards[:, :, 0]
    visits, reward_sum = torch.zeros(20, 3, 3), torch.zeros(20, 3, 3)
    rows = torch.arange(20)
    for t in range(12):
        value = ((1.0 + reward_sum) / (1.0 + visits) + 0.7 / (1.0 + visits))[rows, states[t]]
        top = value >= value.max(-1, keepdim=True).values - 1e-5
        assert bool(((labels[t, :, 0] > 0) <= top).all())
        visits[rows, states[t], actions[t]] += 1
        reward_sum[rows, states[t], actions[t]] += rewards[t]


def test_labels_follow_the_step_of_the_episode_and_the_state() -> None:
    """A teacher whose plan names action ``(h + s) mod A`` at step ``h`` in state ``s``: every
    label is that action, in every episode of the trial."""
    family = TabularMDP(num_states=4, num_actions=3, horizon=5, trial_length=3)

    def clockwork(counts: MDPCounts, generator: torch.Generator) -> torch.Tensor:
        h = torch.arange(5).view(5, 1)
        s = torch.arange(4).view(1, 4)
        plan = torch.nn.functional.one_hot((h + s) % 3, 3).float()  # [H, S, A]
        return plan.expand(counts.visits.shape[0], -1, -1, -1)

    tasks = family.sample(7, "train", torch.Generator().manual_seed(0))
    trials, labels = _labelled_trial(MDPTeacher(clockwork, 4, 3, 5), family, tasks, trials=2,
                                     beta=0.0, seed=3)
    states = trials.steps.observations.argmax(-1)
    step = (torch.arange(15) % 5).view(15, 1, 1)
    assert torch.equal(labels.argmax(-1), (step + states) % 3)


def test_compact_with_reorders_the_labels_like_the_steps() -> None:
    T, rows, A = 4, 2, 3
    masks = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]).unsqueeze(-1)
    t = torch.arange(T, dtype=torch.float32).view(T, 1, 1).expand(T, rows, 1)
    steps = Trajectories(t.unsqueeze(-1), t.long(), t.clone(), masks, masks < 0, t.clone())
    trials = Trials(steps, t.unsqueeze(-1), episodes=2)
    labels = t.unsqueeze(-1).expand(T, rows, 1, A).clone()
    compacted, (moved,) = trials.compact_with(labels)
    assert torch.equal(moved[..., 0], compacted.steps.rewards)  # same order as the steps
    assert compacted.steps.rewards[:, 0, 0].tolist()[:2] == [0.0, 2.0]
    assert torch.equal(flatten_trials(torch.zeros(5, 3, 2, 4)), torch.zeros(5, 6, 1, 4))


# -- the learner -------------------------------------------------------------------------
def test_phases_imitation_then_critic_warmup_then_ppo() -> None:
    alg = learner(critic_warmup_iterations=1)
    critic = {k for k, _ in alg.policy.named_parameters() if k.startswith(("value.", "value_gru."))}
    before = {k: v.detach().clone() for k, v in alg.policy.named_parameters()}
    metrics = run(alg, 2)
    moved = {k for k, v in alg.policy.named_parameters() if not torch.equal(v, before[k])}
    assert all("imitation/imitation_loss" in m and "ppo/lr" not in m for m in metrics)
    assert [m["imitation/beta"] for m in metrics] == [0.0, 0.0]
    assert moved == {k for k, _ in alg.policy.named_parameters()} - critic  # the actor only
    third, fourth = run(alg, 2)
    assert third["critic_warmup"] == 1.0 and fourth["critic_warmup"] == 0.0
    assert "imitation/imitation_loss" not in third


def test_beta_anneals_from_its_start_to_zero() -> None:
    alg = learner(imitation={**IMITATE["imitation"], "beta": 0.8, "iterations": 4})
    assert [m["imitation/beta"] for m in run(alg, 4)] == pytest.approx([0.8, 0.6, 0.4, 0.2])


def test_imitation_is_deterministic_and_resumes_exactly() -> None:
    a, b = learner(seed=3), learner(seed=3)
    assert run(a, 1) == run(b, 1)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    state = a.generator.get_state()
    expected = run(a, 2)  # the last imitation iteration, then the first PPO one
    buf.seek(0)
    resumed = learner(seed=9)
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    resumed.generator.set_state(state)
    assert run(resumed, 2) == expected


def test_imitation_learns_the_teachers_actions() -> None:
    """DAgger from BEB on small MDPs: the KL from BEB's labels to the policy falls by a
    third or more (0.59 -> ~0.35 measured), the agreement rises and the policy's own trials
    earn more (a broken label, e.g. of another step or state, could not be learned so)."""
    family = TabularMDP(num_states=3, num_actions=3, horizon=4, trial_length=4)
    alg = learner(family, meta_batch_size=64, policy={"hidden_size": 32,
                                                      "value_trunk": "separate",
                                                      "transition_input": True},
                  imitation={"teacher": "beb", "params": {"beta": 1.0}, "iterations": 100,
                             "lr": 0.01, "epochs": 4, "minibatches": 2})
    metrics = run(alg, 100)

    def mean(key: str, part: slice) -> float:
        return sum(m[key] for m in metrics[part]) / len(metrics[part])
    first, last = slice(0, 10), slice(-10, None)
    assert mean("imitation/kl", last) < 0.67 * mean("imitation/kl", first)
    assert mean("imitation/agreement", last) > mean("imitation/agreement", first) + 0.1
    assert mean("return_trial", last) > mean("return_trial", first) + 1.5


# -- configuration -----------------------------------------------------------------------
def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValidationError, match="iterations"):
        RL2Config(imitation={"teacher": "beb", "iterations": 0})
    with pytest.raises(ValidationError, match="beta"):
        RL2Config(imitation={"teacher": "beb", "iterations": 1, "beta": 1.5})
    with pytest.raises(UserError, match=r"algorithm\.imitation\.teacher: must be one of .*'beb'"):
        build_teacher(SMALL, "bebb", {})
    with pytest.raises(UserError, match=r"algorithm\.imitation\.params: beb"):
        build_teacher(SMALL, "beb", {"betta": 1.0})
    with pytest.raises(UserError, match=r"algorithm\.imitation\.params: beb"):
        build_teacher(SMALL, "beb", {"beta": -1.0})
    with pytest.raises(UserError, match="tabular-mdp"):
        build_teacher(BanditBernoulli(num_arms=3, trial_length=4), "beb", {})


def test_rl2_builds_its_own_teacher() -> None:
    """The learner takes its teacher from its config (no attachment from outside), and a
    family without teachers is refused when the learner is built."""
    alg = RL2(SMALL, RL2Config(**IMITATE), torch.Generator().manual_seed(0), CPU)
    assert isinstance(alg.teacher, MDPTeacher) and isinstance(alg.teacher.agent, BEB)
    assert RL2(SMALL, RL2Config(), torch.Generator().manual_seed(0), CPU).teacher is None
    with pytest.raises(UserError, match="tabular-mdp"):
        RL2(BanditBernoulli(num_arms=3, trial_length=4), RL2Config(**IMITATE),
            torch.Generator().manual_seed(0), CPU)
