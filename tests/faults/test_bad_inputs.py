"""The bad-input corpus (issue 7): broken YAML and TOML, duplicate task ids, non-UTF-8 files, 10 MB
outputs, verifiers that hang or fork. Each gives a clear error or a recorded outcome, never a crash.

`CASES` is the table; every case has a `name` and an `expectation`, and one test,
`test_bad_input[<name>]`. Three kinds:

* `ErrorCase`: damages a fresh copy of the demo workspace (and commits what lives on main), runs
  the real CLI (`ratchet cycle`, `eval` or `gate`) as a subprocess, and expects its exit code, exactly
  one `error:` line that names the file (and the field or line), no traceback, and nothing written:
  the ledger, every git ref, the working tree and the run store as they were.
* `Probe`: a task of a custom suite whose verifier misbehaves (hangs, forks, prints 10 MB). All
  probes run in one `ratchet eval` under a subreaper (so any process the sandbox lets escape is
  found and killed): the evaluation finishes (exit 0), each run records an outcome the probe
  allows within its timeout, the stored record is small, and no process is left behind.
* `ModelAnswerCase`: a model answer of 10 MB through the real evaluation (scripted provider, a real
  run store): a recorded failure, quickly, without compiling the answer in the evaluation process.

A case may carry a `known_issue`: what it shows that is not fixed yet (the failing checks are
listed apart and the test is an expected failure until they pass). `run_corpus` runs the cases
(the tests run the selected ones at once, in threads); `bad_input_corpus_results` is the
benchmark's entry point (`benchmarks/fault_campaign.py`: "bad inputs / clean errors").
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AGENT = "coder"
IDENTITY = ["-c", "user.name=Bad Input", "-c", "user.email=bad-input@localhost"]
CLI_TIMEOUT_S = 240
WORKERS = 4
Damage = Callable[[Path], None]


@dataclass(frozen=True)
class ErrorCase:
    """A damaged input and the one-line error the CLI must give for it, writing nothing."""

    name: str
    expectation: str
    damage: Damage
    command: tuple[str, ...]  # after `python -m pipeline.cli`; {ws} is the workspace, {dir} its parent
    exit_code: int
    names: tuple[str, ...]  # what the error line must contain: the file, the field or line
    known_issue: str | None = None
    known_changes: tuple[str, ...] = ()  # parts of `state()` the known issue changes


@dataclass(frozen=True)
class Probe:
    """A task whose verifier misbehaves; its run must end with one of `allowed` (error types, or "pass")."""

    name: str
    expectation: str
    test: str
    allowed: frozenset[str]
    guard: bool = True  # False: the sandbox's in-process guard is off, so only the kernel layers contain it
    timeout_s: float = 2.0
    known_issue: str | None = None


@dataclass(frozen=True)
class ModelAnswerCase:
    """A model answer of `size` characters of Python, evaluated in-process with a real run store."""

    name: str
    expectation: str
    size: int
    known_issue: str | None = None


Case = ErrorCase | Probe | ModelAnswerCase


@dataclass
class CaseResult:
    """What a case showed: broken protections, and failures explained by its known issue."""

    problems: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)


# ---- damage ---------------------------------------------------------------------------------


def append(rel: str, data: bytes) -> Damage:
    """Add bytes at the end of a workspace file."""
    return lambda ws: (ws / rel).write_bytes((ws / rel).read_bytes() + data)


def replace(rel: str, old: str, new: str) -> Damage:
    """Replace the first `old` in a workspace file (which must hold it)."""

    def damage(ws: Path) -> None:
        text = (ws / rel).read_text(encoding="utf-8")
        assert old in text, f"{rel} no longer holds {old!r}: update the case"
        (ws / rel).write_text(text.replace(old, new, 1), encoding="utf-8")

    return damage


def write(rel: str, data: bytes) -> Damage:
    """Write a workspace file, folders included."""

    def damage(ws: Path) -> None:
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_bytes(data)

    return damage


def chain(*damages: Damage) -> Damage:
    """Several damages, in order."""

    def damage(ws: Path) -> None:
        for one in damages:
            one(ws)

    return damage


def task_line(task_id: str, expected: str = "yes", text: str = "Say yes.") -> bytes:
    """One exact-match task as a JSONL line."""
    task = {"id": task_id, "input": text, "verifier": {"type": "exact_match", "expected": [expected]}}
    return json.dumps(task, ensure_ascii=False).encode() + b"\n"


MINE_TASKS = task_line("t1") + task_line("t2", "no", "Say no.")


def own_suite(
    tasks: bytes = MINE_TASKS,
    source: str = "tasks.jsonl",
    splits: bytes = b'{"dev": ["t1"], "gate": ["t2"], "holdout": []}\n',
) -> Damage:
    """The agent's suite becomes `suites/mine/`, read from a task file of ours."""
    return chain(
        replace("ratchet.toml", 'suite = "humaneval"', 'suite = "mine"'),
        write("suites/mine/suite.yaml", f"name: mine\nsource: {source}\n".encode()),
        write(f"suites/mine/{source}", tasks),
        write("suites/mine/splits.json", splits),
    )


