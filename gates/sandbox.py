"""Sandboxed Python execution: a fresh interpreter, limits, a clean environment, and containment.

`run_python(program)` writes the program to `solution.py` in a fresh temporary folder and runs it
under a small harness (`gates/_sandbox_harness.py` and `gates/_sandbox_runner.py`, compiled once and
copied next to it as `harness.pyc` and `runner.pyc`) in a new `python` process:

- environment: only PATH, LANG, HOME/TMPDIR (the temporary folder), PYTHONHASHSEED=0 and
  PYTHONDONTWRITEBYTECODE=1; nothing of the parent's environment (no API keys) reaches it;
- limits (set in the child before exec): address space, CPU seconds, file size 10 MB, no core
  files; a wall-clock timeout kills the whole process group;
- network: the command runs under `unshare -rn` (new user and network namespace, loopback down)
  when the host allows it;
- filesystem (`unshare -rnm`, where the host allows mounts in a user namespace): the harness
  pivots into a private root holding read-only binds of the system and Python folders only, and a
  64 MB tmpfs as the program's folder, its one writable place; home folders, /tmp, /proc, the
  workspace (suites, holdout split, ledger) and everything else of the host are simply not there;
- processes: a seccomp filter forbids child processes (so no fork bomb and no process can escape
  the kill), ptrace, signals to other processes and having the kernel signal one for it (fcntl
  F_SETOWN/F_SETSIG, ioctl FIOSETOWN/SIOCSPGRP, io_uring); threads still work;
- guard: an audit hook refuses network use, process creation, ctypes, tracing, the harness's own
  frames, signal routing and file access outside the sandbox with `SandboxViolation` and records
  each refusal. It is in-process, so best effort; the kernel layers are the containment, the guard
  makes refusals recognisable (and is the only barrier on hosts that allow no namespaces, which
  `SandboxResult` then says);
- the verdict: a run passes (`ok`) only if the harness's main thread says `FINISHED` on a pipe that
  the program's thread cannot reach (it runs with a file descriptor table of its own, without that
  pipe), and the main thread says it only after the program's code returned. Errors, refusals and
  setup failures come on a second pipe that the program can write too: it can spoil its own error
  report, never turn a failure into a pass. stdout and stderr are the program's, kept up to
  `max_output_bytes`.

What the host allows is probed once per process (`available_isolation()`); a run never claims a
layer it did not get: if a layer the probe found fails to apply, the run ends before the program
starts (status `crash`, error type `SandboxSetupError`).
"""

from __future__ import annotations

import ast
import asyncio
import functools
import os
import py_compile
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ratchet.gates._sandbox_harness import FINISHED, SETUP_FAILED

FILE_SIZE_LIMIT = 10 * 1024 * 1024
CHILD_PATH = "/usr/local/bin:/usr/bin:/bin"
HARNESS = Path(__file__).with_name("_sandbox_harness.py")
RUNNER = Path(__file__).with_name("_sandbox_runner.py")
IN_PROCESS_GUARD = True  # tests turn it off to check the kernel layers alone
_READ_CHUNK = 64 * 1024
_DRAIN_AFTER_EXIT_S = 2.0
_MAX_DETAILS_BYTES = 256 * 1024  # the tail of the details channel that is kept
_MAX_VIOLATIONS_KEPT = 10
_probe_lock = threading.Lock()


class SandboxLimits(BaseModel):
    """Resource limits of one sandboxed run."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    timeout_s: float = Field(default=5.0, gt=0, description="Wall-clock limit; the process group is killed after it.")
    memory_mb: int = Field(default=1024, gt=0, description="Address-space limit (RLIMIT_AS).")
    cpu_s: int = Field(default=10, gt=0, description="CPU-time limit (RLIMIT_CPU).")
    max_output_bytes: int = Field(default=64_000, ge=0, description="Bytes kept of stdout and of stderr, each.")


class Isolation(BaseModel):
    """Which kernel-enforced layers a run gets (what the host allows, probed once per process)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    network: bool = Field(description="No network: a new, empty network namespace (unshare -rn).")
    filesystem: bool = Field(description="A private read-only root; a small tmpfs is the only writable place.")
    processes: bool = Field(description="seccomp: no child processes, no ptrace, no signals to other processes.")


