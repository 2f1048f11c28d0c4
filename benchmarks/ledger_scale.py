"""Ledger at scale: `history`, `verify` and `why` over a workspace with 1,000 releases.

Generates a real workspace (git repo, ledger, tags, RC branches with evidence) through the
registry's own write path, without running models: each candidate edits the agent's
instructions, its evidence holds outcome tables for 40 gate tasks x 3 trials per side, and its
verdict comes from the real gate code (gates.judge)
on those tables, so `ratchet verify` can re-derive every one. Every fifth candidate breaks a
task and is rejected. Then it times the three read commands in-process (the command's function
through the CLI runner, no interpreter start-up) and as a fresh `python -m pipeline.cli` process.

Targets (issue 6): history < 1 s, verify < 10 s, why < 1 s at 1,000 releases.

    PYTHONPATH=. python benchmarks/ledger_scale.py                  # 1,000 releases, a few minutes to build
    PYTHONPATH=. python benchmarks/ledger_scale.py --releases 50    # smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from results_json import write_results  # benchmarks/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results"
TASKS, TRIALS = 40, 3
TARGETS = {"history": 1.0, "verify": 10.0, "why": 1.0}


def outcome_table(passing: set[int]) -> bytes:
    rows = [
        {
            "task_id": f"task/{t}",
            "trial": k,
            "passed": t in passing,
            "score": float(t in passing),
            "error_type": None if t in passing else "AssertionError",
            "message": "",
            "trace_sha256": hashlib.sha256(f"{t}:{k}:{sorted(passing)}".encode()).hexdigest(),
        }
        for t in range(TASKS)
        for k in range(TRIALS)
    ]
    buffer = io.StringIO()
    pd.DataFrame(rows).to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def build(workspace: Path, releases: int, progress: bool = True) -> dict[str, int]:
    """A workspace whose coder agent has `releases` releases (v1 included) and the rejected RCs between."""
    from ratchet.gates import GatePolicy, JudgedSplit, judge, paired_counts
    from ratchet.pipeline.workspace import init_workspace
    from ratchet.releases.notes import ReleaseNotes
    from ratchet.releases.registry import Registry, evidence_dir

    init_workspace(workspace)
    registry = Registry(workspace)
    policy = GatePolicy(trials=TRIALS, min_fixes=0)  # a candidate that changes no outcome may be promoted
    passing = set(range(0, TASKS, 2))  # half the tasks pass on v1
    rc_count, made = 0, 1
    while made < releases:
        rc_count += 1
        breaks = rc_count % 5 == 0
        task = (rc_count * 7) % TASKS
        candidate = (passing - {min(passing)}) if breaks else passing | {task}
        agent_yaml = workspace / "agents" / "coder" / "agent.yaml"
        text = agent_yaml.read_text() + f"  - Step {rc_count}: keep task {task} in mind.\n"
        rc = registry.create_candidate("coder", {"agents/coder/agent.yaml": text.encode()}, f"rc {rc_count}")
        tables = {
            "outcomes-baseline-gate.csv": outcome_table(passing),
            "outcomes-candidate-gate.csv": outcome_table(candidate),
        }
        frames = {name: pd.read_csv(io.BytesIO(data)) for name, data in tables.items()}
        judged = judge(
            policy,
            JudgedSplit(paired_counts(frames["outcomes-baseline-gate.csv"], frames["outcomes-candidate-gate.csv"])),
        )
        verdict, classified = judged.verdict, judged.gate.frame
        kinds = (
            classified["b_rate"].ge(0.5).map({True: "P", False: "F"})
            + "->"
            + classified["c_rate"].ge(0.5).map({True: "P", False: "F"})
        )
        counts = {kind: int((kinds == kind).sum()) for kind in ("P->F", "F->P", "P->P", "F->F")}
        base = registry.current_release("coder").tag
        title = f"coder/v{made + 1}" if verdict.decision == "promote" else f"{rc.branch} (rejected)"
        notes = ReleaseNotes(
            agent="coder",
            title=title,
            base_release=base,
            rc=rc.branch,
            decision=verdict.decision,
            actor="Ratchet Bot <ratchet-bot@localhost>",
            reasons=verdict.reasons,
            intent=f"Generated change {rc_count}",
            targets=["wrong_answer"],
            remediation=f"step-{rc_count}",
            model="sim/humaneval",
            simulated=True,
            counts=counts,
            flips=[],
        )
        files = {
            **tables,
            "verdict.json": verdict.model_dump_json(indent=2).encode(),
            "notes.json": notes.model_dump_json(indent=2).encode(),
            "notes.md": notes.markdown().encode(),
        }
        rc = registry.add_evidence(rc, files, f"{rc.branch} {verdict.decision}")
        entry = dict(
            decision=verdict.decision,
            base_release=base,
            intent=notes.intent,
            remediation=notes.remediation,
            fixes=verdict.fixes,
            regressions=verdict.regressions,
            policy_hash=verdict.policy_hash,
            evidence=evidence_dir("coder", rc.number),
            reason="; ".join(verdict.reasons),
            stage="gate",
            flip_counts=counts,
            outcome_hashes={n: hashlib.sha256(d).hexdigest() for n, d in tables.items()},
            gate_pass_rate=len(candidate) / TASKS,
            baseline_gate_pass_rate=len(passing) / TASKS,
        )
        if verdict.decision == "promote":
            registry.promote(rc, notes.markdown(), **entry)
            passing, made = candidate, made + 1
        else:
            registry.reject(rc, notes.markdown(), **entry)
            subprocess.run(["git", "-C", str(workspace), "checkout", "-q", "--", "agents"], check=True)
        if progress and made % 100 == 0 and verdict.decision == "promote":
            print(f"  {made} releases ({rc_count} candidates)", flush=True)
    return {"releases": made, "candidates": rc_count}


def time_in_process(args: list[str]) -> tuple[float, int]:
    from typer.testing import CliRunner

    from ratchet.pipeline.cli.app import app

    started = time.perf_counter()
    result = CliRunner().invoke(app, args)
    return time.perf_counter() - started, result.exit_code


def time_process(args: list[str]) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ratchet.pipeline.cli", *args], env=env, capture_output=True, text=True
    )
    return time.perf_counter() - started, done.returncode


def main(argv: list[str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--releases", type=int, default=1000)
    parser.add_argument(
        "--workspace",
        type=Path,
        help="Keep the generated workspace here (default: a temp dir); "
        "one that exists already is timed as it is, not rebuilt.",
    )
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("GIT_CONFIG_GLOBAL", "/dev/null")
    started = datetime.now(UTC)
    tmp = Path(tempfile.mkdtemp(prefix="ledger-scale-"))
    workspace = args.workspace or tmp / "ws"
    clock = time.perf_counter()
    if (workspace / "releases" / "coder" / "ledger.jsonl").is_file():
        from ratchet.releases.registry import Registry

        entries = Registry(workspace).ledger("coder")
        made = {"releases": sum(1 for e in entries if e.release), "candidates": sum(1 for e in entries if e.rc)}
        build_s = 0.0
    else:
        made = build(workspace, args.releases)
        build_s = time.perf_counter() - clock
    commands = {
        "history": ["history", "--workspace", str(workspace)],
        "verify": ["verify", "--workspace", str(workspace)],
        "why": ["why", "coder", "task/7", "--workspace", str(workspace)],
    }
    rows = []
    for name, command in commands.items():
        inproc, code = time_in_process(command)
        whole, whole_code = time_process(command)
        rows.append(
            {
                "command": name,
                "in_process_s": round(inproc, 3),
                "process_s": round(whole, 3),
                "exit_code": code,
                "process_exit_code": whole_code,
                "target_s": TARGETS[name],
                "meets_target": inproc < TARGETS[name],
            }
        )
    result = {
        "version": 1,
        "benchmark": "ledger_scale",
        "started_at": started.isoformat(timespec="seconds"),
        "build_s": round(build_s, 1),
        **made,
        "rows": rows,
        "host": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
    }
    write_results("ledger_scale", result, args.out_dir, started)
    table = Table(
        title=f"Ledger at scale: {made['releases']} releases, {made['candidates']} candidates "
        f"(built in {build_s:.0f} s)"
    )
    for column in ("command", "in-process s", "whole process s", "exit", "target s", "meets target"):
        table.add_column(column, justify="left" if column == "command" else "right")
    for row in rows:
        table.add_row(
            row["command"],
            f"{row['in_process_s']:.3f}",
            f"{row['process_s']:.3f}",
            str(row["exit_code"]),
            f"< {row['target_s']:g}",
            "yes" if row["meets_target"] else "NO",
        )
    Console(width=120).print(table)
    if args.workspace is None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
