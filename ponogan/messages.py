"""One-line messages for the errors a user can hit, shared by every command (no torch imported)."""

from __future__ import annotations


def first_line(err: BaseException) -> str:
    """An exception's message on one line: its first line (plus the next one when the first only
    introduces it, as ``load_state_dict``'s "Error(s) in loading state_dict for X:")."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    return " ".join(lines[:2]) if lines[0].endswith(":") and len(lines) > 1 else lines[0]
