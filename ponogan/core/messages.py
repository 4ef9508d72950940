"""One error path for every command (no torch imported).

Every error a user can hit ends as one ``error: ...`` line on stderr with a documented exit status:

* ``EXIT_OK`` (0): done;
* ``EXIT_FAILED`` (1): the command ran but some inputs failed, or writing failed;
* ``EXIT_USAGE`` (2): a usage error: a bad flag, setting, path or file, found before anything is written.

A command raises ``UsageError`` (exit 2) or ``CommandError`` (exit 1) with a message that says what to do;
``ponogan.cli.main`` (and ``train.py``) print it with ``print_error``. ``EXIT_STATUS_HELP`` is the line
every command's ``--help`` ends with.
"""

from __future__ import annotations

import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_STATUS_HELP = "exit status: 0 done, 1 some inputs failed (or writing failed), 2 usage error"


class UsageError(ValueError):
    """A user's flag, setting or file is wrong; nothing was written. Exit status 2."""

    exit_status = EXIT_USAGE


class CommandError(RuntimeError):
    """The command started but could not finish (an input failed, writing failed). Exit status 1."""

    exit_status = EXIT_FAILED


def first_line(err: BaseException) -> str:
    """An exception's message on one line: its first line (plus the next one when the first only
    introduces it, as ``load_state_dict``'s "Error(s) in loading state_dict for X:")."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    return " ".join(lines[:2]) if lines[0].endswith(":") and len(lines) > 1 else lines[0]


def one_line(message: object) -> str:
    """``message`` with every run of whitespace (newlines included) folded to one space."""
    return " ".join(str(message).split())


def print_error(message: object, status: int = EXIT_USAGE) -> int:
    """Print ``error: <message>`` as one line on stderr; returns ``status`` for the caller to exit with."""
    text = first_line(message) if isinstance(message, BaseException) else str(message)
    print("error: " + one_line(text), file=sys.stderr)
    return status


def exit_status(err: BaseException) -> int:
    """The documented exit status of an error raised by a command."""
    return getattr(err, "exit_status", EXIT_FAILED)
