"""Function-preserving widening of a GRU policy (adaptrl.models.widening)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from adaptrl.models.recurrent import RecurrentPolicy
from adaptrl.models.widening import widen_recurrent_state

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
DISCRETE = gym.spaces.Discrete(4)
BOX = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def make(hidden: int, seed: int, action_space: gym.Space = DISCRETE, **kw: object
         ) -> RecurrentPolicy:
    torch.manual_seed(seed)
    return RecurrentPolicy(OBS, action_space, hidden_size=hidden, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kw", [
    {},                                                    # shared trunk, linear heads
    {"value_trunk": "separate", "clock_input": True},      # a second GRU for the critic
    {"head_hidden": (5,), "transition_input": True},       # MLP heads read the features
])
@pytest.mark.parametrize("action_space", [DISCRETE, BOX])
def test_widened_policy_computes_the_same_function(kw: dict, action_space: gym.Space) -> None:
    narrow, wide = make(6, 0, action_space, **kw), make(11, 1, action_space, **kw)
    wide.load_state_dict(widen_recurrent_state(narrow.state_dict(), wide.state_dict()))
    x = torch.randn(20, 3, narrow.input_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        (d_n, v_n), (d_w, v_w) = narrow.sequence(x), wide.sequence(x)
    assert torch.allclose(v_n, v_w, atol=1e-6)
    if action_space is DISCRETE:
        assert torch.allclose(d_n.logits, d_w.logits, atol=1e-6)
    else:
        assert torch.allclose(d_n.mean, d_w.mean, atol=1e-6)
        assert torch.allclose(d_n.stddev, d_w.stddev)


def test_new_units_start_fresh_and_silent_and_learn() -> None:
    narrow, wide = make(6, 0), make(11, 1)
    fresh = {k: v.clone() for k, v in wide.state_dict().items()}
    wide.load_state_dict(widen_recurrent_state(narrow.state_dict(), fresh))
    hh, fresh_hh = wide.gru.weight_hh_l0, fresh["gru.weight_hh_l0"]
    for g in range(3):  # reset, update, new gate blocks
        old_rows, new_rows = slice(g * 11, g * 11 + 6), slice(g * 11 + 6, (g + 1) * 11)
        assert torch.equal(hh[old_rows, :6], narrow.gru.weight_hh_l0[g * 6:(g + 1) * 6])
        assert (hh[old_rows, 6:] == 0).all()              # old units ignore new ones
        assert torch.equal(hh[new_rows], fresh_hh[new_rows])  # new units: fresh init
    head = wide.head.state_dict()
    reader = next(v for k, v in head.items() if k.endswith("weight"))
    assert (reader[:, 6:] == 0).all() and (wide.value.layers[0].weight[:, 6:] == 0).all()
    x = torch.randn(10, 4, wide.input_dim, generator=torch.Generator().manual_seed(3))
    dist, values = wide.sequence(x)
    (dist.logits.sum() + values.sum()).backward()
    assert wide.value.layers[0].weight.grad[:, 6:].abs().sum() > 0  # the new units get a say


def test_narrowing_and_other_mismatches_are_refused() -> None:
    with pytest.raises(RuntimeError, match="cannot widen a 11-unit GRU policy to 6"):
        widen_recurrent_state(make(11, 0).state_dict(), make(6, 0).state_dict())
    other_obs = RecurrentPolicy(gym.spaces.Box(-1.0, 1.0, (5,), np.float32), DISCRETE, 11)
    with pytest.raises(RuntimeError, match="differ only in hidden_size"):
        widen_recurrent_state(make(6, 0).state_dict(), other_obs.state_dict())
