"""No secret reaches traces, the run store, logs or git, even when the model echoes it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.agents.openai_stub import StubServer, completion

SECRET = "sk-test-9f8e7d6c5b4a3210"


@pytest.fixture
def echo_server():
    def echo(n: int, body: dict) -> dict:  # the model leaks what it can see, and the key it was sent with
        return completion(f"def f():\n    return 1  # key {SECRET} and again {SECRET}")

    server = StubServer(echo).start()
    yield server
    server.stop()


def test_eval_through_an_http_model_records_no_key(workspace: Path, echo_server: StubServer, cli, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    settings = workspace / "ratchet.toml"
    settings.write_text(
        settings.read_text()
        + f'''
[models.remote]
model = "hosted_vllm/tiny"
api_base = "{echo_server.base_url}"
api_key_env = "OPENAI_API_KEY"
retries = 0
'''
    )
    out = cli("eval", "coder/v1", "--split", "dev", "--model", "remote", "--workspace", str(workspace))
    assert out.exit_code == 0, out.output
    assert "0/" in out.output and "passed" in out.output
    assert echo_server.headers[0]["Authorization"] == f"Bearer {SECRET}", "the key was really used"
    assert SECRET not in out.output

    stored = list((workspace / ".ratchet").rglob("*.jsonl"))
    assert stored and all(SECRET.encode() not in p.read_bytes() for p in stored)
    assert any(b"[REDACTED]" in p.read_bytes() for p in stored)
    assert "remote" in settings.read_text() and SECRET not in settings.read_text()
    history = subprocess.run(["git", "-C", str(workspace), "log", "-p", "--all"], capture_output=True, text=True)
    assert SECRET not in history.stdout
