"""Sandboxed Python execution: a fresh interpreter with limits, a clean environment and no network.

`run_python(program)` writes the program to `solution.py` in a fresh temporary folder and
runs it under a small harness (`harness.py`) in a new `python` process:

- environment: only PATH, LANG, HOME/TMPDIR (the temporary folder), PYTHONHASHSEED=0 and
  PYTHONDONTWRITEBYTECODE=1; nothing of the parent's environment (no API keys) reaches it;
- limits (set in the child before exec): address space, CPU seconds, file size 10 MB, no core
  files; a wall-clock timeout kills the whole process group;
- network: the command runs under `unshare -rn` (new user and network namespace, loopback
  down) when the host allows it; `SandboxResult.network_isolated` says whether it did;
- the harness writes its verdict as JSON to a result file, never to stdout, so the program
  may print anything; stdout and stderr are kept up to `max_output_bytes` each.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FILE_SIZE_LIMIT = 10 * 1024 * 1024
CHILD_PATH = "/usr/local/bin:/usr/bin:/bin"
_READ_CHUNK = 64 * 1024
_DRAIN_AFTER_EXIT_S = 2.0

# Runs inside the sandbox. Kept free of anything the program could have replaced: the
# modules and the result path are bound before the program runs.
_HARNESS = r'''
import json, os, sys, types

_reserve = bytearray(1 << 20)


def _one_line(text, limit=300):
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _report(result_path, exc):
    global _reserve
    _reserve = None
    if exc is None:
        payload = {"status": "ok"}
    else:
        try:
            message = str(exc)
        except BaseException:
            message = "<unprintable exception>"
        line = getattr(exc, "lineno", None) if isinstance(exc, SyntaxError) else None
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "solution.py":
                line = tb.tb_lineno
            tb = tb.tb_next
        payload = {"status": "error", "error_type": type(exc).__name__,
                   "message": _one_line(message), "line": line}
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(payload, handle)


def _main(source_path, result_path):
    with open(source_path, "rb") as handle:
        source = handle.read()
    module = types.ModuleType("__main__")
    module.__file__ = "solution.py"
    sys.modules["__main__"] = module
    try:
        code = compile(source, "solution.py", "exec", dont_inherit=True)
        exec(code, module.__dict__)
    except BaseException as exc:
        _report(result_path, exc)
    else:
        _report(result_path, None)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(0)


_main(sys.argv[1], sys.argv[2])
'''


class SandboxLimits(BaseModel):
    """Resource limits of one sandboxed run."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    timeout_s: float = Field(default=5.0, gt=0, description="Wall-clock limit; the process group is killed after it.")
    memory_mb: int = Field(default=1024, gt=0, description="Address-space limit (RLIMIT_AS).")
    cpu_s: int = Field(default=10, gt=0, description="CPU-time limit (RLIMIT_CPU).")
    max_output_bytes: int = Field(default=64_000, ge=0, description="Bytes kept of stdout and of stderr, each.")


class SandboxResult(BaseModel):
    """What happened to one sandboxed program."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    status: Literal["ok", "error", "timeout", "crash"]
    error_type: str | None = Field(default=None, description="Exception type name, Timeout, Crash or MemoryError.")
    message: str = Field(default="", description="One line: str(exception), trimmed; or why the run ended.")
    line: int | None = Field(default=None, description="Line in solution.py where the error was raised, if known.")
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    network_isolated: bool = Field(description="Whether the run had no network (unshare -rn).")


@functools.lru_cache(maxsize=1)
def network_isolation_available() -> bool:
    """Whether `unshare -rn` works on this host (probed once per process)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    try:
        probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