def results(bad: bytes) -> Damage:
    """Two results files next to the workspace for `ratchet gate`: a good baseline and `bad`."""

    def damage(ws: Path) -> None:
        (ws.parent / "base.jsonl").write_bytes(b'{"task_id": "a", "pass": true}\n{"task_id": "b", "pass": false}\n')
        (ws.parent / "bad.jsonl").write_bytes(bad)

    return damage


CYCLE = ("cycle", "--workspace", "{ws}")
EVAL = ("eval", f"{AGENT}/v1", "--split", "dev", "--workspace", "{ws}")  # runs a suite: loads it like a cycle, sooner
GATE = ("gate", "--baseline", "{dir}/base.jsonl", "--candidate", "{dir}/bad.jsonl")
NOT_UTF8 = b"# caf\xe9 (latin-1)\n"
TOML, SUITE, POLICY = "ratchet.toml", "suites/humaneval/suite.yaml", "gates/default.yaml"
ERROR_CASES = [
    ErrorCase(
        "ratchet-toml-syntax",
        "exit 2, names ratchet.toml and the line",
        replace(TOML, "concurrency = 8", "concurrency = = 8"),
        CYCLE,
        2,
        ("ratchet.toml", "not valid TOML", "line "),
    ),
    ErrorCase(
        "ratchet-toml-field-type",
        "exit 2, names ratchet.toml and run.concurrency",
        replace(TOML, "concurrency = 8", 'concurrency = "eight"'),
        CYCLE,
        2,
        ("ratchet.toml", "'run.concurrency'"),
    ),
    ErrorCase(
        "ratchet-toml-unknown-field",
        "exit 2, names ratchet.toml and the unknown field",
        replace(TOML, "concurrency = 8", "concurency = 8"),
        CYCLE,
        2,
        ("ratchet.toml", "'run.concurency'", "unknown field"),
    ),
    ErrorCase(
        "ratchet-toml-not-utf8",
        "exit 2, names ratchet.toml, says UTF-8",
        append(TOML, NOT_UTF8),
        CYCLE,
        2,
        ("ratchet.toml", "not UTF-8", "byte "),
    ),
    ErrorCase(
        "suite-yaml-syntax",
        "exit 2, names suite.yaml and the line",
        write(SUITE, b"name: humaneval\nsource: [builtin\n"),
        CYCLE,
        2,
        (SUITE, "invalid YAML", "line "),
    ),
    ErrorCase(
        "suite-yaml-field-type",
        "exit 2, names suite.yaml and field source",
        replace(SUITE, "source: builtin:humaneval", "source: [1, 2]"),
        CYCLE,
        2,
        (SUITE, "field 'source'"),
    ),
    ErrorCase(
        "suite-yaml-not-utf8",
        "exit 2, names suite.yaml, says UTF-8",
        append(SUITE, NOT_UTF8),
        CYCLE,
        2,
        (SUITE, "not UTF-8", "byte "),
    ),
    ErrorCase(
        "policy-yaml-syntax",
        "exit 2, names the policy file and the line",
        append(POLICY, b"trials: [2\n"),
        CYCLE,
        2,
        (POLICY, "not valid YAML", "line "),
    ),
    ErrorCase(
        "policy-yaml-field-type",
        "exit 2, names the policy file and field trials",
        replace(POLICY, "trials: 2 ", "trials: many "),
        CYCLE,
        2,
        (POLICY, "field 'trials'"),
    ),
    ErrorCase(
        "policy-yaml-unknown-field",
        "exit 2, names the policy file and the unknown field",
        replace(POLICY, "max_regressions:", "max_regresions:"),
        CYCLE,
        2,
        (POLICY, "'max_regresions'", "unknown field"),
    ),
    ErrorCase(
        "policy-yaml-not-utf8",
        "exit 2, names the policy file, says UTF-8",
        append(POLICY, NOT_UTF8),
        CYCLE,
        2,
        (POLICY, "not UTF-8", "byte "),
    ),
    ErrorCase(
        "task-jsonl-syntax",
        "exit 2, names the task file and line",
        own_suite(task_line("t1") + b'{"id": "t2",\n'),
        EVAL,
        2,
        ("suites/mine/tasks.jsonl line 2", "invalid JSON"),
    ),
    ErrorCase(
        "task-yaml-syntax",
        "exit 2, names the YAML task file and line",
        own_suite(b"- id: t1\n  input: [Say yes.\n", source="tasks.yaml"),
        EVAL,
        2,
        ("suites/mine/tasks.yaml", "invalid YAML", "line "),
    ),
    ErrorCase(
        "task-duplicate-id",
        "exit 2, names the task file, both lines and field id",
        own_suite(MINE_TASKS + task_line("t1", "again")),
        CYCLE,
        2,
        ("suites/mine/tasks.jsonl line 3", "field 'id'", "duplicate task id 't1'", "line 1"),
    ),
    ErrorCase(
        "task-field-type",
        "exit 2, names the task file, line and field",
        own_suite(task_line("t1") + task_line("t2").replace(b'["yes"]', b'"yes"')),
        EVAL,
        2,
        ("suites/mine/tasks.jsonl line 2", "'verifier.expected'"),
    ),
    ErrorCase(
        "task-not-utf8",
        "exit 2, names the task file, says UTF-8",
        own_suite(MINE_TASKS + task_line("t3", text="caf\xe9").replace("é".encode(), b"\xe9")),
        CYCLE,
        2,
        ("suites/mine/tasks.jsonl", "not UTF-8", "byte "),
    ),
    ErrorCase(
        "splits-json-syntax",
        "exit 2, names splits.json and the line",
        own_suite(splits=b'{"dev": [\n'),
        EVAL,
        2,
        ("suites/mine/splits.json", "invalid JSON", "line 2"),
    ),
    ErrorCase(
        "splits-json-unknown-task",
        "exit 2, names splits.json, field and task id",
        own_suite(splits=b'{"dev": ["t1"], "gate": ["t2", "t9"], "holdout": []}'),
        EVAL,
        2,
        ("suites/mine/splits.json", "field 'gate'", "'t9'"),
    ),
    ErrorCase(
        "splits-json-not-utf8",
        "exit 2, names splits.json, says UTF-8",
        own_suite(splits=b'{"dev": ["t1"], "gate": ["t2"], "holdout": []}\xff'),
        EVAL,
        2,
        ("suites/mine/splits.json", "not UTF-8"),
    ),
    ErrorCase(
        "smoke-suite-yaml-syntax",
        "exit 2, names the smoke suite's suite.yaml; nothing written",
        write("suites/tqb/suite.yaml", b"name: tqb\nsource: [builtin\n"),
        CYCLE,
        2,
        ("suites/tqb/suite.yaml", "invalid YAML", "line "),
    ),
    ErrorCase(
        "results-broken-line",
        "exit 3, names the results file and line",
        results(b'{"task_id": "a", "pass": true}\n{"task_id": "b", "pass": \n'),
        GATE,
        3,
        ("bad.jsonl line 2", "not JSON"),
    ),
    ErrorCase(
        "results-duplicate-run",
        "exit 3, names the file, both lines, task and trial",
        results(b'{"task_id": "a", "trial": 0, "pass": true}\n{"task_id": "a", "trial": 0, "pass": false}\n'),
        GATE,
        3,
        ("bad.jsonl line 2", "task 'a' trial 0 appears twice", "line 1"),
    ),
    ErrorCase(
        "results-not-utf8",
        "exit 3, names the results file, says UTF-8",
        results(b'{"task_id": "caf\xe9", "pass": true}\n'),
        GATE,
        3,
        ("bad.jsonl", "not UTF-8"),
    ),
    ErrorCase(
        "results-not-an-object",
        "exit 3, names the file and line",
        results(b'{"task_id": "a", "pass": true}\n["b", true]\n'),
        GATE,
        3,
        ("bad.jsonl line 2", "JSON object"),
    ),
    ErrorCase(
        "results-field-type",
        "exit 3, names the file, line and field",
        results(b'{"task_id": "a", "pass": "yes"}\n'),
        GATE,
        3,
        ("bad.jsonl line 1", "field 'pass'"),
    ),
    ErrorCase(
        "gate-policy-not-utf8",
        "exit 3, names the --policy file, says UTF-8",
        chain(results(b'{"task_id": "a", "pass": true}\n'), lambda ws: (ws.parent / "p.yaml").write_bytes(NOT_UTF8)),
        (*GATE, "--policy", "{dir}/p.yaml"),
        3,
        ("p.yaml", "not UTF-8"),
    ),
]