class SandboxResult(BaseModel):
    """What happened to one sandboxed program."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    status: Literal["ok", "error", "timeout", "crash"]
    error_type: str | None = Field(
        default=None,
        description=(
            "Exception type name (SandboxViolation: the guard refused an operation), Timeout, Crash, MemoryError, "
            "or SandboxSetupError (a containment layer failed to apply; the program did not run)."
        ),
    )
    message: str = Field(default="", description="One line: str(exception), trimmed; or why the run ended.")
    line: int | None = Field(default=None, description="Line in solution.py where the error was raised, if known.")
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    network_isolated: bool = Field(description="Whether the run had no network (unshare -rn).")
    filesystem_isolated: bool = Field(
        default=False, description="Whether the run saw only a private read-only root (no home, /tmp or workspace)."
    )
    processes_isolated: bool = Field(
        default=False, description="Whether seccomp kept the run from starting processes or touching other ones."
    )
    violations: list[str] = Field(
        default_factory=list, description="Operations the sandbox refused, e.g. 'network access (socket.connect ...)'."
    )


@functools.lru_cache(maxsize=1)
def network_isolation_available() -> bool:
    """Whether `unshare -rn` works on this host (probed once per process)."""
    return _unshare_works("-rn")


@functools.lru_cache(maxsize=1)
def mount_isolation_available() -> bool:
    """Whether `unshare -rnm` (user, network and mount namespaces) works on this host."""
    return _unshare_works("-rnm")


def _unshare_works(flags: str) -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    try:
        probe = subprocess.run([unshare, flags, "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def available_isolation() -> Isolation:
    """The layers this host allows: namespaces from `unshare`, then what the harness could apply."""
    network = network_isolation_available()
    mounts = network and mount_isolation_available()
    with _probe_lock:
        applied = _probe_layers(network, mounts)
    return Isolation(network=network, filesystem="filesystem" in applied, processes="processes" in applied)


@functools.lru_cache(maxsize=4)
def _probe_layers(network: bool, mounts: bool) -> frozenset[str]:
    """Run `pass` under the harness in probe mode; it applies what it can and says what took effect."""
    workdir = Path(tempfile.mkdtemp(prefix="ratchet-sandbox-probe-"))
    verdict_read, verdict_write = os.pipe()
    details_read, details_write = os.pipe()
    try:
        source, harness, runner = _prepare(workdir, "pass")
        isolation = Isolation(network=network, filesystem=mounts, processes=True)
        layers = ["filesystem"] * mounts + ["processes", "probe"]
        command = _command(harness, source, (runner, verdict_write, details_write), isolation, layers)
        try:
            subprocess.run(
                command,
                cwd=workdir,
                env=_child_env(workdir),
                capture_output=True,
                timeout=30,
                check=False,
                stdin=subprocess.DEVNULL,
                pass_fds=(verdict_write, details_write),
            )
        except (OSError, subprocess.SubprocessError):
            return frozenset()
        finally:
            os.close(verdict_write)
            os.close(details_write)
        os.set_blocking(details_read, False)
        verdict = _last_message(_read_available(details_read)) or {}
        applied = verdict.get("applied")
        return frozenset(a for a in applied if isinstance(a, str)) if isinstance(applied, list) else frozenset()
    finally:
        os.close(verdict_read)
        os.close(details_read)
        _remove_tree(workdir)


def _read_available(fd: int) -> bytes:
    """What a non-blocking pipe holds now (the writer has exited)."""
    chunks = []
    try:
        while chunk := os.read(fd, _READ_CHUNK):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    return b"".join(chunks)


async def run_python(program: str, limits: SandboxLimits | None = None) -> SandboxResult:
    """Run `program` in a fresh sandboxed interpreter (default limits unless given) and classify how it ended."""
    limits = limits if limits is not None else SandboxLimits()
    workdir = Path(tempfile.mkdtemp(prefix="ratchet-sandbox-"))
    try:
        return await _run_in(workdir, program, limits)
    finally:
        await asyncio.to_thread(_remove_tree, workdir)


async def _run_in(workdir: Path, program: str, limits: SandboxLimits) -> SandboxResult:
    source, harness, runner = _prepare(workdir, program)
    isolation = available_isolation()
    layers = ["filesystem"] * isolation.filesystem + ["processes"] * isolation.processes + ["guard"] * IN_PROCESS_GUARD
    verdict_read, verdict_write = os.pipe()
    details_read, details_write = os.pipe()
    command = _command(harness, source, (runner, verdict_write, details_write), isolation, layers)
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env=_child_env(workdir),
            start_new_session=True,
            pass_fds=(verdict_write, details_write),
            preexec_fn=functools.partial(_apply_limits, limits),
        )
    finally:
        os.close(verdict_write)
        os.close(details_write)
    readers = [asyncio.ensure_future(_read_capped(s, limits.max_output_bytes)) for s in (proc.stdout, proc.stderr)]
    channels = [
        asyncio.ensure_future(_read_fd(verdict_read, len(FINISHED), keep="head")),
        asyncio.ensure_future(_read_fd(details_read, _MAX_DETAILS_BYTES, keep="tail")),
    ]
    timed_out = False
    try:
        await asyncio.wait_for(proc.wait(), timeout=limits.timeout_s)
    except TimeoutError:
        timed_out = True
    finally:
        _kill_group(proc.pid)
        await proc.wait()
        stdout, stderr = await _collect(readers)
        finished, details = await _collect_channels(channels)
    verdict = _last_message(details)
    outputs: dict[str, Any] = {
        "stdout": stdout,
        "stderr": stderr,
        "duration_s": time.monotonic() - started,
        "network_isolated": isolation.network,
        "filesystem_isolated": isolation.filesystem,
        "processes_isolated": isolation.processes,
        "violations": _violations(verdict),
    }
    if timed_out:
        message = f"the program ran longer than {limits.timeout_s:g} s"
        return SandboxResult(status="timeout", error_type="Timeout", message=message, **outputs)
    return _classify(finished == FINISHED, verdict, proc.returncode, stderr, limits, outputs)


def _prepare(workdir: Path, program: str) -> tuple[Path, Path, Path]:
    """Write the program, the harness and the runner into the run's folder; returns their paths."""
    source, harness, runner = workdir / "solution.py", workdir / "harness.pyc", workdir / "runner.pyc"
    source.write_bytes(program.encode("utf-8", "surrogatepass"))
    harness.write_bytes(_bytecode(HARNESS, "harness.py"))
    runner.write_bytes(_bytecode(RUNNER, "runner.py"))
    return source, harness, runner


