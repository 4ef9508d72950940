"""The errors a training run raises for problems a user can fix; each message says how.

``TrainingError`` (exit 1) when inputs or writing failed, ``UsageError`` (exit 2) when the request
itself cannot be done and nothing was written, ``NonFiniteLossError`` when a loss diverged.
"""

from __future__ import annotations

from ponogan.core import messages


class TrainingError(messages.CommandError):
    """A run cannot start or continue for a reason the user can fix (message says how). Exit 1."""


class NonFiniteLossError(TrainingError):
    """A loss became NaN/Inf; the message names the loss and the step."""


class UsageError(TrainingError, messages.UsageError):
    """The request itself cannot be done as asked (run folder, network size, resume); nothing was
    written. Exit 2."""

    exit_status = messages.EXIT_USAGE
