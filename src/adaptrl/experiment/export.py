"""``adaptrl export``: a trained agent's action function as a file that needs no adaptrl.

Two formats, both with the action rescaling of ``family.rescale_actions`` inside, so that
the file maps an observation straight to an action in the env's own action space:

* **TorchScript** (``policy.pt``, load with ``torch.jit.load``);
* **ONNX** (``policy.onnx``, e.g. for onnxruntime), which needs the ``export`` extra
  (``pip install 'adaptrl[export]'``: onnx, onnxscript; onnxruntime to run it).

What the function is depends on the agent (:mod:`adaptrl.experiment.deploy`):

* gradient agents (MAML family): ``action = f(obs)``, the policy's most likely action
  (the Gaussian's mean, or the arg-max of the logits) at the meta-learned parameters, or
  at parameters adapted on given episodes (``adapted_on``);
* RL²: one step of the recurrent policy,
  ``(action, h_next) = f(obs, prev_action, prev_reward, prev_done, h)`` (plus ``clock`` and
  ``prev_obs`` for a policy built with ``clock_input`` / ``transition_input``). The caller
  carries ``h`` and the feedback: at the start of a trial ``h`` is zeros and
  ``prev_action`` / ``prev_reward`` / ``prev_done`` are the ``initial`` values in
  ``export.json``; after each step, the action taken (env units), its reward and whether
  it ended the episode. Adapting is carrying ``h``; ``adapted_on`` does not apply.

``export.json`` beside them names the inputs and outputs, their shapes, the action space,
the run and checkpoint. Every input has a leading batch dimension (any size).
"""

from __future__ import annotations

import copy
import json
import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import torch
from torch import nn

from adaptrl.errors import UserError
from adaptrl.experiment.deploy import (
    DeployedAgent,
    GradientDeployment,
    MemoryDeployment,
    load_agent,
)
from adaptrl.models.recurrent import RecurrentPolicy
from adaptrl.rollouts.sampler import act as policy_action
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.tasks.wrappers import RescaledActions

ExportFormat = Literal["torchscript", "onnx", "all"]
EXPORT_FORMATS: tuple[str, ...] = ("torchscript", "onnx", "all")
ONNX_PACKAGES = ("onnx", "onnxscript")


class ExportError(UserError):
    """An export that cannot be written as asked (a missing package, an unsupported policy)."""


@dataclass
class ExportResult:
    """The files written and, per format left out, why (``{"onnx": "needs ..."}``)."""

    files: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


class _Rescale(nn.Module):
    """The map of ``[-1, 1]^d`` onto the family's action box, and back (identity without
    ``rescale_actions``, or for discrete actions)."""

    center: torch.Tensor
    half_width: torch.Tensor

    def __init__(self, agent: DeployedAgent) -> None:
        super().__init__()
        self.active = isinstance(agent.family, RescaledActions)
        space = agent.env_action_space
        low = torch.as_tensor(getattr(space, "low", 0.0), dtype=torch.float32)
        high = torch.as_tensor(getattr(space, "high", 0.0), dtype=torch.float32)
        self.register_buffer("center", (high + low) / 2 if self.active else torch.zeros(()))
        self.register_buffer("half_width", (high - low) / 2 if self.active else torch.ones(()))

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        return self.center + action * self.half_width if self.active else action

    def to_agent(self, action: torch.Tensor) -> torch.Tensor:
        return (action - self.center) / self.half_width if self.active else action


class PolicyAction(nn.Module):
    """``f(obs) -> action``: a feed-forward policy's most likely action at fixed
    parameters, in the env's units."""

    def __init__(self, agent: GradientDeployment) -> None:
        super().__init__()
        self.policy = copy.deepcopy(agent.policy).cpu()
        with torch.no_grad():
            for name, p in self.policy.named_parameters():
                p.copy_(agent.params[name])
                p.requires_grad_(False)
        self.rescale = _Rescale(agent)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        action, _ = policy_action(self.policy, obs, None, None, True)  # type: ignore[arg-type]
        return self.rescale.to_env(action)


