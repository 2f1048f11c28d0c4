"""A run killed half-way resumes without re-running finished tasks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gates.run_store import RunRecord


def run_lines(workspace: Path) -> list[bytes]:
    files = list((workspace / ".ratchet" / "runs").glob("*.jsonl"))
    return files[0].read_bytes().splitlines(keepends=True) if files else []


def test_killed_eval_resumes_without_rerunning_finished_tasks(workspace: Path) -> None:
    settings = workspace / "ratchet.toml"
    settings.write_text(settings.read_text().replace("concurrency = 8", "concurrency = 1"))
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    command = [sys.executable, "-m", "pipeline.cli", "eval", "coder/v1", "--split", "dev", "--workspace", str(workspace)]

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
