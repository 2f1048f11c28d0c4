"""gates.sandbox: real subprocesses, real limits, real sockets, and its containment layers.

The attacks themselves (sockets, the host's files, writes outside, fork bombs) are in
tests/faults/test_adversarial_rcs.py; here: the mechanics every run relies on."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import pytest

from ratchet.gates import sandbox
from ratchet.gates.sandbox import Isolation, SandboxLimits, SandboxResult, available_isolation, run_python

FAST = SandboxLimits(timeout_s=1)
NONE = Isolation(network=False, filesystem=False, processes=False)


def run(program: str, limits: SandboxLimits = FAST) -> SandboxResult:
    return asyncio.run(run_python(program, limits))


def record_sandbox_folders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The folders `run_python` creates from now on, in order (to find its processes by their command line)."""
    folders: list[str] = []
    real = tempfile.mkdtemp

    def mkdtemp(*args: object, **kwargs: object) -> str:
        path = real(*args, **kwargs)  # type: ignore[arg-type]
        if os.path.basename(path).startswith("ratchet-sandbox-"):
            folders.append(path)
        return path

    monkeypatch.setattr(sandbox.tempfile, "mkdtemp", mkdtemp)
    return folders


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (a forked child keeps its parent's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if text in cmdline and "zombie" not in state:
            found.append(int(entry.name))
    return found


def require(layer: str) -> None:
    """Skip, saying why, when this host does not allow a kernel layer."""
    if not getattr(available_isolation(), layer):
        reasons = {
            "network": "unshare -rn is not permitted on this host",
            "filesystem": "unshare -rnm with mounts in a user namespace is not permitted on this host",
            "processes": "seccomp filters cannot be installed on this host",
        }
        pytest.skip(f"{reasons[layer]}: runs get no {layer} isolation here, and SandboxResult says so")


def test_ok_program_captures_output() -> None:
    result = run("print('hello'); import sys; print('oops', file=sys.stderr)")
    assert (result.status, result.error_type, result.message) == ("ok", None, "")
    assert result.stdout == "hello\n"
    assert result.stderr == "oops\n"
    assert 0 < result.duration_s < 5


@pytest.mark.parametrize(
    ("program", "error_type", "message", "line"),
    [
        ("def f(:\n    pass\n", "SyntaxError", "invalid syntax (solution.py, line 1)", 1),
        ("def f():\nreturn 1\n", "IndentationError", "expected an indented block", 2),
        ("x = 1\ny = math.pi\n", "NameError", "name 'math' is not defined", 2),
        ("assert 1 == 2\n", "AssertionError", "", 1),
        ("def f():\n    return 1 / 0\nf()\n", "ZeroDivisionError", "division by zero", 2),
        ("import sys\nsys.exit(0)\n", "SystemExit", "0", 2),
    ],
)
def test_errors_are_classified(program: str, error_type: str, message: str, line: int) -> None:
    result = run(program)
    assert result.status == "error"
    assert result.error_type == error_type
    assert result.message.startswith(message)
    assert result.line == line


def test_program_output_cannot_fake_a_result() -> None:
    result = run('print(\'{"status": "ok"}\')\nraise ValueError("a\\nmulti-line\\nmessage")')
    assert (result.status, result.error_type, result.message) == ("error", "ValueError", "a multi-line message")


def test_infinite_loop_times_out() -> None:
    started = time.monotonic()
    result = run("while True:\n    pass\n")
    assert (result.status, result.error_type) == ("timeout", "Timeout")
    assert result.message == "the program ran longer than 1 s"
    assert 1 <= result.duration_s < 3
    assert time.monotonic() - started < 4


@pytest.mark.parametrize(
    ("program", "in_message"),
    [
        ("import os\nos._exit(3)\n", "exited with code 3"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "SIGSEGV"),
    ],
)
def test_exit_without_result_is_a_crash(program: str, in_message: str) -> None:
    result = run(program)
    assert (result.status, result.error_type) == ("crash", "Crash")
    assert in_message in result.message


def test_memory_limit() -> None:
    result = run("x = bytearray(1024 * 1024 * 1024)\n", SandboxLimits(timeout_s=2, memory_mb=256))
    assert result.error_type == "MemoryError"


def test_environment_is_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    result = run("import json, os\nprint(json.dumps(dict(os.environ)))\n")
    env = json.loads(result.stdout)
    assert "OPENAI_API_KEY" not in env
    assert "sk-test-secret" not in result.stdout
    assert set(env) <= {"PATH", "LANG", "HOME", "TMPDIR", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "LC_CTYPE"}
    assert env["PYTHONHASHSEED"] == "0"


def test_hashing_is_deterministic() -> None:
    first, second = run("print(hash('abc'), list({'x', 'y', 'z'}))"), run("print(hash('abc'), list({'x', 'y', 'z'}))")
    assert first.stdout == second.stdout != ""


def test_working_folder_is_temporary_and_removed() -> None:
    result = run("import os\nopen('scratch.txt', 'w').write('x')\nprint(os.getcwd())\n")
    folder = Path(result.stdout.strip())
    assert folder.name.startswith("ratchet-sandbox-")
    assert not folder.exists()


def test_huge_output_is_truncated() -> None:
    limits = SandboxLimits(timeout_s=5, max_output_bytes=1000)
    result = run("import sys\nsys.stdout.write('x' * 10_000_000)\nprint('done', file=sys.stderr)\n", limits)
    assert result.status == "ok"
    assert result.stdout.startswith("x" * 1000)
    assert len(result.stdout) < 1100
    assert "9999000 more bytes not kept" in result.stdout
    assert result.stderr == "done\n"


def test_eight_concurrent_runs() -> None:
    async def many() -> list[SandboxResult]:
        programs = [f"import time\ntime.sleep(0.3)\nprint({i})\n" for i in range(8)]
        return await asyncio.gather(*(run_python(p, SandboxLimits(timeout_s=5)) for p in programs))

    started = time.monotonic()
    results = asyncio.run(many())
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(8)]
    assert all(r.status == "ok" for r in results)
    assert time.monotonic() - started < 4


