"""``adaptrl.load_agent`` and ``adaptrl export``: a trained run as an agent that adapts to one
task and acts, and its action function as TorchScript / ONNX with the action rescaling
inside. Adapting is the protocol's adaptation (the same inner steps on the same episodes for
MAML; the same trial for RL²), and the exported files act as the loaded agent does."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import TINY
from typer.testing import CliRunner

import adaptrl
from adaptrl.cli.main import app
from adaptrl.evaluation.protocol import gradient_curve
from adaptrl.experiment.config import ConfigError, validate_config
from adaptrl.experiment.deploy import GradientDeployment, MemoryDeployment, load_agent
from adaptrl.experiment.export import export_agent, onnx_missing
from adaptrl.experiment.trainer import train
from adaptrl.models.functional import expand_params
from adaptrl.rollouts.sampler import act as policy_action
from adaptrl.rollouts.trial_sampler import RecurrentActor, play_trials
from adaptrl.tasks.wrappers import RescaledActions

# torch 2.13 deprecates TorchScript (torch.jit.load included); the export still writes it
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

RL2 = {"name": "rl2", "meta_batch_size": 4, "policy": {"hidden_size": 8},
       "ppo": {"epochs": 1, "minibatches": 2}, "test_actions": "mode"}
# discrete actions, and the policy inputs beyond the paper's: the clock and the transition
RL2_TABULAR = {**RL2, "policy": {"hidden_size": 8, "clock_input": True,
                                 "transition_input": True}}


def _train(root: Path, name: str, rescale: bool = False, algorithm: dict[str, Any] | None = None,
           family: dict[str, Any] | None = None) -> Path:
    cfg = copy.deepcopy(TINY)
    cfg["family"]["rescale_actions"] = rescale
    if family is not None:
        cfg["family"] = family
    cfg["evaluation"]["baselines"] = []  # nothing trained beside the agent
    if algorithm is not None:
        cfg["algorithm"], cfg["iterations"] = copy.deepcopy(algorithm), 1
    exp, algo = validate_config(cfg)
    train(exp, algo, root / name)
    return root / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("deploy")
    return {"maml": _train(root, "maml"), "maml_rescaled": _train(root, "maml_r", True),
            "rl2": _train(root, "rl2", True, RL2),
            "rl2_tabular": _train(root, "rl2_tabular", algorithm=RL2_TABULAR,
                                  family={"name": "tabular-mdp", "params": {"horizon": 4}})}


def _task(agent: adaptrl.experiment.deploy.DeployedAgent, seed: int = 5) -> Any:
    return agent.family.sample(1, "test", torch.Generator().manual_seed(seed))


def test_load_agent_acts_in_the_env_action_space(runs: dict[str, Path]) -> None:
    agent = adaptrl.load_agent(runs["maml"])
    assert isinstance(agent, GradientDeployment) and agent.unit == "gradient_steps"
    obs = torch.randn(5, 2)
    action = agent.act(obs)
    assert isinstance(action, torch.Tensor) and action.shape == (5, 2)
    # one observation, as an array: an array back
    single = agent.act(obs[0].numpy())
    assert isinstance(single, np.ndarray) and np.allclose(single, action[0].numpy(), atol=1e-6)
    sampled = agent.act(obs, deterministic=False)
    assert sampled.shape == (5, 2) and not torch.equal(sampled, action)
    with pytest.raises(ValueError, match=r"observation of shape \(5, 3\)"):
        agent.act(torch.zeros(5, 3))


def test_rescaled_actions_are_mapped_onto_the_family_box(runs: dict[str, Path]) -> None:
    agent = load_agent(runs["maml_rescaled"])
    assert agent.rescaled and isinstance(agent.family, RescaledActions)
    obs = torch.randn(6, 2)
    raw, _ = policy_action(agent.policy, obs, None, torch.Generator(), True)
    assert torch.equal(agent.act(obs), agent.family.to_family_action(raw))
    clipped = agent.act(obs * 100, clip=True)
    assert float(clipped.abs().max()) <= 0.1 + 1e-7  # navigation-2d's box: [-0.1, 0.1]^2


def test_gradient_adaptation_is_the_protocols(runs: dict[str, Path]) -> None:
    agent = load_agent(runs["maml"])
    assert isinstance(agent, GradientDeployment)
    obs = torch.randn(4, 2)
    before = agent.act(obs)
    task = _task(agent)
    ev = agent.config.evaluation
    # the protocol: support episodes sampled with the current parameters, one inner step each
    protocol = agent.learner.agent(ev.step_sizes)
    _, trajs = gradient_curve(agent.family, protocol, task, 2, ev.episodes,
                              torch.Generator().manual_seed(11), agent.device)
    params = expand_params(protocol.initial_params(), 1)
    for k in range(2):
        params = protocol.adapt(params, trajs[k], k)

    returns = agent.adapt_on(task, steps=2, generator=torch.Generator().manual_seed(11))
    assert returns == [float(t.task_returns()[0]) for t in trajs[:2]]
    assert agent.steps == 2
    for name, value in agent.params.items():
        assert torch.equal(value, params[name][0]), name
    adapted = agent.act(obs)
    assert not torch.allclose(adapted, before)

    # adapt(episodes) takes the same inner steps on given episodes; reset() forgets them
    agent.reset()
    assert torch.equal(agent.act(obs), before)
    agent.adapt(trajs[0])
    agent.adapt(trajs[1])
    assert torch.equal(agent.act(obs), adapted)
    with pytest.raises(ValueError, match="one task"):
        agent.adapt(trajs[0].map(lambda x: torch.cat([x, x], dim=1)))


def test_rl2_adapts_in_memory_as_the_protocols_trial(runs: dict[str, Path]) -> None:
    agent = load_agent(runs["rl2"])
    assert isinstance(agent, MemoryDeployment) and agent.unit == "episodes"
    assert agent.actor.deterministic  # test_actions: mode
    task = _task(agent)
    H = agent.family.horizon
    # the protocol's trial of three episodes, the actions recorded
    actions: list[torch.Tensor] = []
    played = play_trials(agent.family.make_env(task, 1, "cpu"),
                         RecurrentActor(agent.policy, deterministic=True), 3,
                         torch.Generator().manual_seed(2),
                         hook=lambda t, step, state: actions.append(step.action[0, 0]))
    assert played.masks.sum() == 3 * H  # navigation at this horizon: no early ends

    returns = agent.adapt_on(task, steps=2, generator=torch.Generator().manual_seed(2))
    by_episode = (played.rewards * played.masks)[:, 0, 0].reshape(3, H).sum(1)
    assert returns == pytest.approx(by_episode[:2].tolist(), abs=1e-5)
    assert agent.episode == 2
    # the third episode, step by step with act / observe, acts as the protocol did
    env = agent.family.make_env(task, 1, "cpu")
    obs = env.reset(torch.Generator())[0, 0]
    memory = agent.hidden_state
    for t in range(H):
        action = agent.act(obs)
        assert torch.equal(action, agent.to_env_action(actions[2 * H + t])), t
        res = env.step(actions[2 * H + t].reshape(1, 1, -1))
        agent.observe(float(res.reward), bool(res.terminated | res.truncated))
        obs = res.observation[0, 0]

    # adapt(trial) feeds recorded episodes through the memory: the same hidden state
    agent.reset()
    start = agent.act(played.observations[0, 0, 0])
    agent.reset()
    agent.adapt(played.map(lambda x: x[:2 * H]))
    assert agent.episode == 2 and torch.equal(agent.hidden_state, memory)
    assert not torch.equal(agent.act(played.observations[0, 0, 0]), start)  # it adapted
    with pytest.raises(ValueError, match="follows act"):
        load_agent(runs["rl2"]).observe(0.0, False)


def _load_script(path: Path) -> torch.jit.ScriptModule:
    return torch.jit.load(str(path))


@pytest.mark.parametrize("run", ["maml", "maml_rescaled"])
def test_torchscript_export_acts_as_the_agent(runs: dict[str, Path], tmp_path: Path,
                                              run: str) -> None:
    result = export_agent(runs[run], tmp_path / "out", format="torchscript")
    assert [p.name for p in result.files] == ["policy.pt", "export.json"]
    module = _load_script(tmp_path / "out" / "policy.pt")
    agent = load_agent(runs[run])
    for shape in [(7, 2), (1, 2), (2,)]:
        obs = torch.randn(*shape)
        assert torch.allclose(module(obs), agent.act(obs), rtol=0, atol=1e-6), shape
    meta = json.loads((tmp_path / "out" / "export.json").read_text())
    assert meta["rescale_actions_inside"] == (run == "maml_rescaled")
    assert meta["inputs"]["obs"]["shape"] == ["batch", 2] and meta["outputs"] == ["action"]

    # exported at parameters adapted on given episodes
    task = _task(agent)
    ev = agent.config.evaluation
    _, trajs = gradient_curve(agent.family, agent.learner.agent(ev.step_sizes), task, 1,
                              ev.episodes, torch.Generator().manual_seed(3), agent.device)
    export_agent(runs[run], tmp_path / "adapted", adapted_on=trajs[0], format="torchscript")
    agent.adapt(trajs[0])
    adapted = _load_script(tmp_path / "adapted" / "policy.pt")
    obs = torch.randn(5, 2)
    assert torch.allclose(adapted(obs), agent.act(obs), rtol=0, atol=1e-6)
    assert not torch.allclose(adapted(obs), module(obs))


def _rl2_episode(agent: MemoryDeployment, step: Any, h0: torch.Tensor, batch: int,
                 generator: torch.Generator) -> None:
    """Play one episode of random observations and rewards with the agent (act / observe)
    and with an exported step function ``step(obs, prev_action, prev_reward, prev_done, h)``,
    from the trial's start; the actions and memory agree at every step."""
    prev_action = torch.zeros(batch, 2)  # the initial feedback: zeros (the box's centre)
    prev_reward, prev_done, h = torch.zeros(batch), torch.zeros(batch), h0
    agent.reset()
    for t in range(agent.family.horizon):
        obs = torch.randn(batch, 2, generator=generator)
        action, h = step(obs, prev_action, prev_reward, prev_done, h)
        ours = agent.act(obs)
        assert np.allclose(np.asarray(action), ours.numpy(), rtol=0, atol=1e-5), t
        assert agent.hidden_state is not None
        reward, done = float(torch.randn((), generator=generator)), t in (4, 14)
        agent.observe(reward, done)
        prev_action = torch.as_tensor(np.asarray(action))
        prev_reward, prev_done = torch.full((batch,), reward), torch.full((batch,), float(done))
        h = torch.as_tensor(np.asarray(h))
        assert torch.allclose(h, agent.hidden_state, rtol=0, atol=1e-5)