# ---- verifier probes ---------------------------------------------------------------------------

PROBE_PROMPT_OF = "HumanEval/24"  # its prompt makes the simulated model answer code that compiles and passes
REFUSED = frozenset({"pass", "SandboxViolation", "PermissionError", "BlockingIOError", "OSError", "Crash"})
ORPHANS = (
    "import os, time\ndef check(candidate):\n    for _ in range(3):\n        if os.fork() == 0:\n"
    "            time.sleep(120)\n            os._exit(0)\n"
)
FORK_LOOP = (
    "import os, time\ndef check(candidate):\n    for _ in range(50):\n        if os.fork() == 0:\n"
    "            time.sleep(30)\n            os._exit(0)\n"
)
ESCAPE = (
    "import os, time\ndef check(candidate):\n    if os.fork() == 0:\n        os.setsid()\n"
    "        if os.fork() == 0:\n            time.sleep(120)\n        os._exit(0)\n"
)
DETACHED = "import subprocess\ndef check(candidate):\n    subprocess.Popen(['sleep', '120'], start_new_session=True)\n"


def _fork_probes(guard: bool) -> list[Probe]:
    """Children that outlive the check, a fork loop, an escape into a new session, a detached spawn."""
    suffix, how = ("", "") if guard else ("-kernel-only", " (in-process guard off: kernel layers only)")
    return [
        Probe(
            f"verifier-forks-orphans{suffix}",
            f"children that outlive the check: recorded, none left{how}",
            ORPHANS,
            REFUSED,
            guard,
        ),
        Probe(
            f"verifier-fork-loop{suffix}", f"50 forked sleepers: recorded, none left{how}", FORK_LOOP, REFUSED, guard
        ),
        Probe(
            f"verifier-forks-new-session{suffix}",
            f"a double fork into a new session: recorded, none left{how}",
            ESCAPE,
            REFUSED,
            guard,
        ),
        Probe(
            f"verifier-spawns-detached{suffix}",
            f"a detached `sleep 120`: recorded, none left{how}",
            DETACHED,
            REFUSED,
            guard,
        ),
    ]