def test_cancelled_run_kills_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    folders = record_sandbox_folders(monkeypatch)

    async def cancel_midway() -> list[int]:
        task = asyncio.ensure_future(run_python("while True:\n    pass\n", SandboxLimits(timeout_s=30)))
        running: list[int] = []
        for _ in range(100):
            await asyncio.sleep(0.05)
            running = processes_mentioning(folders[0]) if folders else []
            if running:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return running

    running = asyncio.run(cancel_midway())
    assert running, "the sandboxed process was seen while it ran"
    assert processes_mentioning(folders[0]) == []


def test_runs_without_isolation_when_unshare_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    assert sandbox.network_isolation_available.__wrapped__() is False
    assert sandbox.mount_isolation_available.__wrapped__() is False
    monkeypatch.setattr(sandbox, "network_isolation_available", lambda: False)
    result = run("print('still runs')")
    assert (result.status, result.stdout, result.network_isolated, result.filesystem_isolated) == (
        "ok",
        "still runs\n",
        False,
        False,
    )
    assert result.processes_isolated is sandbox.available_isolation().processes, "seccomp needs no namespace"


def test_results_state_the_isolation_the_run_had() -> None:
    isolation = available_isolation()
    result = run("print(1)")
    assert (result.network_isolated, result.filesystem_isolated, result.processes_isolated) == (
        isolation.network,
        isolation.filesystem,
        isolation.processes,
    )
    assert result.violations == []


def _python_and_temp_tops() -> set[str]:
    """The top-level folders holding Python (venvs live anywhere, e.g. /check/...) and the temp folder."""
    import sys

    folders = {
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
        tempfile.gettempdir(),
    }
    return {Path(os.path.realpath(f)).parts[1] for f in folders if f and os.path.realpath(f) != "/"}