def test_rl2_export_is_a_step_function(runs: dict[str, Path], tmp_path: Path) -> None:
    fmt = "torchscript" if onnx_missing() else "all"
    result = export_agent(runs["rl2"], tmp_path, format=fmt)
    meta = json.loads((tmp_path / "export.json").read_text())
    assert list(meta["inputs"]) == ["obs", "prev_action", "prev_reward", "prev_done", "h"]
    assert meta["outputs"] == ["action", "h_next"] and meta["rescale_actions_inside"]
    assert meta["initial"]["prev_action"] == [0.0, 0.0] and meta["initial"]["h"] == [0.0] * 8
    agent = load_agent(runs["rl2"])
    assert isinstance(agent, MemoryDeployment)
    module = _load_script(tmp_path / "policy.pt")
    _rl2_episode(agent, module, torch.zeros(3, 8), 3, torch.Generator().manual_seed(0))
    if fmt == "all":
        assert (tmp_path / "policy.onnx") in result.files
        ort = pytest.importorskip("onnxruntime")
        session = ort.InferenceSession(str(tmp_path / "policy.onnx"))

        def onnx_step(*args: torch.Tensor) -> list[np.ndarray]:
            return session.run(None, {name: x.numpy() for name, x in zip(meta["inputs"], args)})
        _rl2_episode(agent, onnx_step, torch.zeros(2, 8), 2, torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="adapts in its memory"):
        export_agent(runs["rl2"], tmp_path / "no", adapted_on=[])


