"""One-line messages for a machine that cannot write: disk full, quota exceeded, read-only filesystem.

These are not Ratchet's or the user's input's fault, and they can strike anywhere (the run store,
git, Prefect's database), so the CLI recognises them on the way out instead of every writer
wrapping its own. They are found in the exception, its causes and context, and in the stderr of a
failed git command. Every write Ratchet makes is atomic or append-then-fsync (the run store, the
registry's single ref update), so after such an error finished work is kept and the same command
resumes once the condition is fixed.
"""

from __future__ import annotations

import errno
import re

_CONDITIONS = {
    errno.ENOSPC: ("the disk is full", "free some space"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space or raise the quota"),
    errno.EROFS: ("the filesystem is read-only", "make it writable"),
}
_GIT_TEXT = {
    "No space left on device": errno.ENOSPC,
    "Disk quota exceeded": errno.EDQUOT,
    "Read-only file system": errno.EROFS,
}


def disk_problem(exc: BaseException) -> str | None:
    """The message for an exception caused by an unwritable disk, or None for anything else."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _condition(current)
        if found is not None:
            code, where = found
            what, fix = _CONDITIONS[code]
            place = f" (writing {where})" if where else ""
            return (
                f"{what}{place}; {fix}, then run the same command again: finished work is kept "
                f"in .ratchet/ and nothing half-written was recorded"
            )
        current = current.__cause__ or current.__context__
    return None


def _condition(exc: BaseException) -> tuple[int, str] | None:
    if isinstance(exc, OSError) and exc.errno in _CONDITIONS:
        return exc.errno, str(exc.filename or "")
    stderr = getattr(exc, "stderr", None)  # git.GitCommandError and subprocess.CalledProcessError
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    text = f"{stderr or ''} {exc}"
    for needle, code in _GIT_TEXT.items():
        if needle in text:
            return code, _git_path(text, needle)
    return None


def _git_path(text: str, needle: str) -> str:
    """The path git named right before the error text ("unable to write 'x': No space ..."), if any."""
    found = re.findall(r"'([^'\s]+)'\s*:\s*" + re.escape(needle), text)
    return found[-1] if found else ""
