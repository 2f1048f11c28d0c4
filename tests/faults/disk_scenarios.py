"""A full disk and a read-only workspace, for real: run inside `unshare -rm` (a user and mount namespace).

    unshare -rm python tests/faults/disk_scenarios.py {disk-full,read-only} TEMPLATE WORKDIR PREFECT_URL

In its own mount namespace the script mounts a small tmpfs (disk full) or a read-only bind mount
(read-only workspace) over a copy of the demo workspace, runs a real cycle into the condition,
checks that it failed with a one-line error and that nothing was lost, fixes the condition
(remount bigger / writable) and runs the cycle again. The mounts exist only inside the namespace,
so every check happens here; the result is one JSON object on the last line of stdout, which
tests/faults/test_broken_environment.py reads.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.faults.kill_campaign import decision_of, run_cycle, stored_runs

FULL_DISK_KB = 1536  # the demo workspace is ~0.5 MB; a cycle writes ~2 MB (run store, git, checkouts)


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def state(ws: Path) -> dict[str, object]:
    """What must survive the failure untouched: the ledger, git's integrity, a readable run store."""
    from ratchet.releases.registry import Registry

    fsck = subprocess.run(["git", "-C", str(ws), "fsck", "--strict", "--no-dangling"], capture_output=True, text=True)
    readable = True
    try:
        for path in (ws / ".ratchet" / "runs").glob("*.jsonl"):
            for line in path.read_bytes().split(b"\n")[:-1]:
                json.loads(line)
    except ValueError:
        readable = False
    return {
        "ledger": [(e.rc, e.decision) for e in Registry(ws).ledger("coder")],
        "fsck_clean": fsck.returncode == 0,
        "runs": sum(stored_runs(ws).values()),
        "runs_readable": readable,
        "tags": subprocess.run(["git", "-C", str(ws), "tag"], capture_output=True, text=True).stdout.split(),
    }


def scenario(kind: str, template: Path, workdir: Path, prefect_url: str) -> dict[str, object]:
    mnt = workdir / "mnt"
    mnt.mkdir(parents=True)
    if kind == "disk-full":
        mount("-t", "tmpfs", "-o", f"size={FULL_DISK_KB}k", "tmpfs", str(mnt))
        ws = mnt / "ws"
        shutil.copytree(template, ws, symlinks=True)
    else:
        ws = mnt / "ws"
        shutil.copytree(template, ws, symlinks=True)
        mount("--bind", str(ws), str(ws))
        mount("-o", "remount,bind,ro", str(ws))
    code, output = run_cycle(ws, prefect_url, timeout=300)
    failed = {"code": code, "output": output[-3000:], **state(ws)}
    if kind == "disk-full":
        mount("-o", "remount,size=256m", str(mnt))
    else:
        mount("-o", "remount,bind,rw", str(ws))
    code, output = run_cycle(ws, prefect_url, timeout=300)
    resumed = {"code": code, "output": output[-1500:], "decision": decision_of(ws), **state(ws)}
    return {"failed": failed, "resumed": resumed}


if __name__ == "__main__":
    kind, template, workdir, url = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    print(json.dumps(scenario(kind, template, workdir, url), default=str))