def test_rl2_discrete_export_with_clock_and_transition(runs: dict[str, Path],
                                                      tmp_path: Path) -> None:
    fmt = "torchscript" if onnx_missing() else "all"
    result = export_agent(runs["rl2_tabular"], tmp_path, format=fmt)
    assert not result.skipped
    meta = json.loads((tmp_path / "export.json").read_text())
    assert list(meta["inputs"]) == ["obs", "prev_action", "prev_reward", "prev_done", "h",
                                    "clock", "prev_obs"]
    assert meta["inputs"]["prev_action"]["dtype"] == "int64"
    assert meta["initial"]["prev_action"] == -1
    agent = load_agent(runs["rl2_tabular"])
    assert isinstance(agent, MemoryDeployment)
    steps = {"torchscript": _load_script(tmp_path / "policy.pt")}
    if fmt == "all":
        ort = pytest.importorskip("onnxruntime")
        session = ort.InferenceSession(str(tmp_path / "policy.onnx"))
        steps["onnx"] = lambda *args: session.run(
            None, {name: x.numpy() for name, x in zip(meta["inputs"], args)})
    n, H, B = agent.obs_shape[0], agent.family.horizon, 3
    trial = agent.episodes_per_trial * H
    g = torch.Generator().manual_seed(4)
    for name, step in steps.items():
        agent.reset()
        prev_action = torch.full((B,), -1)
        prev_reward, prev_done = torch.zeros(B), torch.zeros(B)
        h, prev_obs = torch.zeros(B, 8), torch.zeros(B, n)
        for t in range(2 * H):
            obs = torch.nn.functional.one_hot(torch.randint(n, (B,), generator=g), n).float()
            clock = torch.tensor([(t % H) / H, t / trial]).expand(B, 2)
            action, h = (torch.as_tensor(np.asarray(x)) for x in
                         step(obs, prev_action, prev_reward, prev_done, h, clock, prev_obs))
            assert torch.equal(action, agent.act(obs)), (name, t)
            reward, done = float(torch.randn((), generator=g)), t % H == H - 1
            agent.observe(reward, done)
            assert torch.allclose(h, agent.hidden_state, rtol=0, atol=1e-5), (name, t)
            prev_action, prev_obs = action, obs
            prev_reward, prev_done = torch.full((B,), reward), torch.full((B,), float(done))


