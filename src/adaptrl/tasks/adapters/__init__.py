"""Adapters: Gymnasium, MuJoCo and Meta-World environments as adaptrl task families.

* :class:`GymnasiumFamily`: any Gymnasium env + a task sampler -> a task family.
* :mod:`~adaptrl.tasks.adapters.mujoco_locomotion`: the MAML locomotion families
  (``halfcheetah-vel``, ``halfcheetah-dir``, ``ant-vel``, ``ant-dir``), extra ``mujoco``.
* :mod:`~adaptrl.tasks.adapters.halfcheetah_crippled`: GrBAL's ``halfcheetah-crippled``
  (one joint disabled), with the model-based members, extra ``mujoco``.
* :mod:`~adaptrl.tasks.adapters.metaworld_family`: Meta-World ``metaworld-ml1`` and
  ``metaworld-ml10``, extra ``metaworld``.

Importing this package imports neither MuJoCo nor Meta-World; a family's factory checks
for its extra when it is called.
"""

from collections.abc import Callable
from typing import Any

from adaptrl.tasks.adapters.gymnasium_adapter import (
    GymnasiumBatchedEnv,
    GymnasiumFamily,
    SlotPool,
    SplitTaskSampler,
    TaskSampler,
    TaskSetter,
    TaskSlot,
    single_env_family,
)
from adaptrl.tasks.adapters.halfcheetah_crippled import half_cheetah_crippled
from adaptrl.tasks.adapters.metaworld_family import MetaWorldFamily, metaworld_ml1, metaworld_ml10
from adaptrl.tasks.adapters.mujoco_locomotion import (
    ant_dir,
    ant_vel,
    half_cheetah_dir,
    half_cheetah_vel,
)
from adaptrl.tasks.registry import register, registered

_FAMILIES: tuple[tuple[str, Callable[..., Any], str, str], ...] = (
    ("halfcheetah-vel", half_cheetah_vel, "mujoco",
     "HalfCheetah running at a target velocity ~ U[0, 2] (MAML paper, §5.3)"),
    ("halfcheetah-dir", half_cheetah_dir, "mujoco",
     "HalfCheetah running forward or backward (MAML paper, §5.3)"),
    ("ant-vel", ant_vel, "mujoco",
     "Ant running at a target velocity ~ U[0, 3] (MAML paper, §5.3)"),
    ("ant-dir", ant_dir, "mujoco",
     "Ant running forward or backward (MAML paper, §5.3)"),
    ("halfcheetah-crippled", half_cheetah_crippled, "mujoco",
     "HalfCheetah running forward with one joint disabled; held-out joint at test "
     "(GrBAL, Nagabandi et al. 2019)"),
    ("metaworld-ml1", metaworld_ml1, "metaworld",
     "Meta-World ML1: one manipulation skill, 50 train / 50 test goals"),
    ("metaworld-ml10", metaworld_ml10, "metaworld",
     "Meta-World ML10: 10 train skills, 5 held-out test skills"),
)


def register_adapter_families() -> None:
    """Register the MuJoCo and Meta-World families (idempotent; imports no extra)."""
    known = registered()
    for name, factory, extra, description in _FAMILIES:
        if name not in known:
            register(name, factory, description, extra=extra)


__all__ = ["GymnasiumBatchedEnv", "GymnasiumFamily", "MetaWorldFamily", "SlotPool",
           "SplitTaskSampler", "TaskSampler", "TaskSetter", "TaskSlot", "ant_dir", "ant_vel",
           "half_cheetah_crippled", "half_cheetah_dir", "half_cheetah_vel", "metaworld_ml1",
           "metaworld_ml10",
           "register_adapter_families", "single_env_family"]