PROBES = [
    Probe(
        "verifier-control",
        "the probe answer compiles and passes (so the other probes reach their tests)",
        "def check(candidate):\n    assert candidate(15) == 5\n",
        frozenset({"pass"}),
    ),
    Probe(
        "verifier-hangs-busy",
        "`while True: pass`: Timeout within the task's 2 s",
        "def check(candidate):\n    while True:\n        pass\n",
        frozenset({"Timeout"}),
    ),
    Probe(
        "verifier-hangs-sleeping",
        "`time.sleep(999)`: Timeout within the task's 2 s",
        "import time\ndef check(candidate):\n    time.sleep(999)\n",
        frozenset({"Timeout"}),
    ),
    Probe(
        "verifier-prints-10mb",
        "10 MB on stdout: a pass, the stored record stays small",
        "import sys\ndef check(candidate):\n    sys.stdout.write('x' * 10_000_000)\n",
        frozenset({"pass"}),
    ),
    Probe(
        "verifier-raises-10mb",
        "10 MB on stderr and a 10 MB exception message: AssertionError, trimmed",
        "import sys\ndef check(candidate):\n    sys.stderr.write('y' * 10_000_000)\n"
        "    raise AssertionError('z' * 10_000_000)\n",
        frozenset({"AssertionError"}),
    ),
    *_fork_probes(guard=True),
    *_fork_probes(guard=False),
]

MODEL_ANSWER_CASES = [
    ModelAnswerCase(
        "model-answer-10mb", "a 10 MB answer: AnswerTooLarge recorded at once; the stored record small", 10_000_000
    ),
]

CASES: list[Case] = [*ERROR_CASES, *PROBES, *MODEL_ANSWER_CASES]


# ---- running ----------------------------------------------------------------------------------


