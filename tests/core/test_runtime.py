"""Process-wide runtime settings applied by ``import adaptrl``."""

from __future__ import annotations

import os
import platform

import pytest

from adaptrl import runtime


def test_openmp_waits_passively_unless_exported() -> None:
    assert os.environ["OMP_WAIT_POLICY"]  # set by ``import adaptrl`` (or exported)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc-only")
def test_allocator_tuning_is_accepted_on_glibc() -> None:
    assert runtime.tune_allocator() is True


def test_allocator_tuning_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADAPTRL_MALLOC_TUNING", "0")
    assert runtime.tune_allocator() is False
