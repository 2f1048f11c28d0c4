"""A run killed half-way resumes without re-running finished tasks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ratchet.gates.run_store import RunRecord


def run_lines(workspace: Path) -> list[bytes]:
    files = list((workspace / ".ratchet" / "runs").glob("*.jsonl"))
    return files[0].read_bytes().splitlines(keepends=True) if files else []


def test_killed_eval_resumes_without_rerunning_finished_tasks(workspace: Path) -> None:
    settings = workspace / "ratchet.toml"
    settings.write_text(settings.read_text().replace("concurrency = 8", "concurrency = 1"))
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    command = [
        sys.executable,
        "-m",
        "ratchet.pipeline.cli",
        "eval",
        "coder/v1",
        "--split",
        "dev",
        "--workspace",
        str(workspace),
    ]

    victim = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(run_lines(workspace)) < 10 and time.monotonic() < deadline and victim.poll() is None:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    before = run_lines(workspace)
    finished = [line for line in before if line.endswith(b"\n")]
    assert 10 <= len(finished) < 40, "killed half-way through the dev split"

    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(finished)} run(s) reused" in done.stdout

    after = run_lines(workspace)
    assert after[: len(finished)] == finished, "finished records are kept byte for byte (not re-run)"
    records = [RunRecord.model_validate_json(line) for line in after]
    keys = [(r.task_id, r.trial) for r in records]
    assert len(keys) == len(set(keys)), "no task ran twice"
    dev_size = int(done.stdout.split(" passed")[0].rsplit("/", 1)[1])
    assert len(records) == dev_size


def test_cycle_killed_during_gate_evaluation_resumes_to_the_same_verdict(workspace: Path, tmp_path: Path) -> None:
    import shutil

    reference = tmp_path / "reference"
    shutil.copytree(workspace, reference)
    settings = workspace / "ratchet.toml"
    settings.write_text(settings.read_text().replace("concurrency = 8", "concurrency = 1"))
    subprocess.run(
        [
            "git",
            "-C",
            str(workspace),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qam",
            "one task at a time",
        ],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    cycle = [sys.executable, "-m", "ratchet.pipeline.cli", "cycle", "--workspace"]
    runs = workspace / ".ratchet" / "runs"

    # its own process group, so the kill takes Prefect's temporary server down with it
    victim = subprocess.Popen(
        [*cycle, str(workspace)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and victim.poll() is None:
        files = sorted(runs.glob("*.jsonl")) if runs.exists() else []
        if len(files) >= 2 and sum(len(f.read_bytes().splitlines()) for f in files) >= 56 + 10:
            break  # dev is done and the gate evaluation is under way
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    snapshot = {f.name: f.read_bytes() for f in runs.glob("*.jsonl")}
    branches = subprocess.run(["git", "-C", str(workspace), "branch", "--list", "rc/*"], capture_output=True, text=True)
    assert branches.stdout.split() == ["rc/coder/1"], "the cycle was killed after making its RC"

    resumed = subprocess.run([*cycle, str(workspace)], env=env, capture_output=True, text=True)
    fresh = subprocess.run([*cycle, str(reference)], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0 and fresh.returncode == 0, resumed.stdout + resumed.stderr

    def verdict_lines(out: str) -> list[str]:
        return [line for line in out.splitlines() if line.startswith(("gate flips", "verdict", "new release", "RC "))]

    assert verdict_lines(resumed.stdout) == verdict_lines(fresh.stdout)
    assert "rc/coder/1" in resumed.stdout, "the interrupted cycle's RC was reused, not a second one made"
    for name, data in snapshot.items():
        finished = data[: data.rfind(b"\n") + 1]
        assert (runs / name).read_bytes().startswith(finished), "finished runs were not repeated"
