"""Trust attacks on secrets: what a key, a secret-shaped answer or a credential in a URL leaves behind.

Each test drives Ratchet as a user does (the `ratchet` CLI or the Prefect flow) against real local
servers on 127.0.0.1 that echo what they are sent, on a real git workspace and the real Prefect
test server, then reads back everything Ratchet stored: the run store, git history (every ref),
Prefect's flow-run parameters, logs and artifacts, and Prefect's database file.

(a) The value of a variable that a model config names with `api_key_env` is a key whatever the
    variable's name (`PROVIDER_KEY`, `MY_LLM_PASS`, `ACCESS`: names the SECRET_NAME pattern misses).
(b) Redaction is for what is stored: an answer equal to a secret-shaped string is scored as said.
(c) An `--api-base` with credentials in it is not a flow parameter, a log line or an artifact.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ratchet.pipeline.workspace import demo_files
from ratchet.releases.registry import initialize
from tests.agents.openai_stub import StubServer, completion
from tests.faults.faulty_model_server import FaultPlan, FaultyModelServer

MASK = "[REDACTED]"
SECRET_SHAPED_ANSWER = "sk-test1234abcd"


# --------------------------------------------------------------------------- helpers


def git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(ws), *args], check=True, capture_output=True, text=True).stdout


def git_history(ws: Path) -> str:
    """Every commit of every ref with its patch, and every tag's message."""
    return git(ws, "log", "-p", "--all") + git(ws, "tag", "-n99")


def run_store_bytes(ws: Path) -> bytes:
    """Every file Ratchet keeps in the workspace's scratch area (run store, checkouts, reports)."""
    return b"\n".join(p.read_bytes() for p in sorted((ws / ".ratchet").rglob("*")) if p.is_file())


