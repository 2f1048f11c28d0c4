"""Real improvement cycles against a faulty model backend: same verdict as without faults?

The models of a copy of the demo workspace are pointed at `FaultyModelServer` (an OpenAI-compatible
server on 127.0.0.1 that answers exactly as the simulated models `sim/humaneval` and `sim/tqb` do):
`ratchet.toml` gets two `[models.<alias>]` tables with the server's api_base, a short timeout and
enough retries that a 30% fault rate is absorbed (0.3^(retries+1) per call), the smoke suite's
model becomes the QA alias, and the cycle runs with `--model` set to the coding alias. Each cycle
is `python -m pipeline.cli cycle` as a subprocess, as a user runs it.

A *reference* cycle runs against the server with fault rate 0; each faulty cycle (one per seed)
must then record the same decision with the same fixes, regressions, flip counts, pass rates and
outcome tables (every task, trial, pass, score, error and verifier message). Should a call still
fail after all its retries, Ratchet ends the cycle with a ModelBackendError (exit code 3) and keeps
every finished run in the run store; the campaign then restarts the cycle, which resumes, exactly
as an operator would, and counts the restart. With the default settings none is expected.

The API key the models are configured with (through `api_key_env`) reaches the server, and must
appear nowhere in the workspace (files, git history, tags) or in the cycle's output; neither may a
traceback.

`tests/faults/test_backend_faults.py` runs one faulty cycle in CI (transport openai-http, the one
`hosted_vllm/...` models get; both transports are tested per fault kind there);
`benchmarks/fault_campaign.py` calls `run_backend_campaign` for the campaign figure
("fault-injected runs / same verdict"); `python -m tests.faults.backend_campaign DIR [SEEDS] [RATE]`
runs it from the command line.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tests.faults.faulty_model_server import FAULT_KINDS, FaultPlan, FaultyModelServer

ROOT = Path(__file__).resolve().parents[2]
AGENT = "coder"
CODER_ALIAS = "faulty-coder"
QA_ALIAS = "faulty-qa"
KEY_ENV = "RATCHET_FAULTY_BACKEND_KEY"
KEY_VALUE = "sk-faulty-backend-0123456789abcdef"  # a fake key: must never be recorded
SMOKE_LINE = 'smoke_model = "sim/tqb"'
LEDGER_FIELDS = (
    "rc",
    "decision",
    "release",
    "base_release",
    "remediation",
    "stage",
    "fixes",
    "regressions",
    "flip_counts",
    "gate_pass_rate",
    "baseline_gate_pass_rate",
    "holdout_pass_rate",
    "policy_hash",
)


@dataclass(frozen=True)
class BackendSettings:
    """How the workspace's model aliases call the server (a `[models.<alias>]` table each)."""

    transport: Literal["auto", "litellm", "openai-http"] = "openai-http"
    timeout_s: float = 0.5  # the simulated answers take milliseconds; a hang costs a cycle this much
    retries: int = 10  # a call fails for good with probability 0.3^11 (2e-6) at a 30% fault rate
    backoff_s: float = 0.02
    backoff_max_s: float = 0.2
    hang_s: float = 2.0  # a hang outlasts the client's timeout


@dataclass
class CycleRun:
    """One workspace's cycle (with its restarts) against one server, and what it left behind."""

    workspace: Path
    seconds: float
    exit_codes: list[int]
    output: str
    counts: dict[str, Any]
    verdict: dict[str, Any] | None
    authorizations: set[str]

    @property
    def restarts(self) -> int:
        return len(self.exit_codes) - 1

    @property
    def completed(self) -> bool:
        return bool(self.exit_codes) and self.exit_codes[-1] == 0


def point_workspace_at(ws: Path, api_base: str, settings: BackendSettings) -> None:
    """Route the workspace's task and smoke models to `api_base`, and commit the change (a cycle needs a
    clean checkout). The agent artifact is untouched: the cycle runs with `--model` CODER_ALIAS."""
    path = ws / "ratchet.toml"
    text = path.read_text(encoding="utf-8")
    if SMOKE_LINE not in text:
        raise RuntimeError(f"{path}: expected the demo's line {SMOKE_LINE!r}; the demo workspace changed")
    text = text.replace(SMOKE_LINE, f'smoke_model = "{QA_ALIAS}"')
    for alias, world in ((CODER_ALIAS, "humaneval"), (QA_ALIAS, "tqb")):
        text += (
            f'\n[models.{alias}]\nmodel = "hosted_vllm/{world}"\napi_base = "{api_base}"\n'
            f'api_key_env = "{KEY_ENV}"\ntransport = "{settings.transport}"\ntimeout_s = {settings.timeout_s}\n'
            f"retries = {settings.retries}\nbackoff_s = {settings.backoff_s}\n"
            f"backoff_max_s = {settings.backoff_max_s}\n"
        )
    path.write_text(text, encoding="utf-8")
    git(ws, "add", "ratchet.toml")
    git(
        ws,
        "-c",
        "user.name=Fault Campaign",
        "-c",
        "user.email=faults@ratchet.invalid",
        "commit",
        "-q",
        "-m",
        "Models: the faulty OpenAI-compatible test server",
    )


