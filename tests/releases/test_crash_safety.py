"""A cycle SIGKILLed at every internal point of its write steps: after a restart the decision is
fully recorded exactly once, git is consistent, and nothing is half-done."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ratchet.releases.audit import verify_workspace
from ratchet.releases.crashpoints import POINTS
from ratchet.releases.ledger import parse_trailers
from ratchet.releases.registry import Registry

AFTER_COMMIT_POINT = ("decision:after-main", "decision:after-checkout")  # main already moved: the entry counts


def git(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(ws), *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def prefect_url(prefect_server: None) -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


@pytest.fixture(scope="module")
def reference(demo_template: Path, tmp_path_factory: pytest.TempPathFactory, prefect_url: str) -> Iterator[Path]:
    """The same cycle, never interrupted; its run store is copied into every crash workspace so that the
    crashed cycles reuse the model runs and only the write steps differ."""
    ws = tmp_path_factory.mktemp("crash") / "reference"
    shutil.copytree(demo_template, ws, symlinks=True)
    done = cycle(ws, prefect_url)
    assert done.returncode == 0, done.stdout + done.stderr
    yield ws


def cycle(ws: Path, prefect_url: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.getcwd(),
        "PREFECT_API_URL": prefect_url,
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    env.pop("RATCHET_CRASH_AT", None)
    if crash_at:
        env["RATCHET_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "ratchet.pipeline.cli", "cycle", "--workspace", str(ws)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def decisions(ws: Path) -> list[tuple[str | None, str]]:
    return [(e.rc, e.decision) for e in Registry(ws).ledger("coder")]


@pytest.mark.parametrize("point", POINTS)
def test_a_cycle_killed_at_any_write_point_resumes_to_one_complete_decision(
    point: str, reference: Path, demo_template: Path, tmp_path: Path, prefect_url: str
) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(demo_template, ws, symlinks=True)
    shutil.copytree(reference / ".ratchet" / "runs", ws / ".ratchet" / "runs")
    expected = decisions(reference)[-1]
    assert expected == ("rc/coder/1", "promote")

    killed = cycle(ws, prefect_url, crash_at=point)
    assert killed.returncode == -9, f"not killed at {point}: {killed.stdout[-2000:]}{killed.stderr[-2000:]}"
    recorded = decisions(ws)
    if point in AFTER_COMMIT_POINT:
        assert recorded[-1] == expected, "main moved: the decision is recorded"
    else:
        assert recorded == [(None, "release")], "main never moved: no decision is recorded"

    # the restart: the next cycle. Killed before main moved, it resumes rc/coder/1 and makes the same decision;
    # killed after, it completes the recorded one (checkout, tag) and goes on to the next candidate on v2
    done = cycle(ws, prefect_url)
    assert done.returncode == 0, done.stdout + done.stderr

    after = decisions(ws)
    assert after[:2] == [(None, "release"), expected], "the decision, the same as without the crash"
    assert [rc for rc, _ in after].count("rc/coder/1") == 1, "recorded exactly once"
    if point not in AFTER_COMMIT_POINT:
        assert len(after) == 2
        branches = git(ws, "branch", "--list", "rc/*").stdout.split()
        assert branches == ["rc/coder/1"], "an RC left undecided is resumed, not made again as rc/coder/2"
    entry = Registry(ws).ledger("coder")[1]
    ref = Registry(reference).ledger("coder")[-1]
    assert (entry.fixes, entry.regressions, entry.release) == (ref.fixes, ref.regressions, ref.release)
    fsck = git(ws, "fsck", "--strict", "--no-dangling")
    assert fsck.returncode == 0 and "error" not in fsck.stdout + fsck.stderr, fsck.stdout + fsck.stderr
    assert git(ws, "status", "--porcelain").stdout == "", "the checkout follows main"
    assert git(ws, "branch", "--list", "rc/coder/1").stdout.strip(), "the first RC's branch is kept"
    release_commit = git(ws, "log", "--format=%H", "--grep=^Release coder/v2:", "main").stdout.split()
    assert len(release_commit) == 1 and git(ws, "rev-list", "-n1", "coder/v2").stdout.strip() == release_commit[0]
    tag = git(ws, "tag", "-l", "--format=%(contents)", "coder/v2").stdout
    assert parse_trailers(tag) == entry.trailers(), "the tag carries the recorded entry's facts"
    audit = verify_workspace(ws)
    assert audit.ok, [p.message for a in audit.agents for p in a.problems]
