"""The TRPO metric of MAML with learned step sizes (Meta-SGD): a KL through the inner step
on the metric's episode subsample, minimal at the current meta-parameters."""

from __future__ import annotations

import pytest
import torch

from adaptrl.algorithms.metasgd import MetaSGDConfig, build_metasgd
from adaptrl.models.functional import named_params
from adaptrl.tasks import make

FAMILY = make("navigation-2d", horizon=10)


def _episodes(fraction: float):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    cfg = MetaSGDConfig(meta_batch_size=3, episodes_per_task=4,
                        policy={"hidden": [8], "activation": "tanh"},
                        trpo={"fisher_fraction": fraction})
    learner = build_metasgd(FAMILY, cfg, torch.Generator().manual_seed(1), torch.device("cpu"))
    tasks = FAMILY.sample(3, "train", torch.Generator().manual_seed(2))
    episodes = learner.inner.sample(tasks, named_params(learner.policy), 1, differentiable=True)
    return learner, episodes


@pytest.mark.parametrize("fraction", [0.25, 1.0])
def test_metric_kl_is_zero_with_zero_gradient_at_the_current_point(fraction: float) -> None:
    learner, episodes = _episodes(fraction)
    kl = learner.trpo.subsample_kl(learner.replay, episodes.supports, episodes.query)
    params = learner.meta_parameters()
    grads = torch.autograd.grad(kl, params, create_graph=True)
    assert float(kl.detach()) == pytest.approx(0.0, abs=1e-7)
    assert max(float(g.detach().abs().max()) for g in grads) < 1e-6
    # a nonzero curvature in the step sizes too: the trust region covers alpha
    alpha = learner.update.optimizer.meta_parameters()[0]
    g_alpha = grads[[i for i, p in enumerate(params) if p is alpha][0]]
    v = torch.ones_like(alpha)
    hv = torch.autograd.grad((g_alpha * v).sum(), alpha, retain_graph=True)[0]
    assert float((hv * v).sum().detach()) > 0


def test_metric_uses_the_first_episodes_of_every_task() -> None:
    learner, _ = _episodes(0.25)
    assert learner.trpo.metric_episodes() == slice(0, 1)
    learner, _ = _episodes(1.0)
    assert learner.trpo.metric_episodes() is None