async def run_python(program: str, limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Run `program` in a fresh sandboxed interpreter and classify how it ended."""
    workdir = Path(tempfile.mkdtemp(prefix="ratchet-sandbox-"))
    try:
        return await _run_in(workdir, program, limits)
    finally:
        await asyncio.to_thread(_remove_tree, workdir)


async def _run_in(workdir: Path, program: str, limits: SandboxLimits) -> SandboxResult:
    source, harness, result_file = workdir / "solution.py", workdir / "harness.py", workdir / ".result.json"
    source.write_bytes(program.encode("utf-8", "surrogatepass"))
    harness.write_text(_HARNESS, encoding="utf-8")
    isolated = network_isolation_available()
    command = _command(harness, source, result_file, isolated)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=workdir,
        env=_child_env(workdir),
        start_new_session=True,
        preexec_fn=functools.partial(_apply_limits, limits),
    )
    readers = [asyncio.ensure_future(_read_capped(s, limits.max_output_bytes)) for s in (proc.stdout, proc.stderr)]
    timed_out = False
    try:
        await asyncio.wait_for(proc.wait(), timeout=limits.timeout_s)
    except TimeoutError:
        timed_out = True
    finally:
        _kill_group(proc.pid)
        await proc.wait()
        stdout, stderr = await _collect(readers)
    duration = time.monotonic() - started
    outputs = {"stdout": stdout, "stderr": stderr, "duration_s": duration, "network_isolated": isolated}
    if timed_out:
        message = f"the program ran longer than {limits.timeout_s:g} s"
        return SandboxResult(status="timeout", error_type="Timeout", message=message, **outputs)
    verdict = _read_result(result_file)
    if verdict is None:
        return _crash_result(proc.returncode, stderr, limits, outputs)
    if verdict.get("status") == "ok":
        return SandboxResult(status="ok", **outputs)
    return SandboxResult(
        status="error",
        error_type=str(verdict.get("error_type") or "Exception"),
        message=str(verdict.get("message") or ""),
        line=verdict.get("line") if isinstance(verdict.get("line"), int) else None,
        **outputs,
    )


def _command(harness: Path, source: Path, result_file: Path, isolated: bool) -> list[str]:
    # `-s -P -B` plus a fully controlled environment isolate like `-I`, which would ignore PYTHONHASHSEED.
    command = [sys.executable, "-s", "-P", "-B", str(harness), str(source), str(result_file)]
    if isolated:
        return [shutil.which("unshare") or "unshare", "-rn", *command]
    return command


def _child_env(workdir: Path) -> dict[str, str]:
    """A fresh environment: nothing is inherited from the parent."""
    return {
        "PATH": CHILD_PATH,
        "LANG": "C.UTF-8",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _apply_limits(limits: SandboxLimits) -> None:
    """Runs in the child between fork and exec."""
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


async def _read_capped(stream: asyncio.StreamReader | None, cap: int) -> tuple[bytes, int]:
    """Read a stream to its end, keeping the first `cap` bytes; returns (kept, dropped count)."""
    kept, dropped = bytearray(), 0
    if stream is None:
        return b"", 0
    while chunk := await stream.read(_READ_CHUNK):
        room = max(cap - len(kept), 0)
        kept += chunk[:room]
        dropped += max(len(chunk) - room, 0)
    return bytes(kept), dropped


async def _collect(readers: list[asyncio.Future[tuple[bytes, int]]]) -> tuple[str, str]:
    """Wait briefly for both pipes to close (a stray grandchild may hold them open)."""
    await asyncio.wait(readers, timeout=_DRAIN_AFTER_EXIT_S)
    texts = []
    for reader in readers:
        if not reader.done():
            reader.cancel()
            texts.append("")
            continue
        data, dropped = reader.result()
        text = data.decode("utf-8", errors="replace")
        texts.append(text + (f"\n[... {dropped} more bytes not kept]" if dropped else ""))
    return texts[0], texts[1]


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        verdict = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return verdict if isinstance(verdict, dict) else None


def _crash_result(returncode: int | None, stderr: str, limits: SandboxLimits, outputs: dict[str, Any]) -> SandboxResult:
    """Classify an exit without a result file (signal, os._exit, a crash in C)."""
    code = returncode if returncode is not None else -1
    if code < 0:
        try:
            how = f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with code {code} before finishing"
    if code == -signal.SIGXCPU:
        message = f"the program used more than {limits.cpu_s} s of CPU time"
        return SandboxResult(status="timeout", error_type="Timeout", message=message, **outputs)
    if "MemoryError" in stderr[-2000:]:
        message = f"out of memory (limit {limits.memory_mb} MB): the program {how}"
        return SandboxResult(status="crash", error_type="MemoryError", message=message, **outputs)
    return SandboxResult(status="crash", error_type="Crash", message=f"the program {how}", **outputs)


def _remove_tree(path: Path) -> None:
    """Delete the sandbox folder even if the program removed permissions inside it."""

    def make_writable_and_retry(func: Callable[[str], object], target: str, _exc_info: object) -> None:
        try:
            os.chmod(os.path.dirname(target), stat.S_IRWXU)
            os.chmod(target, stat.S_IRWXU)
            func(target)
        except OSError:
            pass

    shutil.rmtree(path, onerror=make_writable_and_retry)