@functools.cache
def _bytecode(path: Path, shown_as: str) -> bytes:
    """A harness file compiled once per process; the child runs the .pyc directly (`python harness.pyc`), as
    compiling its source on every run would cost a few milliseconds of the python tool's hot path. The
    harness's code objects carry `shown_as` as their file name (its guard refuses frames of that file)."""
    with tempfile.TemporaryDirectory(prefix="ratchet-harness-") as tmp:
        compiled = Path(tmp) / "compiled.pyc"
        py_compile.compile(str(path), cfile=str(compiled), dfile=shown_as, doraise=True)
        return compiled.read_bytes()


def _classify(
    finished: bool,
    verdict: dict[str, Any] | None,
    returncode: int | None,
    stderr: str,
    limits: SandboxLimits,
    outputs: dict[str, Any],
) -> SandboxResult:
    """The result of a run that ended on its own: `ok` only from the verdict channel; otherwise from the
    details the harness (or the program) sent, or from how the process exited."""
    if finished:
        return SandboxResult(status="ok", **outputs)
    found = verdict or {}
    status = found.get("status")
    if status == "error":
        line = found.get("line")
        return SandboxResult(
            status="error",
            error_type=str(found.get("error_type") or "Exception"),
            message=str(found.get("message") or ""),
            line=line if isinstance(line, int) else None,
            **outputs,
        )
    if status == "setup_failed" and returncode == SETUP_FAILED:
        message = f"the sandbox could not be set up, the program did not run: {found.get('message', '')}"
        return SandboxResult(status="crash", error_type="SandboxSetupError", message=message, **outputs)
    return _crash_result(returncode, stderr, limits, outputs)


def _violations(verdict: dict[str, Any] | None) -> list[str]:
    """The first few refusals the harness recorded (it records them as they happen, so a run that
    timed out or crashed still reports them)."""
    found = verdict.get("violations") if verdict else None
    if not isinstance(found, list):
        return []
    return [str(v)[:300] for v in found[:_MAX_VIOLATIONS_KEPT]]


def _command(
    harness: Path, source: Path, channels: tuple[Path, int, int], isolation: Isolation, layers: list[str]
) -> list[str]:
    """The harness's command line; `channels` is (runner.pyc, verdict pipe's fd, details pipe's fd)."""
    runner, verdict_fd, details_fd = channels
    # `-s -P -B` plus a fully controlled environment isolate like `-I`, which would ignore PYTHONHASHSEED.
    command = [
        sys.executable,
        "-s",
        "-P",
        "-B",
        str(harness),
        str(source),
        str(runner),
        str(verdict_fd),
        str(details_fd),
        ",".join(layers),
    ]
    unshare = shutil.which("unshare") or "unshare"
    if isolation.filesystem:
        return [unshare, "-rnm", *command]
    if isolation.network:
        return [unshare, "-rn", *command]
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


async def _collect(readers: Sequence[asyncio.Future[tuple[bytes, int]]]) -> tuple[str, str]:
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


async def _read_fd(fd: int, cap: int, keep: Literal["head", "tail"]) -> bytes:
    """Read a pipe to its end (closing it), keeping its first or last `cap` bytes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb"))
    kept = bytearray()
    try:
        while chunk := await reader.read(_READ_CHUNK):
            kept += chunk
            if len(kept) > cap and keep == "head":
                del kept[cap:]
            elif len(kept) > cap:
                del kept[: len(kept) - cap]
    finally:
        transport.close()
    return bytes(kept)


async def _collect_channels(channels: Sequence[asyncio.Future[bytes]]) -> tuple[bytes, bytes]:
    """The verdict and details channels' contents (empty where a stray process still holds one open)."""
    await asyncio.wait(channels, timeout=_DRAIN_AFTER_EXIT_S)
    found = []
    for channel in channels:
        if channel.done() and not channel.cancelled() and channel.exception() is None:
            found.append(channel.result())
        else:
            channel.cancel()
            found.append(b"")
    return found[0], found[1]


def _last_message(data: bytes) -> dict[str, Any] | None:
    """The last well-formed message on the details channel: a Python literal per line (parsed with
    `ast.literal_eval`, never executed)."""
    for line in reversed(data.decode("utf-8", errors="replace").splitlines()):
        try:
            message = ast.literal_eval(line)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(message, dict):
            return message
    return None


def _crash_result(returncode: int | None, stderr: str, limits: SandboxLimits, outputs: dict[str, Any]) -> SandboxResult:
    """Classify an exit without a verdict (signal, os._exit, a crash in C)."""
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
