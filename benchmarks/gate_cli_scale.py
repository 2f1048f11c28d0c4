"""`ratchet gate` at scale: the results-file reader and the whole CLI over 1,000,000 rows a side.

Writes two results files (JSONL, gates/results_file.py) into a temp folder, a baseline and a
candidate of N tasks x T trials each (default 200,000 x 5 = 1,000,000 rows a side), drawn with a
seeded numpy generator the way a real suite looks:

    68% stable passes   p = 1
    12% stable fails    p = 0
    20% flaky           p ~ U(0.2, 0.8)

The candidate has the baseline's pass probabilities except that 0.1% of the stable passes break
(p = 0) and 0.1% of the stable fails are fixed (p = 1). Ids look like `task-123456`; one line in
ten also carries a `score`.

Then it measures:

    reader, fast path      `load_results` on the baseline file, in-process (best of --repeats); and
                           the peak RSS of a child process that imports it and reads that file once
    reader, per-line       the per-line pydantic path (`_read_per_line`) on a 100,000-row file,
                           in-process (best of --repeats): the reader before the columnar path
    ratchet gate (CLI)     `python -m ratchet.pipeline.cli gate --baseline B --candidate C --json`
                           as a child process, on the N x T pair, on an N/2 x T pair, and on a
                           10-task pair (the start-up floor): wall seconds, and the child's peak
                           RSS as its VmHWM (/proc/self/status) when it exits: a two-line wrapper
                           runs the CLI module as `-m` does and writes it. Not ru_maxrss, which
                           Linux carries over fork and exec from the parent (this process, large
                           once it has written the files) into the child.

Targets: the CLI under 3 s wall and under 400 MB peak RSS at 1,000,000 rows a side (on 2 cores).
Exit codes 0, 1 and 2 are verdicts (the decision is read from the JSON); 3 is an error, and so is a
traceback on stderr or a missing verdict on stdout: the output of such a run is printed and kept in the JSON.

    PYTHONPATH=. python benchmarks/gate_cli_scale.py            # 200,000 tasks x 5 trials a side
    PYTHONPATH=. python benchmarks/gate_cli_scale.py --quick    # 20,000 tasks: a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from results_json import write_results  # benchmarks/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results"
TARGET_ROWS, TARGET_WALL_S, TARGET_RSS_MB = 1_000_000, 3.0, 400.0
PER_LINE_ROWS = 100_000
CHANGED_SHARE = 0.001  # of the stable passes that break, and of the stable fails that get fixed
FLOOR_TASKS = 10


def pass_probabilities(rng: np.random.Generator, tasks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per task: the baseline's and the candidate's pass probability."""
    kind = rng.choice(3, size=tasks, p=[0.68, 0.12, 0.20])
    base = np.where(kind == 0, 1.0, np.where(kind == 1, 0.0, rng.uniform(0.2, 0.8, tasks)))
    cand = base.copy()
    cand[(kind == 0) & (rng.random(tasks) < CHANGED_SHARE)] = 0.0
    cand[(kind == 1) & (rng.random(tasks) < CHANGED_SHARE)] = 1.0
    return base, cand


def write_side(path: Path, p: np.ndarray, trials: int, rng: np.random.Generator) -> int:
    """One results file: `trials` lines per task, in task order; one line in ten with a score. Returns its rows."""
    passed = rng.random((p.size, trials)) < p[:, None]
    scored = rng.random((p.size, trials)) < 0.1
    partial = np.round(rng.uniform(0.0, 0.5, (p.size, trials)), 3)
    chunk = 20_000
    with path.open("w", encoding="utf-8") as out:
        for first in range(0, p.size, chunk):
            lines = []
            for task in range(first, min(first + chunk, p.size)):
                for trial in range(trials):
                    ok = bool(passed[task, trial])
                    line = f'{{"task_id": "task-{task:06d}", "trial": {trial}, "pass": {"true" if ok else "false"}'
                    if scored[task, trial]:
                        line += f', "score": {1.0 if ok else partial[task, trial]}'
                    lines.append(line + "}\n")
            out.write("".join(lines))
    return p.size * trials


def write_pair(folder: Path, name: str, tasks: int, trials: int, seed: int) -> tuple[Path, Path, int]:
    rng = np.random.default_rng(seed)
    base, cand = pass_probabilities(rng, tasks)
    baseline, candidate = folder / f"{name}-baseline.jsonl", folder / f"{name}-candidate.jsonl"
    rows = write_side(baseline, base, trials, rng)
    write_side(candidate, cand, trials, rng)
    return baseline, candidate, rows