def test_onnx_export_acts_as_the_agent(runs: dict[str, Path], tmp_path: Path) -> None:
    if onnx_missing():
        pytest.skip(f"{onnx_missing()} (and onnxruntime to run it)")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime runs the exported file")
    export_agent(runs["maml_rescaled"], tmp_path, format="onnx")
    session = ort.InferenceSession(str(tmp_path / "policy.onnx"))
    agent = load_agent(runs["maml_rescaled"])
    for batch in (6, 1):
        obs = torch.randn(batch, 2)
        (action,) = session.run(None, {"obs": obs.numpy()})
        assert np.allclose(action, agent.act(obs).numpy(), rtol=0, atol=1e-5)


def test_export_cli_writes_the_files(runs: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(app, ["export", str(runs["maml"]), "--out", str(out), "--checkpoint",
                              "latest", "--format", "torchscript"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "policy.pt"]
    assert f"wrote {out / 'policy.pt'}" in " ".join(res.output.split())
    agent = load_agent(runs["maml"], checkpoint="latest")
    obs = torch.randn(3, 2)
    assert torch.allclose(_load_script(out / "policy.pt")(obs), agent.act(obs), atol=1e-6)
    assert json.loads((out / "export.json").read_text())["checkpoint"] == "latest"


@pytest.mark.parametrize("args, expected", [
    (["export", "{missing}"], "is not a run directory: it does not exist"),
    (["export", "{run}", "--checkpoint", "average"], "--checkpoint must be one of "
                                                     "['best', 'latest'], got 'average'"),
    (["export", "{run}", "--format", "pdf"], "--format must be one of"),
    (["export", "{untrained}"], "no best checkpoint; train the run first"),
])
def test_export_errors_are_one_line(runs: dict[str, Path], tmp_path: Path, args: list[str],
                                    expected: str) -> None:
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    (untrained / "config.yaml").write_text((runs["maml"] / "config.yaml").read_text())
    paths = {"missing": tmp_path / "nope", "run": runs["maml"], "untrained": untrained}
    res = CliRunner().invoke(app, [a.format(**paths) for a in args])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], lines


def test_onnx_left_out_without_its_packages(runs: dict[str, Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import adaptrl.experiment.export as export_mod

    why = "ONNX export needs onnxscript: pip install 'adaptrl[export]'"
    monkeypatch.setattr(export_mod, "onnx_missing", lambda: why)
    runner = CliRunner()
    res = runner.invoke(app, ["export", str(runs["maml"]), "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert f"onnx: skipped ({why})" in " ".join(res.output.split())
    assert not (tmp_path / "a" / "policy.onnx").exists()
    assert (tmp_path / "a" / "policy.pt").exists()
    res = runner.invoke(app, ["export", str(runs["maml"]), "--out", str(tmp_path / "b"),
                              "--format", "onnx"])
    assert res.exit_code == 2 and res.output.strip() == f"error: {why}", res.output


def test_load_agent_errors(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a run directory"):
        load_agent(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"checkpoint must be one of \['best', 'latest'\]"):
        load_agent(runs["maml"], checkpoint="average")
