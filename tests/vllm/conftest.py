"""Fixtures for tests against a real vLLM server (the CPU build serving a tiny random model).

The vLLM venv is separate from the project's (as in production): point `RATCHET_VLLM_PYTHON` at
its python (make one with `scripts/vllm_cpu_env.sh DIR`). Without it every test here is skipped.

Only one vLLM server runs at a time (2 cores): the shared `vllm_server` is started once per
session, on first use, and tests that start servers of their own are moved ahead of every test
that uses it (see `pytest_collection_modifyitems`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ratchet.pipeline.serving import ServeOptions, VllmServer, cpu_command

ENV_VAR = "RATCHET_VLLM_PYTHON"
SKIP_MESSAGE = (
    "vLLM integration tests need RATCHET_VLLM_PYTHON=<venv>/bin/python; create it with scripts/vllm_cpu_env.sh DIR"
)
HERE = Path(__file__).parent
SERVER_ENV = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
# --enforce-eager skips torch.compile warm-up: healthy in ~25 s instead of ~55 s on 2 cores.
# The tool flags let requests with `tools` / tool_choice="auto" through (the template renders them).
# Compact JSON: left free to place whitespace, the random model fills max_tokens with it.
SERVER_ARGS = [
    "--enforce-eager",
    "--enable-auto-tool-choice",
    "--tool-call-parser",
    "hermes",
    "--structured-outputs-config",
    '{"backend": "xgrammar", "disable_any_whitespace": true}',
]


def vllm_python() -> str | None:
    """The vLLM venv's python from $RATCHET_VLLM_PYTHON, None when unset or missing."""
    value = os.environ.get(ENV_VAR, "")
    return value if value and Path(value).is_file() else None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vllm: integration tests against a real vLLM server (need RATCHET_VLLM_PYTHON)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip this folder without a vLLM venv; otherwise run own-server tests before the shared server starts."""
    mine = [i for i, item in enumerate(items) if HERE in Path(str(item.path)).parents]
    if not mine:
        return
    if vllm_python() is None:
        value = os.environ.get(ENV_VAR)
        reason = SKIP_MESSAGE if not value else f"{SKIP_MESSAGE} ({ENV_VAR}={value} does not exist)"
        for index in mine:
            items[index].add_marker(pytest.mark.skip(reason=reason))
        return
    ordered = sorted((items[i] for i in mine), key=lambda item: "vllm_server" in item.fixturenames)
    for index, item in zip(mine, ordered, strict=True):
        items[index] = item


@pytest.fixture(scope="session")
def vllm_venv_python() -> str:
    python = vllm_python()
    if python is None:
        pytest.skip(SKIP_MESSAGE)
    return python


@pytest.fixture(scope="session")
def tiny_model_dir(vllm_venv_python: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama model (0.6 MB) written by make_tiny_model.py inside the vLLM venv."""
    out = tmp_path_factory.mktemp("tiny-model")
    done = subprocess.run(
        [vllm_venv_python, str(HERE / "make_tiny_model.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **SERVER_ENV},
    )
    if done.returncode != 0:
        raise RuntimeError(f"make_tiny_model.py failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return out


@pytest.fixture(scope="session")
def tiny_serve_options(
    vllm_venv_python: str, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> ServeOptions:
    """Options for a CPU server of the tiny model named "tiny"; tests vary them with `model_copy(update=...)`."""
    return ServeOptions(
        model=str(tiny_model_dir),
        served_name="tiny",
        command=cpu_command(vllm_venv_python),
        max_model_len=512,
        dtype="float32",
        extra_args=SERVER_ARGS,
        env=SERVER_ENV,
        startup_timeout_s=240,
        log_file=tmp_path_factory.mktemp("vllm-logs") / "tiny.log",
    )


@pytest.fixture(scope="session")
def vllm_server(tiny_serve_options: ServeOptions) -> Iterator[VllmServer]:
    """ONE vLLM server for the session: use `vllm_server.base_url` and `vllm_server.litellm_model` ("hosted_vllm/tiny")."""
    with VllmServer(tiny_serve_options) as server:
        yield server
