"""SIGKILL a real cycle at seeded random points, restart it, and check nothing was lost or redone.

One *campaign* starts from a copy of the demo workspace (release coder/v1, nothing run) and,
for each seed, runs `python -m pipeline.cli cycle` as a subprocess again and again, killing it
each time until the seed's kills are spent:

* most kills come after a random delay (uniform over the first 80% of the time the cycle still
  needs, estimated from an uninterrupted reference cycle), so they land in every stage: development runs,
  critique, synthesis, smoke, gate, confirmation, record;
* one kill in four is at a named point inside the record step (`releases.crashpoints`), where a
  random delay would almost never land.

The process group is killed (SIGKILL), like a power cut: no finally blocks, no cleanup. After
each kill the harness notes which runs were already in the run store. When the seed's kills are
spent the cycle runs to the end; if the decision was already recorded (the kill came after main
moved) the restart is the next writer's recovery step (`Registry.require_clean`), which is what
any command does first.

Then, for each seed, against the reference:

* the same decision for rc/coder/1, with the same fixes, regressions and flip counts, and the
  same outcome tables (every task, trial, pass, score and error; only the trace hashes differ,
  as traces carry timestamps);
* no finished model call repeated: every run the store held at some kill is held exactly once at
  the end, and the store holds exactly the reference's runs, each once (runs in flight at a kill
  were not written, so only they were redone);
* `git fsck --strict` clean, a clean checkout, and `verify_workspace` OK (hash chain, tags and
  trailers, verdicts re-derived).

`tests/faults/test_kills.py` runs a short campaign in CI; `benchmarks/fault_campaign.py` the full
one (50 kills).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ratchet.releases.crashpoints import POINTS
from ratchet.releases.ledger import LedgerEntry
from tests.faults.backend_campaign import outcome_rows

ROOT = Path(__file__).resolve().parents[2]
AGENT = "coder"
RC = f"rc/{AGENT}/1"
CRASH_POINT_SHARE = 0.25
STARTUP_S = 3.0  # a cycle process's start-up before it does any work (imports, Prefect)
DELAY_SHARE = 0.8  # delays are drawn from the first 80% of the time the cycle still needs: most land


@dataclass
class Kill:
    """One kill: where it was aimed, and whether it landed before the cycle finished."""

    seed: int
    number: int
    aim: str  # "after 12.3 s" or "at decision:after-main"
    landed: bool
    stage: str = ""  # the last stage the cycle printed before it died


@dataclass
class SeedResult:
    """What one seed's kills and restarts left behind, checked against the reference."""

    seed: int
    kills: list[Kill] = field(default_factory=list)
    restarts: int = 0
    same_verdict: bool = False
    runs_repeated: int = 0
    runs_missing: int = 0
    fsck_clean: bool = False
    verified: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Reference:
    """The uninterrupted cycle every killed one is compared with."""

    workspace: Path
    seconds: float
    decision: dict[str, object]
    runs: Counter[tuple[str, str, int]]
    order: list[tuple[str, str, int]] = field(default_factory=list)  # runs by start time
    labels: dict[tuple[str, str, int], str] = field(default_factory=dict)  # run -> "baseline dev", ...


def cycle_env(prefect_url: str, crash_at: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PREFECT_API_URL": prefect_url,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "COLUMNS": "120",
    }
    env.pop("RATCHET_CRASH_AT", None)
    if crash_at:
        env["RATCHET_CRASH_AT"] = crash_at
    return env