def time_reader(read: Any, path: Path, rows: int, repeats: int) -> dict[str, Any]:
    """Best wall time of `read(path)` over `repeats` runs, in-process."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        loaded = read(path)
        times.append(time.perf_counter() - started)
        assert len(loaded.outcomes) == rows, (len(loaded.outcomes), rows)
    best = min(times)
    return {
        "rows": rows,
        "seconds": round(best, 4),
        "all_seconds": [round(t, 4) for t in times],
        "rows_per_s": round(rows / best),
        "notes": loaded.notes,
    }


# Peak RSS is the child's VmHWM (/proc/self/status), read as it exits. Not ru_maxrss: Linux carries the
# parent's high-water mark over fork and exec into the child's, so a child of this (large) process would
# report at least this process's peak.
PEAK = """
import atexit, os

def _peak():
    with open("/proc/self/status") as status, open(os.environ["GATE_SCALE_PEAK"], "w") as out:
        out.write(" ".join(line.split()[1] for line in status if line.startswith(("VmHWM:", "VmRSS:"))))
"""
READER_CHILD = (
    PEAK
    + """
import sys
from pathlib import Path
import pyarrow.compute, pyarrow.json  # imported by the reader's first call
from ratchet.gates.results_file import load_results
_peak()
os.rename(os.environ["GATE_SCALE_PEAK"], os.environ["GATE_SCALE_PEAK"] + ".imported")
load_results(Path(sys.argv[1]))
_peak()
"""
)
CLI_CHILD = (
    PEAK
    + """
