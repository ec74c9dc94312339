"""Function-preserving widening of a trained GRU policy: start a wider agent from a narrower one.

Used by RL²'s ``init_from`` with ``init_widen`` (a curriculum step that adds memory: train
small, then continue at the paper's 256 units without losing what was learned). It is
Net2WiderNet's goal (Chen, Goodfellow & Shlens 2016, "Net2Net", §2.2: the wider network
computes the same function as the narrow one) reached by zeroing instead of copying units,
which keeps the new units free of the old ones' symmetry:

* every old unit keeps its weights, and reads no new unit (the new columns of its
  recurrent rows are zero), so the old units run exactly as before;
* every new unit keeps this (wider) policy's fresh initialisation: it reads the input and
  all units, old and new, and so starts from a random, already useful projection of them;
* every layer that reads the GRU's features (the first layer of the action head and of the
  value head) gets zero weights from the new units.

The wider policy's outputs therefore equal the narrow one's to rounding, while the new
units receive gradients from the first update on (the head's new columns do: their
gradient is the head's error times the new units' non-zero activations).
"""

from __future__ import annotations

import torch

GATES = 3
"""A PyTorch GRU stacks its reset, update and new gates as three blocks of rows."""
GRUS = ("gru.", "value_gru.")
"""The GRUs of a :class:`~adaptrl.models.recurrent.RecurrentPolicy` (the critic's if separate)."""


def gru_width(state: dict[str, torch.Tensor]) -> int | None:
    """Hidden units of the policy GRU in a RecurrentPolicy state dict (``None``: no GRU)."""
    weight = state.get("gru.weight_hh_l0")
    return None if weight is None else int(weight.shape[1])


def _gate_rows(old: int, new: int) -> list[tuple[slice, slice]]:
    """(rows in the narrow tensor, rows in the wide tensor) for each gate block."""
    return [(slice(g * old, (g + 1) * old), slice(g * new, g * new + old)) for g in range(GATES)]


def widen_gru(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
              prefix: str, old: int, new: int) -> dict[str, torch.Tensor]:
    """The parameters of the GRU ``prefix`` (e.g. ``"gru."``) widened from ``old`` units to ``new``.

    ``source`` holds the narrow GRU, ``target`` the wide one's fresh initialisation (the
    new units' values); only ``weight_ih_l0``, ``weight_hh_l0`` and the two biases exist
    in a one-layer GRU.
    """
    out: dict[str, torch.Tensor] = {}
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        key = prefix + name
        narrow, wide = source[key], target[key].detach().clone()
        if name == "weight_ih_l0" and narrow.shape[1] != wide.shape[1]:
            raise RuntimeError(f"{key}: {narrow.shape[1]} inputs cannot become "
                               f"{wide.shape[1]} (the policies must differ only in "
                               "hidden_size)")
        for src_rows, dst_rows in _gate_rows(old, new):
            if name == "weight_hh_l0":
                wide[dst_rows, :old] = narrow[src_rows]
                wide[dst_rows, old:] = 0.0  # old units do not read the new ones
            else:
                wide[dst_rows] = narrow[src_rows]
        out[key] = wide
    return out


def widen_reader(narrow: torch.Tensor, target: torch.Tensor, old: int) -> torch.Tensor:
    """A layer that reads the GRU features (``[out, old]`` weight): new input columns zero."""
    wide = torch.zeros_like(target)
    wide[:, :old] = narrow
    return wide


def widen_recurrent_state(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
                          ) -> dict[str, torch.Tensor]:
    """``source`` (a narrower :class:`~adaptrl.models.recurrent.RecurrentPolicy`'s state dict)
    widened to the shapes of ``target`` (the wider policy's state dict), function-preservingly.

    The two policies must differ only in ``hidden_size``. Keys of ``source`` that
    ``target`` lacks pass through unchanged (loading then reports them); a key whose shape
    differs in any other way than the GRU width raises ``RuntimeError``, as a failed
    ``load_state_dict`` would.
    """
    old, new = gru_width(source), gru_width(target)
    if old is None or new is None:
        raise RuntimeError("widening needs two GRU policies (no gru.weight_hh_l0)")
    if new < old:
        raise RuntimeError(f"cannot widen a {old}-unit GRU policy to {new} units "
                           "(narrowing loses what the dropped units hold)")
    out = dict(source)
    for prefix in GRUS:
        if prefix + "weight_hh_l0" in source and prefix + "weight_hh_l0" in target:
            out.update(widen_gru(source, target, prefix, old, new))
    for key, narrow in source.items():
        wide = target.get(key)
        if wide is None or out[key].shape == wide.shape:
            continue
        reads_features = (narrow.dim() == 2 and narrow.shape == (wide.shape[0], old)
                          and wide.shape[1] == new)
        if not reads_features:
            raise RuntimeError(f"{key}: shape {tuple(narrow.shape)} cannot be widened to "
                               f"{tuple(wide.shape)} (the policies must differ only in "
                               "hidden_size)")
        out[key] = widen_reader(narrow, wide, old)
    return out