def run_cycle(
    ws: Path, prefect_url: str, kill_after: float | None = None, crash_at: str | None = None, timeout: float = 600
) -> tuple[int, str]:
    """Run one cycle process; SIGKILL its process group after `kill_after` seconds. (returncode, output)."""
    log = ws.parent / f"{ws.name}-cycle.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ratchet.pipeline.cli", "cycle", "--workspace", str(ws)],
            env=cycle_env(prefect_url, crash_at),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            process.wait(timeout=kill_after if kill_after is not None else timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return -9, log.read_text(errors="replace")
    return process.returncode, log.read_text(errors="replace")


def stage_at_kill(ws: Path, reference: Reference) -> str:
    """Where the killed cycle was, read from what it left: the furthest run of the reference's order
    (by the reference's start times) that is stored, named by side and split, or the git step."""
    from ratchet.releases.registry import Registry

    if decision_of(ws) is not None:
        return "record: after main moved"
    if any(entry.rc == RC for entry in Registry(ws).ledger(AGENT)):
        return "record"
    log = subprocess.run(["git", "-C", str(ws), "log", "--format=%s", RC], capture_output=True, text=True).stdout
    if "Evidence" in log:
        return "record: evidence committed"
    stored = stored_runs(ws)
    done = [run for run in reference.order if run in stored]
    if not done:
        return "start: before the first run"
    label = reference.labels[done[-1]]
    if len(done) == len(reference.order):
        return "record: all runs done"
    return f"{label}" if label.endswith("confirmation") else f"{label} evaluation"


def stored_runs(ws: Path) -> Counter[tuple[str, str, int]]:
    """(run-store file, task id, trial) -> how many complete records of it the store holds."""
    counts: Counter[tuple[str, str, int]] = Counter()
    for path in sorted((ws / ".ratchet" / "runs").glob("*.jsonl")):
        for line in path.read_bytes().split(b"\n"):
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line: the store ignores it and cuts it off on the next append
            counts[(path.name, record["task_id"], int(record["trial"]))] += 1
    return counts


def decision_of(ws: Path) -> dict[str, object] | None:
    """The recorded decision on rc/coder/1, with every number the gate decided it on."""
    from ratchet.releases.registry import Registry

    for entry in Registry(ws).ledger(AGENT):
        if entry.rc == RC:
            return {
                "decision": entry.decision,
                "release": entry.release,
                "fixes": entry.fixes,
                "regressions": entry.regressions,
                "flip_counts": entry.flip_counts,
                "outcomes": {name: outcome_digest(ws, entry, name) for name in sorted(entry.outcome_hashes)},
                "policy_hash": entry.policy_hash,
            }
    return None


def outcome_digest(ws: Path, entry: LedgerEntry, name: str) -> str:
    """sha256 of a stored outcome table without its trace_sha256 column (backend_campaign.outcome_rows):
    traces carry timestamps, so a re-run's trace hash differs while every outcome is the same."""
    rows = outcome_rows(ws, entry.rc or "", entry.evidence, name)
    return hashlib.sha256("\n".join(",".join(row) for row in rows).encode()).hexdigest()


def make_reference(template: Path, workdir: Path, prefect_url: str) -> Reference:
    ws = workdir / "reference"
    shutil.copytree(template, ws, symlinks=True)
    started = time.monotonic()
    code, output = run_cycle(ws, prefect_url)
    seconds = time.monotonic() - started
    if code != 0:
        raise RuntimeError(f"the reference cycle failed ({code}):\n{output[-3000:]}")
    decision = decision_of(ws)
    if decision is None:
        raise RuntimeError(f"the reference cycle recorded no decision on {RC}")
    order, labels = run_order(ws)
    return Reference(ws, seconds, decision, stored_runs(ws), order, labels)


def run_order(ws: Path) -> tuple[list[tuple[str, str, int]], dict[tuple[str, str, int], str]]:
    """The reference's runs in the order they started, each labelled "<side> <split>" ("... confirmation"
    for trials past the policy's first ones; smoke runs by the smoke suite)."""
    splits = json.loads((ws / "suites" / "humaneval" / "splits.json").read_text())
    split_of = {task: split for split, tasks in splits.items() for task in tasks}
    started: dict[tuple[str, str, int], str] = {}
    for path in (ws / ".ratchet" / "runs").glob("*.jsonl"):
        for line in path.read_bytes().split(b"\n"):
            if line.strip():
                record = json.loads(line)
                started[(path.name, record["task_id"], int(record["trial"]))] = record["trace"]["started_at"]
    order = sorted(started, key=started.__getitem__)
    baseline = {name for name, task, _ in order if split_of.get(task) == "dev"}  # only the baseline runs dev
    labels = {}
    for run in order:
        name, task, trial = run
        side = "baseline" if any(name.split("-")[0] == b.split("-")[0] for b in baseline) else "candidate"
        split = split_of.get(task, "smoke")
        labels[run] = f"{side} {split}" + (" confirmation" if split != "smoke" and trial >= 2 else "")
    return order, labels


def run_seed(
    seed: int,
    kills: int,
    template: Path,
    workdir: Path,
    prefect_url: str,
    reference: Reference,
) -> SeedResult:
    """Kill one workspace's cycle `kills` times at seeded points, let it finish, and check it."""
    rng = random.Random(seed)
    ws = workdir / f"seed-{seed}"
    shutil.copytree(template, ws, symlinks=True)
    result = SeedResult(seed)
    held: Counter[tuple[str, str, int]] = Counter()
    remaining = reference.seconds
    for number in range(kills):
        if decision_of(ws) is not None:
            break  # main moved: what is left is the next writer's recovery, below
        if rng.random() < CRASH_POINT_SHARE:
            point = rng.choice(POINTS)
            code, output = run_cycle(ws, prefect_url, crash_at=point)
            kill = Kill(seed, number, f"at {point}", landed=code == -9)
        else:
            delay = STARTUP_S + rng.uniform(0.0, DELAY_SHARE * max(1.0, remaining - STARTUP_S))
            code, output = run_cycle(ws, prefect_url, kill_after=delay)
            kill = Kill(seed, number, f"after {delay:.1f} s", landed=code == -9)
            if kill.landed:
                remaining = max(STARTUP_S + 1.0, remaining - (delay - STARTUP_S))
        kill.stage = stage_at_kill(ws, reference) if kill.landed else "finished before the kill"
        result.kills.append(kill)
        if not kill.landed:
            if code != 0:
                result.problems.append(f"kill {number} ({kill.aim}): the cycle failed with {code}: {output[-800:]}")
            break  # the cycle finished before its kill
        held += Counter(set(stored_runs(ws)))
        result.restarts += 1
    _finish(ws, prefect_url, result)
    _check(ws, reference, held, result)
    return result


def _finish(ws: Path, prefect_url: str, result: SeedResult) -> None:
    """Restart after the last kill: complete the cycle, or (decision already recorded) just recover."""
    from ratchet.releases.registry import Registry

    if decision_of(ws) is None:
        code, output = run_cycle(ws, prefect_url)
        if code != 0:
            result.problems.append(f"the restarted cycle failed with {code}: {output[-1500:]}")
    Registry(ws).require_clean()


def _check(ws: Path, reference: Reference, held: Counter[tuple[str, str, int]], result: SeedResult) -> None:
    from ratchet.releases.audit import verify_workspace

    decision = decision_of(ws)
    result.same_verdict = decision == reference.decision
    if not result.same_verdict:
        result.problems.append(f"decision {decision} differs from the reference's {reference.decision}")
    final = stored_runs(ws)
    result.runs_repeated = sum(count - 1 for count in final.values() if count > 1)
    result.runs_missing = sum(1 for run in reference.runs if run not in final)
    if result.runs_repeated:
        result.problems.append(f"{result.runs_repeated} finished run(s) were run again after a restart")
    if result.runs_missing or set(final) != set(reference.runs):
        result.problems.append(
            f"the run store differs from the reference's: {result.runs_missing} missing, "
            f"{len(set(final) - set(reference.runs))} extra"
        )
    lost = [run for run in held if final[run] != 1]
    if lost:
        result.problems.append(f"{len(lost)} run(s) stored before a kill are not stored exactly once at the end")
    fsck = subprocess.run(["git", "-C", str(ws), "fsck", "--strict", "--no-dangling"], capture_output=True, text=True)
    result.fsck_clean = fsck.returncode == 0 and "error" not in fsck.stdout + fsck.stderr
    if not result.fsck_clean:
        result.problems.append(f"git fsck: {(fsck.stdout + fsck.stderr)[-500:]}")
    status = subprocess.run(["git", "-C", str(ws), "status", "--porcelain"], capture_output=True, text=True).stdout
    if status:
        result.problems.append(f"the checkout is not clean: {status[:300]}")
    audit = verify_workspace(ws)
    result.verified = audit.ok
    if not audit.ok:
        result.problems.extend(f"verify: {p.message}" for a in audit.agents for p in a.problems)
