"""The `ratchet` command end to end: quickstart, history, show, errors, the cycle lock."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ratchet.releases.registry import Registry


def git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(ws), *args], check=True, capture_output=True, text=True).stdout


def tree_snapshot(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_quickstart_promotes_then_rejects_and_history_agrees_with_git(tmp_path: Path, cli) -> None:
    demo = tmp_path / "demo"
    out = cli("quickstart", "--dir", str(demo))
    assert out.exit_code == 0, out.output
    text = out.output
    assert "SIMULATED" in text
    assert text.count("verdict: PROMOTE") >= 1 and text.count("verdict: REJECT") == 1
    assert re.search(r"verdict: REJECT: \d+ confirmed regression\(s\), policy allows 0", text)
    assert re.search(
        r"confirmed \(one-sided Fisher\): P->F \d+, F->P \d+; 2 trial\(s\) per task, \d+ confirmation run", text
    )
    assert "new release: coder/v2" in text
    assert re.search(r"tagged coder/rc\d+-rejected; the canonical line stays at coder/v\d+", text)
    assert re.search(r"symptoms \(top patterns, failed dev runs\): non_code_output \d+", text)
    assert re.search(r"gate flips: P->F \d+, F->P \d+, P->P \d+, F->F \d+", text)

    entries = Registry(demo).ledger("coder")
    promoted = [e.release for e in entries if e.decision == "promote"]
    rejected = [e.rc for e in entries if e.decision == "reject"]
    assert promoted and len(rejected) == 1 and entries[-1].decision == "reject"
    tags = set(git(demo, "tag").split())
    assert tags == {"coder/v1", *promoted, f"coder/rc{rejected[0].rsplit('/', 1)[1]}-rejected"}
    for entry in entries[1:]:
        assert entry.rc in git(demo, "branch", "--list", "rc/*")
    log = git(demo, "log", "--format=%s", "main")
    assert all(f"Release {tag}" in log for tag in promoted)
    assert f"Ledger: reject {rejected[0]}" in log

    history = cli("history", "--workspace", str(demo))
    assert history.exit_code == 0
    for tag in promoted:
        assert tag in history.output
    assert rejected[0] in history.output and "reject" in history.output

    show = cli("show", "coder/v2", "--workspace", str(demo))
    assert show.exit_code == 0
    assert "coder/v2" in show.output and "F->P" in show.output and "Engineering spec" in show.output

    before = tree_snapshot(demo)
    again = cli("quickstart", "--dir", str(demo))
    assert again.exit_code == 2
    assert "already exists and is not empty" in again.output and "Traceback" not in again.output
    assert tree_snapshot(demo) == before, "a refused quickstart changes nothing"


def test_init_refuses_a_non_empty_directory(tmp_path: Path, cli) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    out = cli("init", str(tmp_path))
    assert out.exit_code == 2 and "not empty" in out.output
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_invalid_agent_yaml_gives_one_line_naming_the_field(workspace: Path, cli) -> None:
    spec = workspace / "agents/coder/agent.yaml"
    spec.write_text(spec.read_text().replace("max_turns: 6", "max_turns: 0"))
    git(workspace, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "break it")
    git(workspace, "-c", "user.name=t", "-c", "user.email=t@t", "tag", "-a", "coder/v9", "-m", "broken")
    out = cli("eval", "coder/v9", "--split", "dev", "--workspace", str(workspace))
    assert out.exit_code == 2
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1, out.output
    assert "agent.yaml" in lines[0] and "field 'max_turns'" in lines[0] and "Traceback" not in out.output

    debug = cli("eval", "coder/v9", "--split", "dev", "--workspace", str(workspace), "--debug")
    assert debug.exit_code == 2 and "Traceback" in debug.output


def test_not_a_workspace_is_a_clear_error(tmp_path: Path, cli) -> None:
    out = cli("cycle", "--workspace", str(tmp_path))
    assert out.exit_code == 2 and "ratchet.toml" in out.output and "ratchet init" in out.output


def test_eval_prints_pass_rate_and_reuses_the_run_store(workspace: Path, cli) -> None:
    first = cli("eval", "coder/v1", "--split", "holdout", "--workspace", str(workspace))
    assert first.exit_code == 0, first.output
    match = re.search(r"coder/v1 on humaneval/holdout: (\d+)/(\d+) passed \((\d+\.\d)%\)", first.output)
    assert match and 0 < int(match.group(1)) < int(match.group(2))
    assert "SIMULATED" in first.output and "0 run(s) reused" in first.output
    second = cli("eval", "coder/v1", "--split", "holdout", "--workspace", str(workspace))
    assert f"{match.group(2)} run(s) reused" in second.output
    assert match.group(0) in second.output


def test_second_cycle_while_one_runs_fails_fast(workspace: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from ratchet.pipeline.locking import cycle_lock\n"
            "with cycle_lock(Path(sys.argv[1]), 'coder'):\n    print('locked', flush=True); time.sleep(60)",
            str(workspace),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-m", "ratchet.pipeline.cli", "cycle", "--workspace", str(workspace)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 4
    assert "another improvement cycle for agent 'coder' is running" in out.stdout + out.stderr
    assert f"pid {holder.pid}" in out.stdout + out.stderr
    assert elapsed < 20, "fails before starting Prefect or running anything"
    assert not (workspace / ".ratchet" / "runs").exists()


def test_a_failing_model_backend_is_one_line_and_stores_nothing(workspace: Path, cli) -> None:
    out = cli("eval", "coder/v1", "--split", "dev", "--model", "nonexistent/foo", "--workspace", str(workspace))
    assert out.exit_code == 3
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "model 'nonexistent/foo' failed" in lines[0]
    runs = workspace / ".ratchet" / "runs"
    assert not runs.exists() or all(f.stat().st_size == 0 for f in runs.glob("*.jsonl"))


def test_flaky_lists_tasks_that_flipped_within_one_version(workspace: Path, cli) -> None:
    import json as _json

    out = cli("flaky", "--workspace", str(workspace))
    assert out.exit_code == 0 and "no stored runs" in out.output
    assert cli("eval", "coder/v1", "--split", "gate", "--trials", "2", "--workspace", str(workspace)).exit_code == 0
    out = cli("flaky", "--workspace", str(workspace))
    assert out.exit_code == 0 and re.search(r"0 flaky task\(s\) among \d+ with stored runs", out.output)

    store = next((workspace / ".ratchet" / "runs").glob("*.jsonl"))
    first = _json.loads(store.read_text().splitlines()[0])
    first.update(trial=2)
    first["outcome"].update(trial=2, passed=not first["outcome"]["passed"])
    with store.open("a") as handle:  # a third run of the same version that came out the other way
        handle.write(_json.dumps(first) + "\n")
    out = cli("flaky", "--workspace", str(workspace))
    assert out.exit_code == 0 and re.search(r"1 flaky task\(s\)", out.output)
    assert first["task_id"] in out.output and "1 / 1" in out.output