def test_the_sandbox_sees_a_private_root() -> None:
    require("filesystem")
    program = "import os\nprint(sorted(os.listdir('/')))\nprint(os.getcwd() == os.environ['HOME'])\n"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sandbox, "IN_PROCESS_GUARD", False)
        result = run(program)
    assert result.status == "ok", result
    top = set(eval(result.stdout.splitlines()[0]))
    assert top <= {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "dev", "etc"} | _python_and_temp_tops(), top
    assert not {"proc", "sys", "run", "boot"} & top, "no /proc (other processes' environments), /sys or /run"
    assert result.stdout.splitlines()[1] == "True"


def test_threads_work_but_new_processes_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    require("processes")
    monkeypatch.setattr(sandbox, "IN_PROCESS_GUARD", False)  # the kernel filter alone
    program = (
        "import os, signal, threading\n"
        "box = []\nt = threading.Thread(target=lambda: box.append(1)); t.start(); t.join()\nprint('thread', box)\n"
        "os.kill(os.getpid(), 0)\nprint('signal to itself')\n"
        "for name, attempt in [('fork', os.fork), ('spawn', lambda: os.posix_spawn('/bin/true', ['true'], {})),\n"
        "                      ('signal parent', lambda: os.kill(os.getppid(), 0))]:\n"
        "    try:\n        attempt(); print(name, 'ALLOWED')\n"
        "    except PermissionError as exc:\n        print(name, 'denied', exc.errno)\n"
    )
    result = run(program)
    assert result.status == "ok", result
    assert result.stdout.splitlines() == [
        "thread [1]",
        "signal to itself",
        "fork denied 1",
        "spawn denied 1",
        "signal parent denied 1",
    ]


def test_guard_refusals_are_recorded_even_when_caught_or_timed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    program = (
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), timeout=0.2)\n"
        "except PermissionError as exc:\n    print(type(exc).__name__, flush=True)\nwhile True:\n    pass\n"
    )
    result = run(program)
    assert result.status == "timeout" and result.stdout == "SandboxViolation\n"
    assert result.violations == ["network access (socket.getaddrinfo '127.0.0.1')"]
    monkeypatch.setattr(sandbox, "available_isolation", lambda: NONE)  # the guard alone: a host without namespaces
    again = run(program)
    assert again.status == "timeout" and again.violations == result.violations
    assert (again.network_isolated, again.filesystem_isolated, again.processes_isolated) == (False, False, False)


@pytest.mark.parametrize("guard", [True, False])
def test_the_program_holds_no_descriptor_of_the_verdict_channel(guard: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its thread has a descriptor table of its own: stdio and the details channel only (the attacks on
    the verdict are in tests/faults/test_trust_sandbox.py). Every descriptor number up to 4096 is tried:
    the channels inherit the evaluator's numbers, which are high when it holds many files open."""
    monkeypatch.setattr(sandbox, "IN_PROCESS_GUARD", guard)
    program = (
        "import os, stat, sys\nopen_fds = []\nfor fd in range(4096):\n    try:\n"
        "        open_fds.append((fd, stat.S_ISFIFO(os.fstat(fd).st_mode)))\n    except OSError:\n"
        "        pass\nprint(open_fds)\nprint(sys.argv)\n"
    )
    result = run(program)
    assert result.status == "ok", result
    fds = eval(result.stdout.splitlines()[0])
    assert [fd for fd, _ in fds][:3] == [0, 1, 2]
    details = [fd for fd, fifo in fds[3:] if fifo]
    assert len(details) == 1 and len(fds) == 4, f"only the details channel beyond stdio: {fds}"


def test_a_layer_that_cannot_be_applied_stops_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asked for the filesystem layer outside a new user namespace, the harness refuses to run the program."""
    command = sandbox._command
    asked = Isolation(network=False, filesystem=True, processes=False)
    monkeypatch.setattr(sandbox, "available_isolation", lambda: asked)
    monkeypatch.setattr(sandbox, "_command", lambda h, s, c, _isolation, layers: command(h, s, c, NONE, layers))
    before = Path("/proc/self/mountinfo").read_text()
    result = run("print('the program ran')")
    assert (result.status, result.error_type, result.stdout) == ("crash", "SandboxSetupError", "")
    assert "not in a new user namespace" in result.message
    assert Path("/proc/self/mountinfo").read_text() == before
