"""`pipeline.serving` and `ratchet serve-model` against a real vLLM CPU server (tiny random model)."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from ratchet.agents.errors import ModelBackendError, UserError
from ratchet.pipeline.serving import ServeOptions, VllmServer
from tests.vllm.conftest import SERVER_ENV

pytestmark = pytest.mark.vllm
REPO = Path(__file__).resolve().parents[2]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, NotADirectoryError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def refuses(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.ConnectError:
        return True
    return False


def test_argv_and_snippet() -> None:
    gpu = ServeOptions(
        model="Qwen/Qwen3-0.6B",
        served_name="qwen",
        port=8001,
        tensor_parallel_size=2,
        gpu_memory_utilization=0.9,
        extra_args=["--enforce-eager"],
    )
    assert gpu.argv(8001) == [
        "vllm",
        "serve",
        "Qwen/Qwen3-0.6B",
        "--served-model-name",
        "qwen",
        "--host",
        "127.0.0.1",
        "--port",
        "8001",
        "--gpu-memory-utilization",
        "0.9",
        "--tensor-parallel-size",
        "2",
        "--enforce-eager",
    ]
    cpu = ServeOptions(model="/m", command=["py", "-m", "vllm.entrypoints.openai.api_server"], dtype="float32")
    assert cpu.argv(9)[3:5] == ["--model", "/m"] and cpu.argv(9)[-2:] == ["--dtype", "float32"]
    server = VllmServer(gpu)
    assert server.litellm_model == "hosted_vllm/qwen"
    assert server.toml_snippet() == '[models.qwen]\nmodel = "hosted_vllm/qwen"\napi_base = "http://127.0.0.1:8001/v1"\n'
    assert VllmServer(ServeOptions(model="m", served_name="org/m")).toml_snippet().startswith('[models."org/m"]')


def test_missing_command_is_a_user_error(tmp_path: Path) -> None:
    options = ServeOptions(model="m", command=[str(tmp_path / "no-such-vllm"), "serve"], log_file=tmp_path / "s.log")
    with pytest.raises(UserError, match=r"no-such-vllm.*not found.*--command"):
        VllmServer(options).start()


def test_unhealthy_server_times_out_and_is_killed(tmp_path: Path) -> None:
    script = "import time; print('pretending to load', flush=True); time.sleep(120)"
    options = ServeOptions(
        model="m", command=[sys.executable, "-c", script], startup_timeout_s=2, log_file=tmp_path / "s.log"
    )
    server = VllmServer(options)
    started = time.monotonic()
    with pytest.raises(ModelBackendError) as caught:
        server.start()
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "did not become healthy within 2 s" in message and str(tmp_path / "s.log") in message
    assert "pretending to load" in message and "\n" not in message
    assert server.pid is not None and not group_members(server.pid)


def test_server_that_cannot_start_fails_with_its_log(tiny_serve_options: ServeOptions, tmp_path: Path) -> None:
    log = tmp_path / "bogus.log"
    options = tiny_serve_options.model_copy(update={"model": str(tmp_path / "no-such-model"), "log_file": log})
    server = VllmServer(options)
    started = time.monotonic()
    with pytest.raises(ModelBackendError) as caught:
        server.start()
    assert time.monotonic() - started < 90
    message = str(caught.value)
    assert "exited with code" in message and f"log: {log}" in message
    assert "no-such-model" in message.split("last lines:", 1)[1] and " | " in message and "\n" not in message
    assert server.pid is not None and not group_members(server.pid)


def test_start_health_stop(tiny_serve_options: ServeOptions, tmp_path: Path) -> None:
    options = tiny_serve_options.model_copy(update={"log_file": tmp_path / "own.log"})
    with VllmServer(options) as server:
        assert server.running and server.pid in group_members(server.pid)
        assert httpx.get(server.health_url, timeout=5).status_code == 200
        models = httpx.get(f"{server.base_url}/models", timeout=5).json()
        assert [m["id"] for m in models["data"]] == ["tiny"]
        assert server.log_path == tmp_path / "own.log" and "Starting vLLM" in server.log_path.read_text()
        pid, health = server.pid, server.health_url
    assert not server.running and not group_members(pid)
    assert refuses(health)
    assert server.stop() is not None  # idempotent


def test_chat_completion_through_litellm(vllm_server: VllmServer) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    async def ask() -> litellm.ModelResponse:
        return await litellm.acompletion(
            model=vllm_server.litellm_model,
            api_base=vllm_server.base_url,
            max_tokens=16,
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}],
        )

    response = asyncio.run(ask())
    assert vllm_server.litellm_model == "hosted_vllm/tiny"
    assert isinstance(response.choices[0].message.content, str)
    assert response.usage.prompt_tokens > 0 and 0 < response.usage.completion_tokens <= 16
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


# --- `ratchet serve-model` as a subprocess -------------------------------------------------------
def ratchet_argv() -> list[str]:
    """The real `ratchet` command, run as `python -m pipeline.cli`."""
    return [sys.executable, "-m", "ratchet.pipeline.cli"]


def read_until(lines: queue.Queue[str | None], seen: list[str], marker: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not any(marker in line for line in seen):
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no {marker!r} within {timeout} s; output:\n{''.join(seen)}") from None
        if line is None:
            raise AssertionError(f"exited before {marker!r}; output:\n{''.join(seen)}")
        seen.append(line)


def test_serve_model_cli_prints_usage_and_stops_on_sigterm(tiny_serve_options: ServeOptions, tmp_path: Path) -> None:
    o = tiny_serve_options
    argv = [
        *ratchet_argv(),
        "serve-model",
        o.model,
        "--served-name",
        "tiny",
        "--port",
        "0",
        "--max-model-len",
        "512",
        "--dtype",
        "float32",
        "--command",
        " ".join(o.command),
        "--log-file",
        str(tmp_path / "cli.log"),
        "--startup-timeout",
        "240",
        "--",
        *o.extra_args,
    ]
    env = {**os.environ, **SERVER_ENV, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=lambda: ([lines.put(line) for line in proc.stdout], lines.put(None)), daemon=True).start()
    seen: list[str] = []
    server_pid = None
    try:
        read_until(lines, seen, "press Ctrl-C", timeout=240)
        output = "".join(seen)
        assert "litellm model: hosted_vllm/tiny" in output
        base_url = re.search(r"base url:\s+(\S+)", output).group(1)
        assert f'[models.tiny]\nmodel = "hosted_vllm/tiny"\napi_base = "{base_url}"\n' in output
        assert f"log file:      {tmp_path / 'cli.log'}" in output
        server_pid = int(re.search(r"ready in \d+ s \(pid (\d+)\)", output).group(1))
        health = base_url.removesuffix("/v1") + "/health"
        assert httpx.get(health, timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if server_pid and group_members(server_pid):  # the CLI failed to stop it: do not leak a server
            os.killpg(server_pid, signal.SIGKILL)
    read_until(lines, seen, "vLLM server stopped", timeout=5)
    assert not group_members(server_pid) and refuses(health)
