"""gates.sandbox: real subprocesses, real limits, real sockets."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path

import pytest

from gates import sandbox
from gates.sandbox import SandboxLimits, SandboxResult, network_isolation_available, run_python

FAST = SandboxLimits(timeout_s=1)


def run(program: str, limits: SandboxLimits = FAST) -> SandboxResult:
    return asyncio.run(run_python(program, limits))


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


@pytest.mark.skipif(not network_isolation_available(), reason="unshare -rn is not permitted on this host")
def test_network_is_blocked() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        result = run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=0.5)\n")
    assert result.network_isolated is True
    assert result.status == "error"
    assert result.error_type in {"OSError", "ConnectionRefusedError", "TimeoutError"}


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


def test_cancelled_run_kills_the_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    program = f"import os\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\nwhile True:\n    pass\n"

    async def cancel_midway() -> None:
        task = asyncio.ensure_future(run_python(program, SandboxLimits(timeout_s=30)))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if pid_file.exists() and pid_file.read_text():
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_runs_without_isolation_when_unshare_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    assert sandbox.network_isolation_available.__wrapped__() is False
    monkeypatch.setattr(sandbox, "network_isolation_available", lambda: False)
    result = run("print('still runs')")
    assert (result.status, result.stdout, result.network_isolated) == ("ok", "still runs\n", False)
