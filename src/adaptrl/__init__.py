"""adaptrl: meta-reinforcement learning on PyTorch.

The public API mirrors the CLI::

    import adaptrl
    config, algo = adaptrl.load_config("configs/maml-navigation.yaml", ["iterations=50"])
    adaptrl.train(config, algo, "runs/nav")
    result = adaptrl.evaluate("runs/nav")      # also writes runs/nav/eval.json
    agent = adaptrl.load_agent("runs/nav")     # adapt(...) / adapt_on(...), act(obs)
    adaptrl.export_agent("runs/nav")           # TorchScript / ONNX in runs/nav/export/

Lower layers (``adaptrl.tasks``, ``adaptrl.algorithms``, ``adaptrl.rollouts`` ...) are
importable on their own for scripting. Importing adaptrl changes nothing process-wide; the
CLI applies :func:`adaptrl.runtime.configure` (passive OpenMP waiting, allocator reuse),
and a script opts in by calling it before torch is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from adaptrl.experiment.config import load_config
    from adaptrl.experiment.deploy import load_agent
    from adaptrl.experiment.evaluate import evaluate_run as evaluate
    from adaptrl.experiment.export import export_agent
    from adaptrl.experiment.plots import plot_run as plot
    from adaptrl.experiment.trainer import train

_LAZY = {"load_config": ("adaptrl.experiment.config", "load_config"),
         "train": ("adaptrl.experiment.trainer", "train"),
         "evaluate": ("adaptrl.experiment.evaluate", "evaluate_run"),
         "plot": ("adaptrl.experiment.plots", "plot_run"),
         "load_agent": ("adaptrl.experiment.deploy", "load_agent"),
         "export_agent": ("adaptrl.experiment.export", "export_agent")}


def __getattr__(name: str) -> Any:
    """Import the experiment-level API on first use (keeps ``import adaptrl`` light)."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'adaptrl' has no attribute {name!r}")


__all__ = ["__version__", "evaluate", "export_agent", "load_agent", "load_config", "plot",
           "train"]