def cli_env(prefect_url: str | None) -> dict[str, str]:
    """The CLI's environment: this checkout, offline litellm, no git identity, no crash points."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "COLUMNS": "200",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    for name in ("RATCHET_CRASH_AT", "RATCHET_DEBUG"):
        env.pop(name, None)
    if prefect_url:
        env["PREFECT_API_URL"] = prefect_url
    return env


def git(ws: Path, *args: str) -> str:
    """Run git in the workspace; its stdout."""
    return subprocess.run(["git", "-C", str(ws), *args], capture_output=True, text=True, check=True).stdout


def fresh_workspace(template: Path, folder: Path) -> Path:
    """A copy of the demo workspace (release coder/v1, nothing run) at `folder/ws`."""
    ws = folder / "ws"
    shutil.copytree(template, ws, symlinks=True)
    return ws


def commit_all(ws: Path, message: str) -> None:
    """Commit the damage, as a person would (a cycle refuses a dirty checkout before anything else)."""
    git(ws, "add", "-A")
    if git(ws, "status", "--porcelain"):
        git(ws, *IDENTITY, "commit", "-q", "-m", message)


def state(ws: Path) -> dict[str, object]:
    """What a bad input must not change: ledger on main, every git ref, the working tree, the run store."""
    from ratchet.releases.registry import Registry

    runs = ws / ".ratchet" / "runs"
    return {
        "ledger": [entry.hash for entry in Registry(ws).ledger(AGENT)],
        "tags": git(ws, "tag", "--list"),
        "refs": git(ws, "for-each-ref", "--format=%(refname) %(objectname)") + git(ws, "rev-parse", "HEAD"),
        "worktree": git(ws, "status", "--porcelain"),
        "runs": sorted((p.name, p.stat().st_size) for p in runs.glob("*")) if runs.is_dir() else [],
    }


def run_error_case(case: ErrorCase, template: Path, folder: Path, prefect_url: str | None) -> CaseResult:
    """Damage, commit, run the CLI, compare the output and the state before and after."""
    ws = fresh_workspace(template, folder)
    case.damage(ws)
    commit_all(ws, f"bad input: {case.name}")
    before = state(ws)
    command = [arg.format(ws=ws, dir=ws.parent) for arg in case.command]
    done = subprocess.run(
        [sys.executable, "-m", "ratchet.pipeline.cli", *command],
        capture_output=True,
        text=True,
        env=cli_env(prefect_url),
        cwd=ROOT,
        timeout=CLI_TIMEOUT_S,
    )
    output = done.stdout + done.stderr
    result = CaseResult(problems=error_problems(case, done.returncode, output))
    after = state(ws)
    for part, value in before.items():
        if after[part] != value:
            changed = f"{part} changed: {value!r:.300} -> {after[part]!r:.300}"
            (result.known if part in case.known_changes else result.problems).append(changed)
    return result


def error_problems(case: ErrorCase, code: int, output: str) -> list[str]:
    """Exit code, exactly one `error:` line naming what it must, no traceback."""
    tail = output[-2000:]
    problems = [] if code == case.exit_code else [f"exit {code}, expected {case.exit_code}: {tail}"]
    if "Traceback" in output:
        problems.append(f"a traceback in the output: {tail}")
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    if len(lines) != 1:
        return [*problems, f"{len(lines)} `error:` lines, expected 1: {tail}"]
    line = lines[0]
    problems += [f"the error does not say {name!r}: {line}" for name in case.names if name not in line]
    if len(line) > 400:
        problems.append(f"the error line has {len(line)} characters: {line[:400]}")
    return problems


REAPER = r"""
import ctypes, json, os, signal, subprocess, sys, time
ok = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER: orphans come to us
started = time.monotonic()
try:
    done = subprocess.run(sys.argv[2:], capture_output=True, text=True, timeout=float(sys.argv[1]))
    code, output = done.returncode, done.stdout + done.stderr
except subprocess.TimeoutExpired as exc:
    code, output = None, f"timed out after {exc.timeout} s: {exc.stdout!r:.2000} {exc.stderr!r:.2000}"
elapsed = time.monotonic() - started

