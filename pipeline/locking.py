"""One improvement cycle per agent per workspace at a time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ratchet.agents import StateError


def _acquire(workspace: Path, agent: str) -> tuple[FileLock, Path]:
    folder = workspace / ".ratchet" / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / f"cycle-{agent}.lock"))
    owner = folder / f"cycle-{agent}.owner"
    try:
        lock.acquire(timeout=0)
    except Timeout as exc:
        who = owner.read_text().strip() if owner.exists() else "another process"
        raise StateError(
            f"another improvement cycle for agent {agent!r} is running in {workspace} ({who}); "
            f"wait for it to finish (lock file {lock.lock_file})"
        ) from exc
    return lock, owner


def check_unlocked(workspace: Path, agent: str) -> None:
    """Fail fast, before any slow setup, when a cycle for `agent` is already running."""
    lock, _ = _acquire(workspace, agent)
    lock.release()


@contextmanager
def cycle_lock(workspace: Path, agent: str) -> Iterator[None]:
    """Hold the agent's cycle lock; StateError at once when another cycle holds it."""
    lock, owner = _acquire(workspace, agent)
    try:
        owner.write_text(f"pid {os.getpid()}\n")
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()
