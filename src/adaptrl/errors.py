"""The two kinds of error adaptrl reports to a person, and the exit codes the CLI gives them.

* :class:`UserError` (exit 2): something the user can fix — a config field, a command-line
  option, a run directory in the wrong state. Its message is one line (or one line per
  problem) naming the file or field, the value and what is allowed.
* :class:`FaultError` (exit 1): something went wrong that is not the user's input — a
  corrupt checkpoint with no good one to fall back to, a diverged training run, a full
  disk. Its message says what happened, where, and what was kept.

The CLI prints ``error: <message>`` for both, without a traceback unless ``--debug``.
Everything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

USER_EXIT_CODE = 2
FAULT_EXIT_CODE = 1


class AdaptrlError(Exception):
    """Base of the errors the CLI reports as one line; ``exit_code`` is what it exits with."""

    exit_code: int = FAULT_EXIT_CODE


class UserError(AdaptrlError, ValueError):
    """A mistake in the user's input (config, options, run directory); exit code 2."""

    exit_code = USER_EXIT_CODE


class FaultError(AdaptrlError, RuntimeError):
    """A fault of the machine or of the run (corrupt file, divergence, I/O); exit code 1."""

    exit_code = FAULT_EXIT_CODE
