"""`ratchet serve-model`: run a vLLM OpenAI-compatible server until Ctrl-C or SIGTERM."""

from __future__ import annotations

import shlex
import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError

from ratchet.agents import UserError
from ratchet.pipeline.cli.output import console

if TYPE_CHECKING:  # aiohttp and the server code load only when `ratchet serve` runs
    from ratchet.pipeline.serving import VllmServer

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def register(app: typer.Typer) -> None:
    app.command("serve-model")(serve_model)


def serve_model(
    model: str = typer.Argument(..., help="Model folder or Hugging Face name."),
    extra_args: list[str] = typer.Argument(
        None,
        help="Further vLLM flags, after `--` (e.g. -- --enforce-eager).",
        show_default=False,
    ),
    served_name: str = typer.Option(
        "model", "--served-name", help="Name clients use: litellm model `hosted_vllm/<name>`."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on; 0 picks a free one."),
    max_model_len: int = typer.Option(None, "--max-model-len", min=1, help="Context length in tokens."),
    gpu_memory_utilization: float = typer.Option(
        None,
        "--gpu-memory-utilization",
        min=0.01,
        max=1.0,
        help="Share of GPU memory vLLM may use.",
    ),
    tensor_parallel_size: int = typer.Option(None, "--tensor-parallel-size", min=1, help="GPUs per model replica."),
    dtype: str = typer.Option(None, "--dtype", help="auto, float16, bfloat16, float32, ..."),
    command: str = typer.Option(
        "vllm serve",
        "--command",
        help="Command prefix (split like a shell). vLLM's CPU build: 'VENV/bin/python -m vllm.entrypoints.openai.api_server'.",
    ),
    log_file: Path = typer.Option(
        None, "--log-file", dir_okay=False, help="Server log; default: a new file in the temp folder."
    ),
    startup_timeout: float = typer.Option(
        180.0, "--startup-timeout", min=1.0, help="Seconds to wait for GET /health = 200."
    ),
) -> None:
    """Start a vLLM server, wait until it is healthy, print how to use it, and serve until Ctrl-C or SIGTERM."""
    try:
        from ratchet.pipeline.serving import ServeOptions, VllmServer

        options = ServeOptions(
            model=model,
            served_name=served_name,
            host=host,
            port=port,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            command=shlex.split(command),
            extra_args=list(extra_args or []),
            startup_timeout_s=startup_timeout,
            log_file=log_file.resolve() if log_file else None,
        )
    except (ValidationError, ValueError) as exc:
        raise UserError(f"serve-model: invalid options: {exc}") from exc
    console.print(f"starting vLLM server for {model} ({command})", markup=False, soft_wrap=True)
    _run_until_stopped(VllmServer(options))


def _run_until_stopped(server: VllmServer) -> None:
    """Start, wait until healthy, serve until Ctrl-C or SIGTERM, and stop the server whatever happens."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in _STOP_SIGNALS}
    try:
        ready = _start(server)
        if ready:
            _print_ready(server)
            _serve(server)
    finally:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        code = server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not ready:
        console.print(
            f"interrupted before the server became healthy; stopped it (log: {server.log_path})",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(130)
    console.print(f"vLLM server stopped (exit code {code})", markup=False)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _start(server: VllmServer) -> bool:
    """Start and wait with a spinner; False when interrupted (the server is stopped then)."""
    started = time.monotonic()
    try:
        with console.status("starting vLLM server ...") as status:
            server.start(on_wait=lambda s: status.update(f"waiting for {server.health_url} ... {s:.0f} s"))
    except KeyboardInterrupt:
        return False
    console.print(f"vLLM server ready in {time.monotonic() - started:.0f} s (pid {server.pid})")
    return True


def _print_ready(server: VllmServer) -> None:
    console.print(f"litellm model: {server.litellm_model}", markup=False)
    console.print(f"base url:      {server.base_url}", markup=False)
    console.print(f"log file:      {server.log_path}", markup=False, soft_wrap=True)
    console.print("add to ratchet.toml:", markup=False)
    console.print(server.toml_snippet(), markup=False, soft_wrap=True, end="")
    console.print(
        f"or run with: --model {server.litellm_model} --api-base {server.base_url}", markup=False, soft_wrap=True
    )
    console.print("serving; press Ctrl-C (or send SIGTERM) to stop", markup=False)


def _serve(server: VllmServer) -> None:
    """Block until interrupted; ModelBackendError (with the log tail) if the server dies meanwhile."""
    try:
        while True:
            time.sleep(0.5)
            server.check()
    except KeyboardInterrupt:
        console.print("stopping vLLM server ...", markup=False)
