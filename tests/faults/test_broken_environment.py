"""A cycle on a broken machine: disk full, read-only workspace, a corrupted run-store file, a git
index.lock left behind. Each gives a one-line error (exit 4, no traceback) that says what to do,
loses nothing (ledger, tags, git, run store intact), and once the condition is fixed the same
command resumes to the uninterrupted cycle's verdict."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ratchet.releases.registry import Registry
from tests.faults.kill_campaign import Reference, decision_of, run_cycle

pytestmark = pytest.mark.slow
SCENARIOS = Path(__file__).with_name("disk_scenarios.py")
INITIAL = [(None, "release")]


def namespaces_available() -> bool:
    probe = (
        subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
        if shutil.which("unshare")
        else None
    )
    return probe is not None and probe.returncode == 0


def one_line_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    return lines[0]


def git(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(ws), *args], capture_output=True, text=True)


def intact(ws: Path) -> None:
    """Nothing half-written: only the initial release, its tag, a consistent repository."""
    assert [(e.rc, e.decision) for e in Registry(ws).ledger("coder")] == INITIAL
    assert git(ws, "tag").stdout.split() == ["coder/v1"]
    assert git(ws, "fsck", "--strict", "--no-dangling").returncode == 0


@pytest.mark.skipif(
    not namespaces_available(),
    reason="needs `unshare -rm` (user + mount namespaces) for a real "
    "full disk / read-only mount; this host does not allow it",
)
@pytest.mark.parametrize("kind", ["disk-full", "read-only"])
def test_an_unwritable_disk_stops_the_cycle_cleanly_and_it_resumes(
    kind: str, reference: Reference, demo_template: Path, tmp_path: Path, prefect_url: str
) -> None:
    done = subprocess.run(
        ["unshare", "-rm", sys.executable, str(SCENARIOS), kind, str(demo_template), str(tmp_path), prefect_url],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    failed, resumed = result["failed"], result["resumed"]
    assert failed["code"] == 4, failed["output"]
    error = one_line_error(failed["output"])
    expected = "the disk is full" if kind == "disk-full" else "the filesystem is read-only"
    assert expected in error and "run the same command again" in error, error
    assert [tuple(entry) for entry in failed["ledger"]] == INITIAL and failed["tags"] == ["coder/v1"]
    assert failed["fsck_clean"] and failed["runs_readable"]
    assert resumed["code"] == 0, resumed["output"]
    assert resumed["decision"] == json.loads(json.dumps(reference.decision)), "the verdict of the uninterrupted cycle"
    assert resumed["fsck_clean"] and resumed["runs_readable"]


def test_a_corrupted_run_store_file_is_named_and_the_cycle_resumes_without_it(
    reference: Reference, demo_template: Path, tmp_path: Path, prefect_url: str
) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(demo_template, ws, symlinks=True)
    code, _ = run_cycle(ws, prefect_url, crash_at="candidate:after-commit")  # runs stored, no decision yet
    assert code == -9
    damaged = max((ws / ".ratchet" / "runs").glob("*.jsonl"), key=lambda p: p.stat().st_size)
    lines = damaged.read_bytes().split(b"\n")
    lines[len(lines) // 2] = lines[len(lines) // 2][:40] + b"\xff garbage"  # a damaged line in the middle
    damaged.write_bytes(b"\n".join(lines))

    code, output = run_cycle(ws, prefect_url)
    assert code == 4, output[-3000:]
    error = one_line_error(output)
    assert damaged.name in error and "corrupted run record" in error and "delete the file" in error, error
    intact(ws)

    damaged.unlink()  # what the message says to do
    code, output = run_cycle(ws, prefect_url)
    assert code == 0, output[-3000:]
    assert decision_of(ws) == reference.decision


def test_a_stale_git_index_lock_is_named_and_the_cycle_resumes_once_it_is_gone(
    reference: Reference, demo_template: Path, tmp_path: Path, prefect_url: str
) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(demo_template, ws, symlinks=True)
    lock = ws / ".git" / "index.lock"
    lock.write_bytes(b"")  # what a git process killed mid-write leaves behind

    code, output = run_cycle(ws, prefect_url)
    assert code == 4, output[-3000:]
    error = one_line_error(output)
    assert "index.lock" in error, error
    intact(ws)

    lock.unlink()
    code, output = run_cycle(ws, prefect_url)
    assert code == 0, output[-3000:]
    assert decision_of(ws) == reference.decision
