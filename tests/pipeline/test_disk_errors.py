"""A full or read-only disk, wherever it strikes, becomes one actionable line; other errors pass through."""

from __future__ import annotations

import errno
import subprocess

from git import GitCommandError

from ratchet.pipeline.cli.disk_errors import disk_problem


def test_a_full_disk_names_the_file_and_says_what_to_do() -> None:
    message = disk_problem(OSError(errno.ENOSPC, "No space left on device", "/ws/.ratchet/runs/a.jsonl"))
    assert message is not None
    assert message.startswith("the disk is full (writing /ws/.ratchet/runs/a.jsonl); free some space")
    assert "run the same command again" in message


def test_the_condition_is_found_in_the_cause_chain_and_in_git_stderr() -> None:
    try:
        try:
            raise OSError(errno.EROFS, "Read-only file system", "/ws/.ratchet/locks/registry.lock")
        except OSError as exc:
            raise RuntimeError("Task run encountered an exception") from exc
    except RuntimeError as wrapped:
        assert disk_problem(wrapped).startswith("the filesystem is read-only (writing /ws/.ratchet/locks/")
    git_error = GitCommandError(
        ["git", "commit"], 128, stderr="error: unable to write file '.git/objects/ab/cd': No space left on device"
    )
    assert disk_problem(git_error).startswith("the disk is full (writing .git/objects/ab/cd)")
    called = subprocess.CalledProcessError(1, ["git"], stderr=b"fatal: Disk quota exceeded")
    assert disk_problem(called).startswith("the disk quota is exceeded")


def test_other_errors_are_not_disk_problems() -> None:
    assert disk_problem(OSError(errno.ENOENT, "No such file or directory", "x")) is None
    assert disk_problem(ValueError("bad")) is None