def add_suite(ws: Path, tasks: list[dict[str, Any]], name: str = "secrets") -> None:
    """A small exact-match suite (every task in dev) that the agent `coder` runs from now on."""
    folder = ws / "suites" / name
    folder.mkdir(parents=True)
    (folder / "suite.yaml").write_text(yaml.safe_dump({"name": name, "source": "tasks.jsonl"}))
    (folder / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    (folder / "splits.json").write_text(json.dumps({"dev": [t["id"] for t in tasks], "gate": [], "holdout": []}))
    settings = ws / "ratchet.toml"
    settings.write_text(settings.read_text().replace('suite = "humaneval"', f'suite = "{name}"'))


def exact(task_id: str, question: str, answer: str) -> dict[str, Any]:
    return {"id": task_id, "input": question, "verifier": {"type": "exact_match", "expected": [answer]}}


def model_alias(alias: str, base_url: str, key_env: str | None = None) -> str:
    key = f'api_key_env = "{key_env}"\n' if key_env else ""
    return f'\n[models.{alias}]\nmodel = "hosted_vllm/{alias}"\napi_base = "{base_url}"\n{key}retries = 0\n'


def echoing(reply: Any) -> StubServer:
    """A stub server whose n-th answer is `reply(authorization_header, request_body)`."""
    holder: list[StubServer] = []

    def behaviour(n: int, body: dict[str, Any]) -> dict[str, Any]:
        return completion(reply(holder[0].headers[n].get("Authorization", ""), body))

    server = StubServer(behaviour)
    holder.append(server)
    return server.start()


@pytest.fixture
def servers() -> Iterator[list[StubServer]]:
    """Stub servers a test starts; all stopped at the end."""
    started: list[StubServer] = []
    yield started
    for server in started:
        server.stop()


# --------------------------------------------------------------------------- (a) keys named by api_key_env


@pytest.mark.parametrize("key_env", ["PROVIDER_KEY", "MY_LLM_PASS", "ACCESS"])
def test_a_key_named_by_api_key_env_is_redacted_from_the_run_store_whatever_its_name(
    key_env: str, workspace: Path, servers: list[StubServer], cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "prov-7Hq2Lx9Wc4MzR8vN"  # no known key shape: only its being named by api_key_env marks it
    monkeypatch.setenv(key_env, key)
    server = echoing(lambda auth, body: f"The key I was sent is {auth.removeprefix('Bearer ')}")
    servers.append(server)
    add_suite(workspace, [exact("q1", "Capital of France?", "Paris"), exact("q2", "2+2?", "4")])
    settings = workspace / "ratchet.toml"
    settings.write_text(settings.read_text() + model_alias("echo", server.base_url, key_env))

    out = cli("eval", "coder/v1", "--split", "dev", "--model", "echo", "--workspace", str(workspace))

    assert out.exit_code == 0, out.output
    assert server.headers and all(h["Authorization"] == f"Bearer {key}" for h in server.headers), "the key was sent"
    assert key not in out.output
    stored = run_store_bytes(workspace)
    assert key.encode() not in stored, f"${key_env} (named by api_key_env) is in the run store"
    assert key.lower().encode() not in stored.lower(), "the verifier's (lowercased) quote of the answer holds the key"
    assert MASK.encode() in stored
    assert key not in git_history(workspace)


def critic_answer(auth: str, body: dict[str, Any]) -> str:
    """A grounded critic that also repeats the key it was called with (a proxy that echoes headers)."""
    prompt = next(m["content"] for m in body["messages"] if m["role"] == "user")
    final = prompt.split("--- final output ---\n", 1)[1].splitlines()[0]
    label = "wrong_answer" if final.startswith(("def ", "from ", "import ", "    ")) else "non_code_output"
    quote = final if len(final) >= 3 else prompt.split("--- verifier: ", 1)[1].splitlines()[0]
    return json.dumps(
        {
            "symptoms": [
                {
                    "label": label,
                    "new_label": False,
                    "evidence": [quote],
                    "description": f"seen from outside; I was called with {auth}",
                }
            ]
        }
    )


def synthesizer_answer(auth: str, body: dict[str, Any]) -> str:
    """A valid proposal whose intent repeats the key the synthesizer was called with."""
    return json.dumps(
        {
            "remediation": "bare-code",
            "targets": ["non_code_output"],
            "intent": f"Answer with bare code so the tests can run it (called with {auth}).",
            "edits": [{"add_instruction": "Return only the Python code of the function, without markdown fences."}],
        }
    )


@pytest.mark.usefixtures("prefect_server")
def test_critic_and_synthesizer_keys_never_reach_git_or_the_run_store(
    tmp_path: Path, servers: list[StubServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ratchet.pipeline.flows import improve_cycle

    critic_key, synthesizer_key = "crit-5Rk8Qw2Zt7Yp", "synth-3Jd9Fh6Lm1Xc"
    monkeypatch.setenv("MY_LLM_PASS", critic_key)
    monkeypatch.setenv("ACCESS", synthesizer_key)
    critic, synthesizer = echoing(critic_answer), echoing(synthesizer_answer)
    servers.extend([critic, synthesizer])
    files = demo_files()
    meta = yaml.safe_load(files["agents/coder/meta/synthesizer.yaml"])
    meta.update(strategies=["llm", "playbook"], llm={"model": "synth", "samples": 1})
    files["agents/coder/meta/synthesizer.yaml"] = yaml.safe_dump(meta).encode()
    files["ratchet.toml"] = (
        files["ratchet.toml"]
        + b'critic_model = "critic"\n'
        + model_alias("critic", critic.base_url, "MY_LLM_PASS").encode()
        + model_alias("synth", synthesizer.base_url, "ACCESS").encode()
    )
    ws = tmp_path / "ws"
    initialize(ws, files, ["coder"], "test workspace")

    result = improve_cycle(str(ws), "coder")

    assert result.status == "decided" and result.remediation == "bare-code", "the LLM synthesizer's RC was gated"
    assert critic.headers[0]["Authorization"] == f"Bearer {critic_key}", "the critic's key was sent"
    assert synthesizer.headers[0]["Authorization"] == f"Bearer {synthesizer_key}", "the synthesizer's key was sent"
    critic_calls = git(ws, "show", f"{result.rc}:releases/coder/rc-1/critic-calls.jsonl")
    assert critic_key not in critic_calls, "the critic's key is in the committed critic-calls.jsonl"
    assert MASK in critic_calls
    history = git_history(ws)
    for name, key in (("critic", critic_key), ("synthesizer", synthesizer_key)):
        assert key not in history, f"the {name}'s key is in git"
        assert key.encode() not in run_store_bytes(ws), f"the {name}'s key is in the run store"


# --------------------------------------------------------------------------- (b) score what was said


def test_an_answer_that_looks_like_a_secret_is_scored_as_said_and_stored_masked(
    workspace: Path, servers: list[StubServer], cli: Any
) -> None:
    server = echoing(lambda auth, body: SECRET_SHAPED_ANSWER)
    servers.append(server)
    add_suite(
        workspace,
        [
            exact("token", "Which test token is printed on the card?", SECRET_SHAPED_ANSWER),
            exact("capital", "Capital of France?", "Paris"),
        ],
    )
    settings = workspace / "ratchet.toml"
    settings.write_text(settings.read_text() + model_alias("echo", server.base_url))

    out = cli("eval", "coder/v1", "--split", "dev", "--model", "echo", "--workspace", str(workspace))

    assert out.exit_code == 0, out.output
    assert "1/2 passed" in out.output, f"the right answer was scored against the mask: {out.output}"
    stored = run_store_bytes(workspace)
    assert SECRET_SHAPED_ANSWER.encode() not in stored.lower(), "the secret-shaped answer is stored in clear"
    records = [
        json.loads(line)
        for p in (workspace / ".ratchet").rglob("*.jsonl")
        for line in p.read_text().splitlines()
        if '"outcome"' in line
    ]
    by_task = {r["task_id"]: r for r in records}
    assert by_task["token"]["outcome"]["passed"] and not by_task["capital"]["outcome"]["passed"]
    assert by_task["token"]["trace"]["final_output"] == MASK


# --------------------------------------------------------------------------- (c) credentials in --api-base


def prefect_leftovers(workspace: Path) -> tuple[list[dict[str, Any]], str]:
    """The improve-cycle flow runs of this workspace (their parameters) and everything Prefect keeps about
    them: parameters, logs and artifacts as JSON text, plus the bytes of its SQLite database."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        runs = [r for r in client.read_flow_runs() if r.parameters.get("workspace") == str(workspace)]
        ids = [r.id for r in runs]
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
    texts = [r.model_dump_json() for r in runs] + [log.model_dump_json() for log in logs]
    texts += [a.model_dump_json() for a in artifacts]
    database = Path(str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value()).split("///", 1)[1])
    raw = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    return [r.parameters for r in runs], "\n".join(texts) + raw.decode("latin-1")


@pytest.mark.usefixtures("prefect_server")
def test_credentials_in_the_api_base_are_no_flow_parameter_log_or_artifact(workspace: Path, cli: Any) -> None:
    user, password = "alice", "pw-Zq81Vx4Lk2Rn"
    with FaultyModelServer(FaultPlan(rate=0.0)) as server:
        api_base = server.base_url.replace("http://", f"http://{user}:{password}@")
        out = cli("cycle", "--model", "hosted_vllm/humaneval", "--api-base", api_base, "--workspace", str(workspace))
        authorizations = set(server.authorizations)

    assert out.exit_code == 0, out.output
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    assert authorizations == {expected}, "the credentials in the URL still reach the model server"
    parameters, prefect_text = prefect_leftovers(workspace)
    assert parameters, "the cycle ran as a Prefect flow run"
    assert all(password not in json.dumps(p) for p in parameters), f"the password is a flow parameter: {parameters}"
    assert [p["api_base"] for p in parameters] == [f"http://{MASK}@127.0.0.1:{server.port}/v1"]
    assert password not in prefect_text, "the password is in Prefect's logs, artifacts or database"
    assert password not in out.output
    assert password not in git_history(workspace) and password.encode() not in run_store_bytes(workspace)


def test_credentials_in_urls_are_masked_in_any_text() -> None:
    from ratchet.agents.redaction import redact

    text = (
        "calling http://bob:hunter2-pass@models.example/v1 and "
        "https://models.example/v1?api_key=q-81hs7dk2&model=x then wss://x.example/?token=abc123def&b=1"
    )
    masked = redact(text, [])
    assert "hunter2-pass" not in masked and "q-81hs7dk2" not in masked and "abc123def" not in masked
    assert f"http://{MASK}@models.example/v1" in masked and "model=x" in masked and "b=1" in masked


@pytest.mark.usefixtures("prefect_server")
def test_credentials_in_run_log_lines_are_masked_before_prefect_stores_them() -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging import get_run_logger
    from prefect.logging.handlers import APILogHandler

    from ratchet.pipeline.flows import mask_secrets_in_run_logs

    password = "pw-Lq93Nd7Ex5Tb"
    url = f"http://carol:{password}@10.0.0.1/v1"

    @flow(name="leaky-logs", persist_result=False)
    def leaky() -> None:
        mask_secrets_in_run_logs()
        logger = get_run_logger()
        logger.warning("calling %s", url)
        try:
            raise ConnectionError(f"cannot reach {url}")
        except ConnectionError:
            logger.exception("the model endpoint failed")

    state = leaky(return_state=True)
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    text = "\n".join(log.message for log in logs)
    assert "calling" in text and "cannot reach" in text, text
    assert password not in text, "a credential in a log line reached Prefect"
    assert f"http://{MASK}@10.0.0.1/v1" in text
