"""Pinned short seeded runs of every algorithm and baseline (see ``record_pins.py``).

Default: floats within ``rtol=1e-5, atol=1e-7`` of the pins (CI machines may round
differently); ``ADAPTRL_PINS_EXACT=1``: bit for bit, as a refactor is checked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# pytest puts this folder on sys.path (rootdir-relative import mode, no __init__.py)
from pinned_cases import ATOL, CASES, RTOL, differences, run_case

HERE = Path(__file__).resolve().parent
PINS = json.loads((HERE / "pins.json").read_text())["cases"]
EXACT = os.environ.get("ADAPTRL_PINS_EXACT", "") == "1"
SHOWN = 30


def test_every_pin_has_a_case() -> None:
    stale = sorted(set(PINS) - set(CASES))
    assert not stale, (f"pins.json holds cases that no longer exist: {stale}; "
                       "re-record: .venv/bin/python tests/regression/record_pins.py")


@pytest.mark.parametrize("name", list(CASES))
def test_pinned_run(name: str, tmp_path: Path) -> None:
    if name not in PINS:
        pytest.fail(f"{name}: not pinned; record it: "
                    f".venv/bin/python tests/regression/record_pins.py {name}")
    diffs = differences(name, PINS[name], run_case(name, tmp_path), EXACT)
    if diffs:
        mode = "exactly (ADAPTRL_PINS_EXACT=1)" if EXACT else f"rtol={RTOL}, atol={ATOL}"
        more = f"\n... and {len(diffs) - SHOWN} more" if len(diffs) > SHOWN else ""
        pytest.fail(f"{name}: {len(diffs)} of {len(PINS[name])} pinned values differ "
                    f"({mode}):\n" + "\n".join(diffs[:SHOWN]) + more, pytrace=False)