def table():
    procs = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{name}/stat").read()
            cmd = open(f"/proc/{name}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        procs[int(name)] = (fields[0], int(fields[1]), cmd.strip())
    return procs

procs, found, todo = table(), [], [os.getpid()]
while todo:
    parent = todo.pop()
    for pid, (status, ppid, cmd) in procs.items():
        if ppid == parent:
            todo.append(pid)
            if status != "Z":
                found.append(f"{pid} {cmd}")
for entry in found:
    try:
        os.kill(int(entry.split()[0]), signal.SIGKILL)
    except OSError:
        pass
deadline = time.monotonic() + 10
while time.monotonic() < deadline:  # reap what we killed (orphans are our children now)
    try:
        if os.waitpid(-1, os.WNOHANG)[0] == 0:
            time.sleep(0.05)
    except ChildProcessError:
        break
print(json.dumps({"subreaper": ok, "code": code, "output": output[-4000:], "left": found, "elapsed": elapsed}))
"""
NO_GUARD = (
    "import sys, ratchet.gates.sandbox as s\n"
    "if not hasattr(s, 'IN_PROCESS_GUARD'): sys.exit('ratchet.gates.sandbox has no IN_PROCESS_GUARD switch any more')\n"
    "s.IN_PROCESS_GUARD = False\n"
    "from ratchet.pipeline.cli.app import main\n"
    "sys.argv[0] = 'ratchet'\n"
    "main()\n"
)


def probe_workspace(template: Path, folder: Path, probes: list[Probe]) -> Path:
    """A copy of the demo whose agent's suite is `probe`: one task per probe, all in the dev split."""
    from ratchet.gates.suite import builtin_humaneval_tasks

    prompt = next(task.input for task in builtin_humaneval_tasks() if task.id == PROBE_PROMPT_OF)
    lines = [
        json.dumps(
            {
                "id": p.name,
                "input": prompt,
                "verifier": {
                    "type": "python_tests",
                    "test": p.test,
                    "entry_point": "largest_divisor",
                    "timeout_s": p.timeout_s,
                },
            }
        ).encode()
        + b"\n"
        for p in probes
    ]
    ws = fresh_workspace(template, folder)
    chain(
        replace("ratchet.toml", 'suite = "humaneval"', 'suite = "probe"'),
        write("suites/probe/suite.yaml", b"name: probe\nsource: tasks.jsonl\n"),
        write("suites/probe/tasks.jsonl", b"".join(lines)),
        write("suites/probe/splits.json", json.dumps({"dev": [p.name for p in probes]}).encode()),
    )(ws)
    commit_all(ws, "probe suite")
    return ws


def run_probes(probes: list[Probe], template: Path, folder: Path, guard: bool) -> dict[str, CaseResult]:
    """One `ratchet eval` of every probe, under a subreaper; then each probe's stored outcome is checked."""
    ws = probe_workspace(template, folder, probes)
    entry = ["-m", "ratchet.pipeline.cli"] if guard else ["-c", NO_GUARD]
    command = [sys.executable, *entry, "eval", f"{AGENT}/v1", "--split", "dev", "--workspace", str(ws)]
    done = subprocess.run(
        [sys.executable, "-c", REAPER, str(CLI_TIMEOUT_S), *command],
        capture_output=True,
        text=True,
        env=cli_env(None),
        cwd=ROOT,
        timeout=CLI_TIMEOUT_S + 30,
    )
    report = json.loads(done.stdout.splitlines()[-1]) if done.returncode == 0 else None
    common = [f"the reaper failed: {done.stderr[-2000:]}"] if report is None else eval_problems(report)
    stored = stored_runs(ws)
    return {p.name: CaseResult(problems=common + probe_problems(p, stored.get(p.name))) for p in probes}


def eval_problems(report: dict[str, object]) -> list[str]:
    """The evaluation finished cleanly and left no process behind."""
    problems = []
    if report["code"] != 0 or "Traceback" in str(report["output"]):
        problems.append(f"`ratchet eval` exit {report['code']}: {report['output']}")
    if report["left"]:
        problems.append(f"processes left behind after the evaluation: {report['left']}")
    if not report["subreaper"]:
        problems.append("could not become a subreaper: escaped processes would go unseen")
    return problems


def stored_runs(ws: Path) -> dict[str, tuple[dict[str, object], int]]:
    """Each stored run's outcome and the size of its record, by task id."""
    found = {}
    for path in (ws / ".ratchet" / "runs").glob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            record = json.loads(line)
            found[record["task_id"]] = (record["outcome"], len(line))
    return found


def probe_problems(probe: Probe, stored: tuple[dict[str, object], int] | None) -> list[str]:
    """An allowed outcome, within the task's timeout, stored small."""
    if stored is None:
        return [f"no run of {probe.name} in the run store"]
    outcome, size = stored
    kind = "pass" if outcome["passed"] else str(outcome["error_type"])
    problems = (
        []
        if kind in probe.allowed
        else [f"outcome {kind} ({outcome['message']!r:.300}), expected one of {sorted(probe.allowed)}"]
    )
    if float(outcome["duration_s"]) > probe.timeout_s + 5:  # type: ignore[arg-type]
        problems.append(f"the verifier took {outcome['duration_s']} s, the task's timeout is {probe.timeout_s} s")
    if size > 20_000 or len(str(outcome["message"])) > 1000:
        problems.append(f"the stored record has {size} bytes, its message {len(str(outcome['message']))} characters")
    return problems


def run_model_answer(case: ModelAnswerCase, template: Path, folder: Path) -> CaseResult:
    """A scripted model answers `size` characters of Python; the real evaluation verifies and stores it."""
    from ratchet.agents.artifact import ModelParams, load_artifact
    from ratchet.agents.models import ModelClient
    from ratchet.agents.providers.scripted import (
        ScriptedProvider,
        ScriptedReply,
        register_scripted,
        unregister_scripted,
    )
    from ratchet.gates.evaluation import evaluate
    from ratchet.gates.run_store import RunStore
    from ratchet.gates.suite import load_suite

    ws = fresh_workspace(template, folder)
    answer = "def largest_divisor(n):\n    return 1\n" + "x = 1\n" * (case.size // 6)  # the costliest to compile
    model = register_scripted(case.name, ScriptedProvider(lambda messages, tools: ScriptedReply(content=answer)))
    suite = load_suite(ws, "humaneval")
    store = RunStore(ws / ".ratchet")
    started = time.monotonic()
    try:
        evaluation = asyncio.run(
            evaluate(
                load_artifact(ws / "agents" / AGENT),
                ModelClient(model, ModelParams()),
                suite,
                suite.split("dev")[:1],
                store,
                split="dev",
            )
        )
    finally:
        unregister_scripted(case.name)
    elapsed = time.monotonic() - started
    outcome = evaluation.records[0].outcome
    result = CaseResult()
    if outcome.error_type != "AnswerTooLarge" or len(outcome.message) > 300:
        result.problems.append(f"outcome {outcome.error_type}: {outcome.message[:300]}")
    if elapsed > 20:
        result.problems.append(f"the evaluation of one 10 MB answer took {elapsed:.1f} s")
    stored = sum(p.stat().st_size for p in store.root.glob("*.jsonl"))
    if stored > 1_000_000:
        result.known.append(f"the run store holds {stored:,} bytes for one run of a {len(answer):,}-character answer")
    return result


def run_corpus(cases: list[Case], template: Path, workdir: Path, prefect_url: str | None) -> dict[str, CaseResult]:
    """Run `cases` (subprocesses at once, in threads) and check each; results by case name."""
    probes = [case for case in cases if isinstance(case, Probe)]
    found: dict[str, CaseResult] = {}
    with ThreadPoolExecutor(WORKERS) as pool:
        jobs: list[tuple[list[str], Future[object]]] = []
        for guard in (True, False):
            group = [p for p in probes if p.guard == guard]
            if group:
                folder = workdir / f"probes-{'guard' if guard else 'kernel-only'}"
                jobs.append(([p.name for p in group], pool.submit(run_probes, group, template, folder, guard)))
        for case in cases:
            if isinstance(case, ErrorCase):
                job = pool.submit(run_error_case, case, template, workdir / case.name, prefect_url)
                jobs.append(([case.name], job))
        for case in cases:  # in-process, in this thread, while the subprocesses run
            if isinstance(case, ModelAnswerCase):
                answered = guarded(run_model_answer, case, template, workdir / case.name)
                found[case.name] = answered  # type: ignore[assignment]
        for names, future in jobs:
            value = guarded(future.result)
            found.update(value if isinstance(value, dict) else {name: value for name in names})  # type: ignore[misc]
    return found


def guarded(run: Callable[..., object], *args: object) -> object:
    """`run(*args)`, or a CaseResult naming the exception it raised (one case must not hide the others)."""
    try:
        return run(*args)
    except Exception as exc:
        return CaseResult(problems=[f"the case itself failed: {type(exc).__name__}: {exc}"[:2000]])


def bad_input_corpus_results(workdir: Path, prefect_url: str) -> list[dict[str, object]]:
    """Every case on a new demo workspace: name, expectation, clean (no broken protection), problems,
    and the known issue when its checks still fail (for benchmarks/fault_campaign.py)."""
    from ratchet.pipeline.workspace import init_workspace

    template = workdir / "template"
    init_workspace(template)
    results = run_corpus(CASES, template, workdir, prefect_url)
    return [
        {
            "case": case.name,
            "expectation": case.expectation,
            "clean": not results[case.name].problems,
            "problems": results[case.name].problems,
            "known_issue": case.known_issue if results[case.name].known else None,
        }
        for case in CASES
    ]


# ---- tests ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(
    request: pytest.FixtureRequest, demo_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, CaseResult]:
    """The selected cases, run together once; a cycle needs the session's Prefect server."""
    selected = {
        item.callspec.params["case"].name
        for item in request.session.items
        if getattr(item, "module", None) is sys.modules[__name__]
        and hasattr(item, "callspec")
        and "case" in item.callspec.params
    }
    cases = [case for case in CASES if case.name in selected]
    needs_prefect = any(isinstance(c, ErrorCase) and c.command[0] == "cycle" for c in cases)
    prefect_url = request.getfixturevalue("prefect_url") if needs_prefect else None
    return run_corpus(cases, demo_template, tmp_path_factory.mktemp("bad-inputs"), prefect_url)


def test_the_corpus_covers_the_requirement() -> None:
    names = {case.name for case in CASES}
    assert len(names) == len(CASES), "case names are unique"
    for needed in (
        "ratchet-toml-syntax",
        "suite-yaml-syntax",
        "policy-yaml-syntax",
        "policy-yaml-field-type",
        "policy-yaml-unknown-field",
        "task-jsonl-syntax",
        "task-duplicate-id",
        "task-not-utf8",
        "suite-yaml-not-utf8",
        "ratchet-toml-not-utf8",
        "policy-yaml-not-utf8",
        "results-not-utf8",
        "results-broken-line",
        "results-duplicate-run",
        "verifier-prints-10mb",
        "model-answer-10mb",
        "verifier-hangs-busy",
        "verifier-hangs-sleeping",
        "verifier-forks-orphans",
        "verifier-fork-loop",
    ):
        assert needed in names


@pytest.mark.timeout(900)  # the first one runs the whole corpus (its fixture), ~1 min on an idle machine
@pytest.mark.parametrize("case", [pytest.param(case, id=case.name) for case in CASES])
def test_bad_input(case: Case, corpus: dict[str, CaseResult]) -> None:
    result = corpus[case.name]
    assert not result.problems, "\n".join(result.problems)
    if case.known_issue is None:
        assert not result.known, result.known
    elif result.known:
        pytest.xfail(f"known issue: {case.known_issue} ({'; '.join(result.known)})")
    else:
        pytest.fail(f"the known issue of {case.name} is gone: remove known_issue from the case ({case.known_issue})")


def test_the_reaper_finds_and_kills_a_process_left_behind() -> None:
    """The probes' leak check can fail: a detached process in a new session is found, and killed."""
    leak = "setsid sleep 97 >/dev/null 2>&1 < /dev/null & echo started"
    done = subprocess.run(
        [sys.executable, "-c", REAPER, "30", "sh", "-c", leak], capture_output=True, text=True, timeout=60
    )
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["subreaper"] and report["code"] == 0 and "started" in report["output"]
    assert len(report["left"]) == 1 and report["left"][0].endswith("sleep 97"), report["left"]  # maybe not exec'd yet
    pid = int(report["left"][0].split()[0])
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]


def test_a_10mb_answer_is_refused_by_both_verifiers_without_being_checked() -> None:
    """Neither compiled in this process (seconds, gigabytes) nor compared: a recorded failure at once."""
    from ratchet.gates.task import ExactMatchVerifier, PythonTestsVerifier, Task
    from ratchet.gates.verifier import MAX_ANSWER_CHARS, verify

    answer = "def f():\n    return 1\n" + "x = 1\n" * 1_700_000
    specs = (PythonTestsVerifier(test="def check(c):\n    pass\n", entry_point="f"), ExactMatchVerifier(expected=["1"]))
    for spec in specs:
        started = time.monotonic()
        outcome = asyncio.run(verify(Task(id="big", input="?", verifier=spec), answer))
        assert time.monotonic() - started < 1.0
        assert (outcome.passed, outcome.error_type) == (False, "AnswerTooLarge")
        assert f"{len(answer):,} characters" in outcome.message and f"{MAX_ANSWER_CHARS:,}" in outcome.message
    fits = asyncio.run(verify(Task(id="ok", input="?", verifier=ExactMatchVerifier(expected=["yes"])), "yes"))
    assert fits.passed
