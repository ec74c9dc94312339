"""Process-wide runtime settings: opt-in (the CLI applies them), never by ``import adaptrl``."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from adaptrl import runtime


def _env_after(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code + "; import os; "
                          "print(os.environ.get('OMP_WAIT_POLICY', 'unset'))"],
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_import_adaptrl_changes_nothing_process_wide() -> None:
    assert _env_after("import adaptrl, adaptrl.experiment.trainer") == "unset"


def test_the_cli_opts_in_to_passive_openmp() -> None:
    assert _env_after("import adaptrl.cli.main") == "PASSIVE"


def test_an_exported_wait_policy_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    runtime.use_passive_openmp()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc-only")
def test_allocator_tuning_is_accepted_on_glibc() -> None:
    assert runtime.tune_allocator() is True


def test_allocator_tuning_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADAPTRL_MALLOC_TUNING", "0")
    assert runtime.tune_allocator() is False
