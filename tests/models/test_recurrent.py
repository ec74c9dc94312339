"""The GRU policy of RL²: input encoding, step == sequence, functional calls, value trunks."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Independent

from adaptrl.models.functional import named_params
from adaptrl.models.recurrent import RecurrentPolicy, sub_params

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
DISCRETE = gym.spaces.Discrete(4)
BOX = gym.spaces.Box(-0.1, 0.1, (2,), np.float32)


def make(action_space: gym.Space = DISCRETE, **kw: object) -> RecurrentPolicy:
    torch.manual_seed(0)
    return RecurrentPolicy(OBS, action_space, hidden_size=8, **kw)  # type: ignore[arg-type]


def random_inputs(policy: RecurrentPolicy, T: int, batch: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(T, *batch, policy.input_dim, generator=torch.Generator().manual_seed(1))


def test_encode_discrete_layout() -> None:
    policy = make()
    obs = torch.tensor([[0.1, 0.2, 0.3]])
    x = policy.encode(obs, torch.tensor([2]), torch.tensor([0.5]), torch.tensor([1.0]))
    assert policy.input_dim == 3 + 4 + 2
    assert torch.equal(x, torch.tensor([[0.1, 0.2, 0.3, 0, 0, 1, 0, 0.5, 1.0]]))


def test_encode_box_action_is_clipped_and_rescaled() -> None:
    policy = make(BOX)
    x = policy.encode(torch.zeros(2, 3), torch.tensor([[0.05, -0.3], [0.1, 0.0]]),
                      torch.zeros(2), torch.zeros(2))
    # the env applies clip(a, -0.1, 0.1); the GRU sees it rescaled to [-1, 1]
    assert torch.allclose(x[:, 3:5], torch.tensor([[0.5, -1.0], [1.0, 0.0]]))


def test_encode_transition_features_known_answer() -> None:
    """``transition_input`` appends ``p = [1, o_{t-1}] (x) a_{t-1}`` and ``r_{t-1} p``: one
    unit per action, then one per (previous observation entry, previous action) pair."""
    policy = make(transition_input=True)
    assert policy.input_dim == 3 + 4 + 2 + 2 * (1 + 3) * 4
    obs, prev_obs = torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    x = policy.encode(obs, torch.tensor([2]), torch.tensor([0.5]), torch.tensor([0.0]),
                      prev_obs=prev_obs)
    pair = torch.zeros(16)
    pair[0 * 4 + 2] = 1.0  # the constant 1, previous action 2
    pair[2 * 4 + 2] = 1.0  # previous state 1 (entry 2 of [1, o]), previous action 2
    assert torch.equal(x[0, :9], torch.tensor([0, 0, 1, 0, 0, 1, 0, 0.5, 0]))
    assert torch.equal(x[0, 9:], torch.cat([pair, 0.5 * pair]))
    with pytest.raises(ValueError, match="prev_obs"):
        policy.encode(obs, torch.tensor([2]), torch.tensor([0.5]), torch.tensor([0.0]))
    a, r, d = policy.initial_feedback((1,), torch.device("cpu"))  # no previous transition
    assert not policy.encode(torch.zeros(1, 3), a, r, d, prev_obs=prev_obs).any()


def test_initial_state_and_feedback_are_zero() -> None:
    policy = make()
    h = policy.initial_state((2, 3), torch.device("cpu"))
    a, r, d = policy.initial_feedback((2, 3), torch.device("cpu"))
    assert h.shape == (2, 3, 8) and not h.any()
    assert a.dtype == torch.long and a.shape == (2, 3)
    assert not r.any() and not d.any()
    x = policy.encode(torch.zeros(2, 3, 3), a, r, d)
    assert not x.any()  # "no previous action" is not action 0


@pytest.mark.parametrize("action_space", [DISCRETE, BOX])
def test_sequence_equals_step_by_step(action_space: gym.Space) -> None:
    """The update's one-call sequence reproduces the sampler's step-by-step log-probs."""
    policy = make(action_space)
    x = random_inputs(policy, 6, (2, 3))
    dist_seq, values = policy.sequence(x)
    h = policy.initial_state((2, 3), torch.device("cpu"))
    acts, log_probs = [], []
    for t in range(6):
        dist, h = policy.step(x[t], h)
        acts.append(policy.sample(dist, torch.Generator().manual_seed(t)))
        log_probs.append(dist.log_prob(acts[-1]))
    assert torch.allclose(dist_seq.log_prob(torch.stack(acts)), torch.stack(log_probs),
                          atol=1e-6)
    assert values.shape == (6, 2, 3)
    assert isinstance(dist_seq, Categorical if action_space is DISCRETE else Independent)


def test_hidden_state_carries_information() -> None:
    """The action distribution depends on earlier inputs only through the hidden state."""
    policy = make()
    x = random_inputs(policy, 3, (1,))
    h0 = policy.initial_state((1,), torch.device("cpu"))
    _, h1 = policy.step(x[0], h0)
    with_memory, _ = policy.step(x[1], h1)
    without, _ = policy.step(x[1], h0)
    assert not torch.allclose(with_memory.logits, without.logits)
    # and a sequence starting at x[1] is a fresh trial: equal to stepping from zeros
    fresh, _ = policy.sequence(x[1:2])
    assert torch.allclose(fresh.logits[0], without.logits, atol=1e-6)


def test_functional_call_matches_module_and_is_differentiable() -> None:
    policy = make(BOX)
    x = random_inputs(policy, 4, (5,))
    params = {k: v.detach().clone().requires_grad_() for k, v in named_params(policy).items()}
    d_mod, v_mod = policy.sequence(x)
    d_fun, v_fun = policy.sequence(x, params)
    assert torch.allclose(d_mod.mean, d_fun.mean) and torch.allclose(v_mod, v_fun)
    (d_fun.log_prob(d_fun.mean + 1).sum() + v_fun.sum()).backward()
    assert all(params[k].grad is not None for k in ("gru.weight_hh_l0", "head.log_std",
                                                    "value.layers.0.weight"))
    # other parameter values give other outputs: the dict is really used
    shifted = {k: v.detach() + 0.1 for k, v in params.items()}
    assert not torch.allclose(policy.sequence(x, shifted)[0].mean, d_mod.mean)


def test_separate_value_trunk_leaves_policy_alone() -> None:
    policy = make(value_trunk="separate")
    x = random_inputs(policy, 4, (2,))
    params = {k: v.detach().clone().requires_grad_() for k, v in named_params(policy).items()}
    dist, values = policy.sequence(x, params)
    dist.logits.sum().backward(retain_graph=True)
    assert params["value_gru.weight_ih_l0"].grad is None
    assert params["gru.weight_ih_l0"].grad is not None
    values.sum().backward()
    assert params["value_gru.weight_ih_l0"].grad is not None


def test_privileged_critic_reads_its_context_and_the_policy_does_not() -> None:
    policy = make(value_trunk="separate", critic_context_dim=5)
    x = random_inputs(policy, 4, (2, 3))
    context = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(2))
    dist, values = policy.sequence(x, critic_context=context)
    other_dist, other_values = policy.sequence(x, critic_context=context.flip(0))
    assert torch.equal(dist.logits, other_dist.logits)  # the actor never sees the task
    assert not torch.allclose(values, other_values)
    _, swapped = policy.sequence(x.flip(1), critic_context=context.flip(0))
    assert torch.allclose(swapped, values.flip(1), atol=1e-6)  # each row reads its own
    # one step of the critic equals the plain GRU on [x_t, context]
    gru = policy.value_gru
    h, _ = gru(torch.cat([x[0], context], -1).reshape(1, 6, -1))
    assert torch.allclose(values[0], policy.value(h[0]).reshape(2, 3).squeeze(-1), atol=1e-6)
    with pytest.raises(ValueError, match=r"critic_context must be a \[2, 3, 5\] tensor"):
        policy.sequence(x)
    with pytest.raises(ValueError, match="critic_context must be"):
        policy.sequence(x, critic_context=context[..., :4])
    with pytest.raises(ValueError, match="needs value_trunk='separate'"):
        make(critic_context_dim=5)


@pytest.mark.parametrize("trunk", ["shared", "separate"])
def test_critic_parameters_are_the_value_head_and_its_gru(trunk: str) -> None:
    policy = make(value_trunk=trunk)
    names = {n for n, p in policy.named_parameters()
             if any(p is c for c in policy.critic_parameters())}
    expected = {n for n, _ in policy.named_parameters()
                if n.startswith("value.") or (trunk == "separate" and n.startswith("value_gru."))}
    assert names == expected and names
    assert not any(n.startswith(("gru.", "head.")) for n in names)


def test_load_actor_state_takes_the_actor_and_keeps_the_critic() -> None:
    source = make()  # shared trunk: no value_gru
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)
    target = make(value_trunk="separate")
    critic = {k: v.clone() for k, v in target.state_dict().items() if k.startswith("value")}
    target.load_actor_state(source.state_dict())
    for k, v in target.state_dict().items():
        if k.startswith("value"):
            assert torch.equal(v, critic[k]), k
        else:
            assert torch.equal(v, source.state_dict()[k]), k
    with pytest.raises(RuntimeError, match="actor parameters do not match"):
        make(head_hidden=(4,)).load_actor_state(source.state_dict())  # another action head
    with pytest.raises(RuntimeError, match="size mismatch"):
        make(clock_input=True).load_actor_state(source.state_dict())  # another GRU input


def test_sub_params() -> None:
    p = {"a.x": torch.zeros(1), "a.y": torch.ones(1), "b.x": torch.ones(2)}
    assert set(sub_params(p, "a.")) == {"x", "y"}  # type: ignore[arg-type]
    assert sub_params(None, "a.") is None


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="hidden_size"):
        RecurrentPolicy(OBS, DISCRETE, hidden_size=0)
    with pytest.raises(ValueError, match="value_trunk"):
        RecurrentPolicy(OBS, DISCRETE, value_trunk="both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsupported"):
        RecurrentPolicy(OBS, gym.spaces.MultiBinary(3))
