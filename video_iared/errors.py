"""The one exception type for mistakes a user fixes by pointing at another file or value.

Every layer raises a :class:`UserError` (or a subclass: ``ConfigError``, ``WeightsError``) for a missing
or empty file, a bad list, a config value that does not fit, a checkpoint that does not match the model
or the data, a budget out of range. The console command prints its message as one line and exits 2;
any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

__all__ = ["UserError", "Interrupted", "EXIT_USER_ERROR"]

EXIT_USER_ERROR = 2  # argparse's status for a bad command line, so scripts see one code for user mistakes


class UserError(Exception):
    """A mistake in the command's inputs: the message names the thing and what to do, in one line."""


class Interrupted(Exception):
    """A run stopped by a signal after saving its state; the console command prints the message (where
    the state is, how to continue) and exits with ``exit_status`` (128 + the signal, 130 for Ctrl-C)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_status = 128 + signum