class RecurrentStep(nn.Module):
    """One step of RL²'s recurrent policy: ``f(obs, prev_action, prev_reward, prev_done, h
    [, clock][, prev_obs]) -> (action, h)``, actions in the env's units."""

    def __init__(self, agent: MemoryDeployment) -> None:
        super().__init__()
        self.policy = cast(RecurrentPolicy, copy.deepcopy(agent.policy).cpu())
        self.policy.requires_grad_(False)
        self.rescale = _Rescale(agent)
        self.discrete = self.policy.discrete

    def forward(self, obs: torch.Tensor, prev_action: torch.Tensor, prev_reward: torch.Tensor,
                prev_done: torch.Tensor, h: torch.Tensor, *extra: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``extra``: ``clock`` (with ``clock_input``), then ``prev_obs`` (with
        ``transition_input``)."""
        rest = list(extra)
        clock = rest.pop(0) if self.policy.clock_input else None
        prev_obs = rest.pop(0) if self.policy.transition_input else None
        if not self.discrete:
            prev_action = self.rescale.to_agent(prev_action)
        x = self.policy.encode(obs, prev_action, prev_reward, prev_done, clock, prev_obs)
        dist, h_new = self.policy.step(x, h)
        action = self.policy.mode(dist)
        return (action if self.discrete else self.rescale.to_env(action)), h_new


def _recurrent_inputs(agent: MemoryDeployment, batch: int) -> dict[str, torch.Tensor]:
    """Example inputs of :class:`RecurrentStep` (the start of a trial), by name."""
    policy: Any = agent.policy
    obs_shape = agent.obs_shape
    action, reward, done = policy.initial_feedback((batch,), torch.device("cpu"))
    inputs = {"obs": torch.zeros(batch, *obs_shape),
              "prev_action": action if policy.discrete else agent.to_env_action(action),
              "prev_reward": reward, "prev_done": done,
              "h": policy.initial_state((batch,), torch.device("cpu"))}
    if policy.clock_input:
        inputs["clock"] = torch.zeros(batch, 2)
    if policy.transition_input:
        inputs["prev_obs"] = torch.zeros(batch, *obs_shape)
    return inputs


def export_module(agent: DeployedAgent) -> tuple[nn.Module, dict[str, torch.Tensor], list[str]]:
    """The agent's action function as an ``nn.Module`` on the CPU, example inputs by name,
    and the names of its outputs."""
    if isinstance(agent, GradientDeployment):
        obs_shape = agent.obs_shape
        return PolicyAction(agent).eval(), {"obs": torch.zeros(2, *obs_shape)}, ["action"]
    if isinstance(agent, MemoryDeployment):
        return RecurrentStep(agent).eval(), _recurrent_inputs(agent, 2), ["action", "h_next"]
    raise ExportError(f"no export for a {type(agent).__name__}")


def export_agent(run_dir: str | Path, out_dir: str | Path | None = None,
                 checkpoint: str = "best",
                 adapted_on: Trajectories | Sequence[Trajectories] | None = None,
                 format: ExportFormat = "all") -> ExportResult:
    """Write the agent of ``run_dir`` (its ``best`` or ``latest`` checkpoint) to ``out_dir``
    (default ``RUN_DIR/export``): ``policy.pt`` (TorchScript), ``policy.onnx`` and
    ``export.json`` (module docstring).

    ``adapted_on``: episodes of one task (one batch per inner step) that a gradient agent
    adapts on first; the file then acts with the adapted parameters. ``format="all"``
    writes ONNX where it can and says why not in :attr:`ExportResult.skipped`;
    ``format="onnx"`` makes that an :class:`ExportError`.
    """
    agent = load_agent(run_dir, checkpoint, device="cpu")
    if adapted_on is not None:
        if not isinstance(agent, GradientDeployment):
            raise ExportError("adapted_on: RL² adapts in its memory, not in its weights; its "
                              "export takes the hidden state as an input (start it at zeros)")
        for batch in [adapted_on] if isinstance(adapted_on, Trajectories) else adapted_on:
            agent.adapt(batch)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "export"
    return export_deployed(agent, out, format, source={"run": str(run_dir),
                                                       "checkpoint": checkpoint})


def export_deployed(agent: DeployedAgent, out: Path, format: ExportFormat = "all",
                    source: dict[str, Any] | None = None) -> ExportResult:
    """Write ``agent`` as it is now (adapted or not) to ``out`` (:func:`export_agent`)."""
    if format not in EXPORT_FORMATS:
        raise ExportError(f"format must be one of {list(EXPORT_FORMATS)}, got {format!r}")
    module, inputs, outputs = export_module(agent)
    out.mkdir(parents=True, exist_ok=True)
    result = ExportResult()
    if format in ("torchscript", "all"):
        path = out / "policy.pt"
        with warnings.catch_warnings():  # deprecated in torch 2.13, and still what loads
            warnings.simplefilter("ignore", DeprecationWarning)  # without Python
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(module, tuple(inputs.values()))
            traced.save(str(path))
        result.files.append(path)
    if format in ("onnx", "all"):
        try:
            result.files.append(_export_onnx(module, inputs, outputs, out / "policy.onnx"))
        except ExportError as err:
            if format == "onnx":
                raise
            result.skipped["onnx"] = str(err)
    meta = _metadata(agent, inputs, outputs, source or {}, [p.name for p in result.files])
    meta_path = out / "export.json"
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    result.files.append(meta_path)
    return result


def onnx_missing() -> str | None:
    """Why ONNX export is not available here (``None``: it is)."""
    import importlib.util

    missing = [p for p in ONNX_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        return (f"ONNX export needs {', '.join(missing)}: pip install 'adaptrl[export]'")
    return None


def _export_onnx(module: nn.Module, inputs: dict[str, torch.Tensor], outputs: list[str],
                 path: Path) -> Path:
    """``module`` as ONNX (torch.export), the batch dimension dynamic; an
    :class:`ExportError` says why not."""
    why = onnx_missing()
    if why is not None:
        raise ExportError(why)
    batch = torch.export.Dim("batch", min=1)
    shapes: tuple[Any, ...] = tuple({0: batch} for _ in inputs)
    if len(inputs) > 5:  # RecurrentStep: five named inputs, then clock / prev_obs as *extra
        shapes = (*shapes[:5], shapes[5:])
    quiet = logging.getLogger("torch.onnx")  # its notes on torchvision ops, not ours
    level = quiet.level
    try:
        quiet.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, tuple(inputs.values()), dynamo=True,
                                        input_names=list(inputs), output_names=outputs,
                                        dynamic_shapes=shapes, verbose=False)
        assert program is not None
        program.save(str(path))
    except Exception as err:  # noqa: BLE001 - an exporter's failure is the format's, not ours
        root = err
        while root.__cause__ is not None:  # the exporter wraps the reason
            root = root.__cause__  # type: ignore[assignment]
        first = re.sub(r"\x1b\[[0-9;]*m", "", (str(root).strip().splitlines() or [""])[0])
        raise ExportError(f"torch.onnx could not export this policy ({type(root).__name__}: "
                          f"{first[:200]})") from err
    finally:
        quiet.setLevel(level)
    return path


def _metadata(agent: DeployedAgent, inputs: dict[str, torch.Tensor], outputs: list[str],
              source: dict[str, Any], files: list[str]) -> dict[str, Any]:
    space = agent.env_action_space
    action: dict[str, Any] = {"type": type(space).__name__}
    if hasattr(space, "n"):
        action["n"] = int(space.n)
    else:
        action.update(shape=list(space.shape), low=space.low.tolist(), high=space.high.tolist())
    meta: dict[str, Any] = {
        **source, "files": files, "kind": agent.unit.value,
        "family": agent.config.family.name, "checkpoint_iteration": agent.iteration,
        "rescale_actions_inside": agent.rescaled, "action_space": action,
        "observation_shape": list(agent.obs_shape),  # a Discrete space: one-hot
        "inputs": {name: {"shape": ["batch", *x.shape[1:]],
                          "dtype": str(x.dtype).removeprefix("torch.")}
                   for name, x in inputs.items()},
        "outputs": outputs}
    if isinstance(agent, GradientDeployment):
        meta["adapted_steps"] = agent.steps
    else:
        meta["initial"] = {name: inputs[name][0].tolist()
                           for name in ("prev_action", "prev_reward", "prev_done", "h")}
        if "clock" in inputs:
            meta["clock"] = "[t_episode / horizon, t_trial / (episodes_per_trial * horizon)]"
            meta["horizon"] = agent.family.horizon
            assert isinstance(agent, MemoryDeployment)
            meta["episodes_per_trial"] = agent.episodes_per_trial
        if "prev_obs" in inputs:
            meta["prev_obs"] = "the observation prev_action was taken at (zeros at the start)"
    return meta
