"""The base of every config model: a key it does not know and a number that is not finite
(``.inf``, ``.nan`` in YAML) are refused with the field's name, never trained on; a seed
is an integer in ``[0, 2**64)`` (:data:`Seed`).

Every pydantic model of a config section (experiment, algorithm, optimizer, policy)
derives from :class:`ConfigModel`; ``tests/cli/test_bad_inputs.py`` checks that each one
does. :data:`STRICT` is the same setting for a value checked outside a model (a task
family's parameters, ``adaptrl.experiment.config``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
"""Unknown keys and non-finite floats (also inside lists and optional fields) are errors."""


class ConfigModel(BaseModel):
    """A config section: extra keys and non-finite floats are validation errors."""

    model_config = STRICT


SEED_LIMIT = 2**64
"""Seeds are integers in ``[0, SEED_LIMIT)``: what ``torch.Generator.manual_seed`` takes."""

Seed = Annotated[int, Field(ge=0, lt=SEED_LIMIT)]
"""A seed field: an integer in ``[0, 2**64)`` (an error names the field and the value)."""