def git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(ws), *args], capture_output=True, text=True, check=True).stdout


def cycle_env(prefect_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PREFECT_API_URL": prefect_url,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "COLUMNS": "120",
        KEY_ENV: KEY_VALUE,
    }
    env.pop("RATCHET_CRASH_AT", None)
    return env


def run_cycle(ws: Path, prefect_url: str, timeout: float = 600) -> tuple[int, str]:
    """One `ratchet cycle --model CODER_ALIAS` process: (returncode, stdout and stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "ratchet.pipeline.cli", "cycle", "--workspace", str(ws), "--model", CODER_ALIAS],
        env=cycle_env(prefect_url),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, done.stdout + done.stderr


def backend_cycle(
    template: Path,
    ws: Path,
    plan: FaultPlan,
    prefect_url: str,
    settings: BackendSettings = BackendSettings(),
    max_restarts: int = 2,
) -> CycleRun:
    """Copy the demo `template` to `ws`, serve its models with `plan`'s faults, and run one cycle; a
    cycle that ends with a model backend error (exit 3) is restarted, up to `max_restarts` times."""
    shutil.copytree(template, ws, symlinks=True)
    started = time.monotonic()
    codes: list[int] = []
    outputs: list[str] = []
    with FaultyModelServer(plan) as server:
        point_workspace_at(ws, server.base_url, settings)
        while len(codes) <= max_restarts:
            code, output = run_cycle(ws, prefect_url)
            codes.append(code)
            outputs.append(output)
            if code != 3:
                break
        counts = server.counts()
        authorizations = set(server.authorizations)
    return CycleRun(ws, time.monotonic() - started, codes, "\n".join(outputs), counts, verdict_of(ws), authorizations)


def verdict_of(ws: Path) -> dict[str, Any] | None:
    """The cycle's recorded decision (the last ledger entry, if it decides an RC) with every number it was
    decided on, and its outcome tables (evidence CSVs on the RC branch) as rows."""
    from ratchet.releases.registry import Registry

    entries = Registry(ws).ledger(AGENT)
    if not entries or entries[-1].rc is None:
        return None
    entry = entries[-1]
    verdict: dict[str, Any] = {name: getattr(entry, name) for name in LEDGER_FIELDS}
    verdict["outcomes"] = {
        name: outcome_rows(ws, entry.rc, entry.evidence, name) for name in sorted(entry.outcome_hashes)
    }
    return verdict


def outcome_rows(ws: Path, rc: str, evidence: str | None, name: str) -> list[list[str]]:
    """An evidence outcome table without its trace_sha256 column (traces carry timestamps, durations and
    the model's name, so their hashes differ between runs whose outcomes are all the same)."""
    folder = evidence or f"releases/{AGENT}/rc-{rc.rsplit('/', 1)[1]}"
    rows = list(csv.reader(io.StringIO(git(ws, "show", f"{rc}:{folder}/{name}"))))
    keep = [i for i, column in enumerate(rows[0]) if column != "trace_sha256"] if rows else []
    return [[row[i] for i in keep] for row in rows]


def leaks(run: CycleRun) -> list[str]:
    """Where the API key or a traceback got out: the cycle's output, the workspace's files and git history."""
    found = []
    if KEY_VALUE in run.output:
        found.append("the API key is in the cycle's output")
    if "Traceback" in run.output:
        found.append("a traceback is in the cycle's output")
    for path in sorted(p for p in run.workspace.rglob("*") if p.is_file() and ".git" not in p.parts):
        if KEY_VALUE.encode() in path.read_bytes():
            found.append(f"the API key is in {path.relative_to(run.workspace)}")
    history = git(run.workspace, "log", "--all", "-p", "--format=%B") + git(
        run.workspace, "for-each-ref", "--format=%(contents)", "refs/tags"
    )
    if KEY_VALUE in history:
        found.append("the API key is in the git history")
    return found


def differences(reference: dict[str, Any] | None, verdict: dict[str, Any] | None) -> list[str]:
    """What differs between two verdicts, one line per field or outcome table."""
    if reference is None or verdict is None:
        return [f"no recorded decision (reference: {reference is not None}, faulty: {verdict is not None})"]
    return [
        f"{key}: {verdict.get(key)!r} instead of {reference.get(key)!r}"
        if key != "outcomes"
        else f"outcome tables differ: {_table_difference(reference[key], verdict.get(key) or {})}"
        for key in reference
        if verdict.get(key) != reference[key]
    ]


def _table_difference(reference: dict[str, list[list[str]]], tables: dict[str, list[list[str]]]) -> str:
    if set(reference) != set(tables):
        return f"tables {sorted(tables)} instead of {sorted(reference)}"
    for name, rows in reference.items():
        extra = [row for row in tables[name] if row not in rows]
        missing = [row for row in rows if row not in tables[name]]
        if extra or missing:
            return f"{name}: {len(missing)} row(s) missing, e.g. {missing[:1]}, {len(extra)} new, e.g. {extra[:1]}"
    return "same rows, other order"


def campaign_row(seed: int, run: CycleRun, reference: CycleRun) -> dict[str, Any]:
    """One seed's figures: requests, faults by kind, restarts, seconds (and the reference's), and whether
    the verdict is the reference's (`problems` says what differs or leaked when it is not)."""
    problems = differences(reference.verdict, run.verdict) + leaks(run)
    if not run.completed:
        problems.insert(0, f"the cycle failed (exit codes {run.exit_codes}): {run.output.strip()[-600:]}")
    return {
        "seed": seed,
        "requests": run.counts["requests"],
        "answered": run.counts["answered"],
        "faults": dict(run.counts["faults"]),
        "faulted": sum(run.counts["faults"].values()),
        "restarts": run.restarts,
        "seconds": round(run.seconds, 1),
        "reference_seconds": round(reference.seconds, 1),
        "reference_requests": reference.counts["requests"],
        "decision": (run.verdict or {}).get("decision"),
        "same_verdict": not problems,
        "problems": problems,
    }


def run_backend_campaign(
    seeds: list[int],
    rate: float,
    workdir: Path,
    prefect_url: str | None = None,
    settings: BackendSettings = BackendSettings(),
    template: Path | None = None,
) -> list[dict[str, Any]]:
    """For each seed, a cycle against the server failing `rate` of requests, compared with one fault-free
    reference cycle (same server, rate 0). Returns one row per seed (see `campaign_row`).

    `template`: a demo workspace to copy (default: one made here with `ratchet init`); `prefect_url`: a
    running Prefect API (default: a temporary test server for the campaign)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if template is None:
        from ratchet.pipeline.workspace import init_workspace

        template = workdir / "template"
        init_workspace(template)
    with _prefect(prefect_url) as url:
        reference = backend_cycle(template, workdir / "reference", FaultPlan(rate=0.0), url, settings)
        if not reference.completed or reference.verdict is None:
            raise RuntimeError(
                f"the fault-free reference cycle failed ({reference.exit_codes}): {reference.output[-3000:]}"
            )
        rows = []
        for seed in seeds:
            plan = FaultPlan(rate=rate, seed=seed, hang_s=settings.hang_s)
            run = backend_cycle(template, workdir / f"seed-{seed}", plan, url, settings)
            rows.append(campaign_row(seed, run, reference))
    return rows


@contextlib.contextmanager
def _prefect(url: str | None) -> Iterator[str]:
    """The given Prefect API URL, or a temporary isolated Prefect server's for the duration."""
    if url is not None:
        yield url
        return
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # as tests/conftest.py: no telemetry
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


def format_table(rows: list[dict[str, Any]]) -> str:
    """The campaign as a markdown table, with the reference and the headline figure under it."""
    columns = ["seed", "requests", "faulted", *FAULT_KINDS, "restarts", "s", "decision", "same verdict"]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        kinds = " | ".join(str(row["faults"][kind]) for kind in FAULT_KINDS)
        lines.append(
            f"| {row['seed']} | {row['requests']} | {row['faulted']} | {kinds} | {row['restarts']} | "
            f"{row['seconds']} | {row['decision']} | {'yes' if row['same_verdict'] else 'NO'} |"
        )
    if rows:
        lines.append(
            f"\nfault-free reference: {rows[0]['reference_requests']} requests, {rows[0]['reference_seconds']} s"
        )
    lines.append(f"fault-injected runs / same verdict: {len(rows)}/{sum(row['same_verdict'] for row in rows)}")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m tests.faults.backend_campaign WORKDIR [SEEDS] [RATE]
    out = Path(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    fault_rate = float(sys.argv[3]) if len(sys.argv) > 3 else 0.3
    started = time.monotonic()
    table = run_backend_campaign(list(range(1, count + 1)), fault_rate, out)
    print(format_table(table))
    print(f"wall time: {time.monotonic() - started:.0f} s")
    for row in table:
        for problem in row["problems"]:
            print(f"seed {row['seed']}: {problem}")
