"""Named points inside the registry's write steps where a test can kill the process.

`RATCHET_CRASH_AT=<point>` in the environment makes `crash_point(<point>)` SIGKILL the running
process there: no cleanup, no finally blocks, exactly like a power cut. The crash-safety tests
(tests/releases/test_crash_safety.py) kill a real cycle at every point and show that after a
restart the decision is either fully recorded or fully absent. Unset, it costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "candidate:after-commit",  # the RC's change commit exists, its branch does not
    "evidence:after-commit",  # the evidence commit exists, the RC branch does not point at it
    "evidence:after-branch",  # evidence recorded on the RC branch, no ledger entry yet
    "decision:after-commit",  # main's next commit (merge + ledger line) exists, main not moved
    "decision:after-main",  # main moved, the checked-out files not updated yet
    "decision:after-checkout",  # files updated, the release (or rejected) tag not made yet
)


def crash_point(name: str) -> None:
    """SIGKILL this process if RATCHET_CRASH_AT names this point."""
    if os.environ.get("RATCHET_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
