"""`ratchet schedule` against a real `prefect server start` on 127.0.0.1: a run of the scheduled
deployment ("run now") makes a cycle whose decision shows in `ratchet history`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ratchet.pipeline.schedules import deployment_name
from ratchet.pipeline.workspace import init_workspace
from ratchet.releases.registry import Registry


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`prefect server start` on a free port with its own database; the environment that points at it."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PYTHONPATH": os.getcwd(),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    prefect = str(Path(sys.executable).with_name("prefect"))
    process = start([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, home / "server.log")

    def healthy() -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    try:
        wait_for(healthy, 90, f"prefect server on port {port} ({home / 'server.log'})")
        yield env
    finally:
        stop(process)


def ratchet(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ratchet.pipeline.cli", *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_scheduled_cycle_runs_on_the_server_and_lands_in_history(server: dict[str, str], tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    init_workspace(ws)
    name = f"improve-cycle/{deployment_name('coder', ws)}"
    serving = start(
        [
            sys.executable,
            "-m",
            "ratchet.pipeline.cli",
            "schedule",
            "coder",
            "--cron",
            "0 3 * * *",
            "--timezone",
            "Europe/Berlin",
            "--workspace",
            str(ws),
        ],
        server,
        tmp_path / "serve.log",
    )
    try:
        wait_for(lambda: name in ratchet(server, "schedule", "--list").stdout, 60, "the deployment to be registered")
        listed = ratchet(server, "schedule", "--list").stdout
        assert "cron 0 3 * * * (Europe/Berlin)" in listed and str(ws) in listed

        prefect = str(Path(sys.executable).with_name("prefect"))
        run = subprocess.run(
            [prefect, "deployment", "run", name], env=server, capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, run.stdout + run.stderr
        wait_for(lambda: len(Registry(ws).ledger("coder")) >= 2, 180, "the triggered cycle's decision")
        # The decision lands before the flow run ends (artifacts are published after it): wait for the
        # run's final state before stopping the serving process, or it is killed mid-publish.
        wait_for(
            lambda: "Completed" in ratchet(server, "status", "--workspace", str(ws)).stdout,
            120,
            "the flow run to complete",
        )
    finally:
        stop(serving)

    history = ratchet(server, "history", "--workspace", str(ws))
    assert history.returncode == 0 and "promote" in history.stdout and "coder/v2" in history.stdout
    status = ratchet(server, "status", "--workspace", str(ws))
    assert "coder/v2" in status.stdout and "Completed" in status.stdout, status.stdout
    assert ratchet(server, "schedule", "--remove", name).returncode == 0
    assert name not in ratchet(server, "schedule", "--list").stdout


def test_the_deployment_allows_one_cycle_at_a_time(server: dict[str, str], tmp_path: Path) -> None:
    import asyncio

    from prefect.client.orchestration import get_client

    ws = tmp_path / "ws"
    init_workspace(ws)
    serving = start(
        [
            sys.executable,
            "-m",
            "ratchet.pipeline.cli",
            "schedule",
            "coder",
            "--cron",
            "0 3 * * *",
            "--workspace",
            str(ws),
        ],
        server,
        tmp_path / "serve.log",
    )
    name = f"improve-cycle/{deployment_name('coder', ws)}"
    try:
        wait_for(lambda: name in ratchet(server, "schedule", "--list").stdout, 60, "the deployment")
    finally:
        stop(serving)

    async def limit() -> int | None:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(name)
            return deployment.global_concurrency_limit.limit if deployment.global_concurrency_limit else None

    os.environ["PREFECT_API_URL"], saved = server["PREFECT_API_URL"], os.environ.get("PREFECT_API_URL")
    try:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: server["PREFECT_API_URL"]}):
            assert asyncio.run(limit()) == 1
    finally:
        if saved is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = saved


def test_without_a_server_it_says_what_to_run(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    init_workspace(ws)
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env.update(
        {"PYTHONPATH": os.getcwd(), "PREFECT_HOME": str(tmp_path / "home"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    )
    done = ratchet(env, "schedule", "coder", "--cron", "0 2 * * *", "--workspace", str(ws))
    assert done.returncode == 2 and "prefect server start" in done.stdout + done.stderr
    done = ratchet(env, "schedule", "coder", "--cron", "0 25 * * *", "--workspace", str(ws))
    assert done.returncode == 2 and "not a cron expression" in done.stdout + done.stderr