import runpy, sys
atexit.register(_peak)
sys.argv = ["ratchet", *sys.argv[1:]]
runpy.run_module("ratchet.pipeline.cli", run_name="__main__", alter_sys=True)  # as `python -m ratchet.pipeline.cli`
"""
)


def peak_mb(path: Path) -> tuple[float, float] | None:
    """(peak RSS, RSS) in MB as a child wrote them (KiB in /proc), or None if it never did."""
    try:
        hwm, rss = (int(value) / 1024 for value in path.read_text().split())
    except (OSError, ValueError):
        return None
    return round(hwm, 1), round(rss, 1)


def reader_memory(path: Path, folder: Path) -> dict[str, float | None]:
    """A child that imports the reader (pandas, pyarrow) and reads `path` once: RSS once imported, peak RSS (MB)."""
    report = folder / "reader-peak"
    env = {**os.environ, "GATE_SCALE_PEAK": str(report)}
    subprocess.run([sys.executable, "-c", READER_CHILD, str(path)], env=env, check=True)
    imported, read = peak_mb(report.with_name("reader-peak.imported")), peak_mb(report)
    return {"import_rss_mb": imported[1] if imported else None, "peak_rss_mb": read[0] if read else None}


def run_cli(baseline: Path, candidate: Path, rows: int, cwd: Path) -> dict[str, Any]:
    """`ratchet gate ... --json` as a child process: wall seconds, its peak RSS, exit code, decision."""
    report = cwd / "cli-peak"
    report.unlink(missing_ok=True)
    command = [sys.executable, "-c", CLI_CHILD, "gate", "--baseline", str(baseline), "--candidate", str(candidate)]
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "GATE_SCALE_PEAK": str(report)}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen([*command, "--json"], stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(child.pid, 0)  # this child's CPU time alone
        wall = time.perf_counter() - started
        child.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    peak = peak_mb(report)
    row: dict[str, Any] = {
        "rows": rows,
        "wall_s": round(wall, 3),
        "peak_rss_mb": peak[0] if peak else None,
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "exit_code": code,
    }
    crashed = "Traceback (most recent call last)" in stderr  # an uncaught exception also exits 1
    try:
        verdict = json.loads(stdout[stdout.index("{") : stdout.rindex("}") + 1])["verdict"]
        row |= {"decision": verdict["decision"], "regressions": verdict.get("regressions")}
    except (ValueError, KeyError):
        crashed = True
    if crashed or code not in (0, 1, 2):
        row["error"] = (stdout + stderr).strip()[-2000:]
    return row


def meets(row: dict[str, Any]) -> str:
    if "error" in row:
        return "error"
    ok = row["wall_s"] < TARGET_WALL_S and (row["peak_rss_mb"] or float("inf")) < TARGET_RSS_MB
    if row["rows"] < TARGET_ROWS:
        return "yes (smaller)" if ok else "no (smaller)"
    return "yes" if ok else "no"


def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    from ratchet.gates.results_file import _read_per_line, load_results

    tasks, trials = args.tasks, args.trials
    big_b, big_c, big_rows = write_pair(folder, "full", tasks, trials, args.seed)
    half_b, half_c, half_rows = write_pair(folder, "half", tasks // 2, trials, args.seed + 1)
    small_b, _, small_rows = write_pair(folder, "per-line", max(1, PER_LINE_ROWS // trials), trials, args.seed + 2)
    floor_b, floor_c, floor_rows = write_pair(folder, "floor", FLOOR_TASKS, trials, args.seed + 3)
    fast = time_reader(load_results, big_b, big_rows, args.repeats)
    per_line = time_reader(_read_per_line, small_b, small_rows, args.repeats)
    memory = reader_memory(big_b, folder)
    cli = {
        "full": run_cli(big_b, big_c, big_rows, folder),
        "half": run_cli(half_b, half_c, half_rows, folder),
        "floor": run_cli(floor_b, floor_c, floor_rows, folder),
    }
    for name, row in cli.items():
        row["meets_target"] = meets(row)
        if "error" in row:
            print(f"ratchet gate ({name}) failed, exit {row['exit_code']}:\n...{row['error'][-800:]}", file=sys.stderr)
    return {
        "reader": {
            "fast": fast,
            "per_line": per_line,
            "memory": memory,
            "speedup_rows_per_s": round(fast["rows_per_s"] / per_line["rows_per_s"], 1),
        },
        "cli": cli,
        "file_mb": round(big_b.stat().st_size / 2**20, 1),
    }


def host_facts(load_before: tuple[float, float, float]) -> dict[str, Any]:
    """What a reader needs to judge the numbers: machine, load, versions."""
    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "versions": {name: version(name) for name in ("pandas", "pyarrow", "numpy", "pydantic")},
    }


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    measured, config = result["measurements"], result["config"]
    reader, cli = measured["reader"], measured["cli"]
    table = Table(
        title=f"ratchet gate at scale: {config['tasks']:,} tasks x {config['trials']} trials a side "
        f"({measured['file_mb']} MB a file)"
    )
    for column in ("measurement", "rows a side", "wall s", "peak RSS MB", "rows/s", "result", "target", "meets"):
        table.add_column(column, justify="left" if column in ("measurement", "result", "target") else "right")
    fast, per_line, memory = reader["fast"], reader["per_line"], reader["memory"]
    rss = "-"
    if memory["peak_rss_mb"] is not None and memory["import_rss_mb"] is not None:
        rss = f"{memory['peak_rss_mb']:.0f} (+{memory['peak_rss_mb'] - memory['import_rss_mb']:.0f})"
    table.add_row("reader: load_results", f"{fast['rows']:,}", f"{fast['seconds']:.3f}", rss, f"{fast['rows_per_s']:,}")
    row = per_line
    table.add_row("reader: per-line path", f"{row['rows']:,}", f"{row['seconds']:.3f}", "", f"{row['rows_per_s']:,}")
    table.add_row("reader: fast / per-line", "", "", "", f"{reader['speedup_rows_per_s']}x")
    for name, row in cli.items():
        rate = f"{2 * row['rows'] / row['wall_s']:,.0f}" if row["wall_s"] else "-"
        outcome = f"exit {row['exit_code']}" + (" error" if "error" in row else f" {row.get('decision')}")
        full = name == "full"
        target = f"< {TARGET_WALL_S:g} s, < {TARGET_RSS_MB:g} MB" if full else ""
        table.add_row(
            f"CLI: {name}",
            f"{row['rows']:,}",
            f"{row['wall_s']:.2f}",
            "-" if row["peak_rss_mb"] is None else f"{row['peak_rss_mb']:.0f}",
            rate,
            outcome,
            target,
            row["meets_target"] if full else "",
        )
    console = Console(width=max(Console().width, 120))
    console.print(table)
    console.print(
        f"reader peak RSS: a child that imports the reader and reads the file once (+ over its RSS once imported). CLI rows/s "
        f"counts both sides; its peak RSS is the child's VmHWM; 'floor' is {FLOOR_TASKS} tasks, the start-up "
        f"cost. Targets are for {TARGET_ROWS:,} rows a side. Load average before/after: "
        f"{result['host']['load_avg_before']} / {result['host']['load_avg_after']}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200_000, help="tasks a side (default 200,000)")
    parser.add_argument("--trials", type=int, default=5, help="trials per task (default 5)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3, help="in-process reader runs; the best counts (default 3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20,000 tasks")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks = 20_000
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    started, clock, load_before = datetime.now(UTC), time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="gate-cli-scale-") as folder:
        measurements = measure(args, Path(folder))
    result = {
        "version": 1,
        "benchmark": "gate_cli_scale",
        "started_at": started.isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - clock, 1),
        "config": {"tasks": args.tasks, "trials": args.trials, "seed": args.seed, "repeats": args.repeats},
        "targets": {"rows_a_side": TARGET_ROWS, "wall_s": TARGET_WALL_S, "peak_rss_mb": TARGET_RSS_MB},
        "measurements": measurements,
        "host": host_facts(load_before),
    }
    paths = write_results("gate_cli_scale", result, args.out_dir, started)
    print_table(result)
    print(f"results: {paths[0]} (+ timestamped copy); wall {result['wall_s']} s")


if __name__ == "__main__":
    main()
