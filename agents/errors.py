"""Ratchet's exception hierarchy, named by whose fault it is.

Every package may raise these (ARCHITECTURE.md: the one thing all packages share).
The CLI maps each class to an exit code and prints the message as one line.
"""

from __future__ import annotations


class RatchetError(Exception):
    """Base class. The message must tell the user what went wrong and what to do."""

    exit_code: int = 1


class UserError(RatchetError):
    """Bad input from the user: a file, a field, an argument."""

    exit_code = 2


class ModelBackendError(RatchetError):
    """A model backend failed in a way retries did not fix."""

    exit_code = 3


class StateError(RatchetError):
    """The workspace is in a state that forbids the action (lock held, dirty tree, missing ref)."""

    exit_code = 4
