"""Ratchet's runner, structured outputs and retries against a real vLLM server (CPU, tiny random model)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from ratchet.agents.artifact import ModelParams, load_artifact
from ratchet.agents.errors import ModelBackendError
from ratchet.agents.model_config import ModelConfig
from ratchet.agents.models import ModelClient
from ratchet.agents.structured import complete_json
from ratchet.agents.trace import Message
from ratchet.gates.evaluation import evaluate
from ratchet.gates.run_store import RunStore
from ratchet.gates.suite import Suite
from ratchet.gates.task import ExactMatchVerifier, Task
from ratchet.pipeline.serving import VllmServer

pytestmark = pytest.mark.vllm

QUESTIONS = [
    "2+2?",
    "Capital of France?",
    "Color of the sky?",
    "Opposite of hot?",
    "3*3?",
    "First letter?",
    "Largest planet?",
    "Water formula?",
    "Ten minus one?",
    "Sun rises in the?",
    "Cats say?",
    "Ice is?",
]


def short_suite() -> Suite:
    tasks = {
        f"q{i}": Task(id=f"q{i}", input=q, verifier=ExactMatchVerifier(expected=["x"])) for i, q in enumerate(QUESTIONS)
    }
    return Suite(name="tiny-qa", tasks=tasks, splits={"dev": list(tasks), "gate": [], "holdout": []})


def tiny_agent(root: Path) -> Path:
    (root / "prompts").mkdir(parents=True)
    (root / "prompts/system.md.j2").write_text("Answer in one word.")
    (root / "prompts/user.md.j2").write_text("{{ task_input }}")
    (root / "agent.yaml").write_text(
        "name: qa\nmodel: tiny\nmodel_params:\n  max_tokens: 8\n  temperature: 0\nmax_turns: 1\n"
        "prompts:\n  system: prompts/system.md.j2\n  user: prompts/user.md.j2\n"
    )
    return root


def client_for(base_url: str, **config) -> ModelClient:
    return ModelClient(
        ModelConfig(model="hosted_vllm/tiny", api_base=base_url, **config), ModelParams(max_tokens=8, timeout_s=30)
    )


def run(c: ModelClient, awaitable):
    """Await in a fresh event loop, then close the client's connections in it."""

    async def once():
        try:
            return await awaitable
        finally:
            await c.aclose()

    return asyncio.run(once())


TRANSPORTS = pytest.mark.parametrize("transport", ["openai-http", "litellm"])


@TRANSPORTS
def test_agent_runs_through_vllm_with_complete_traces(vllm_server: VllmServer, tmp_path: Path, transport: str) -> None:
    artifact = load_artifact(tiny_agent(tmp_path / "qa"))
    suite = short_suite()
    c = client_for(vllm_server.base_url, transport=transport)
    evaluation = run(
        c, evaluate(artifact, c, suite, suite.split("dev"), RunStore(tmp_path / "store"), split="dev", concurrency=4)
    )
    assert evaluation.summary.runs == len(QUESTIONS) and not evaluation.summary.simulated
    for record in evaluation.records:
        trace = record.trace
        assert trace.model == "hosted_vllm/tiny" and trace.error is None
        assert [m.role for m in trace.messages] == ["system", "user", "assistant"]
        (call,) = trace.model_calls
        assert call.usage.prompt_tokens > 0 and 0 < call.usage.completion_tokens <= 8
        assert call.finish_reason in ("stop", "length") and call.duration_s > 0
        assert trace.usage.total_tokens == call.usage.total_tokens
        assert record.outcome.error_type in (None, "WrongAnswer", "NoOutput")


@TRANSPORTS
def test_json_schema_call_returns_schema_valid_output(vllm_server: VllmServer, transport: str) -> None:
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["fix", "keep"]}, "ok": {"type": "boolean"}},
        "required": ["label", "ok"],
        "additionalProperties": False,
    }
    c = ModelClient(
        ModelConfig(model="hosted_vllm/tiny", api_base=vllm_server.base_url, transport=transport),
        ModelParams(max_tokens=64, timeout_s=60),
    )
    messages = [Message(role="user", content="Label this.")]
    answers = [run(c, complete_json(c, messages, schema, name="label")) for _ in range(3)]
    for answer in answers:
        assert answer.constrained
        assert answer.valid, (answer.error, answer.text)
        assert answer.value["label"] in ("fix", "keep") and isinstance(answer.value["ok"], bool)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_killed_mid_run_fails_clearly_and_the_run_resumes(tiny_serve_options, tmp_path: Path) -> None:
    options = tiny_serve_options.model_copy(update={"port": free_port(), "log_file": tmp_path / "server.log"})
    artifact = load_artifact(tiny_agent(tmp_path / "qa"))
    suite = short_suite()
    store = RunStore(tmp_path / "store")
    servers = [VllmServer(options).start()]
    server = servers[0]
    try:
        c = client_for(server.base_url, retries=2, backoff_s=0.2, backoff_max_s=0.5)
        assert c.transport == "openai-http", "a vLLM endpoint takes the lean path by default"

        def progress(done: int, total: int) -> None:
            if done == 4:
                server.stop()  # the backend dies with work in flight

        with pytest.raises(ModelBackendError, match="after 3 attempts"):
            run(
                c,
                evaluate(
                    artifact, c, suite, suite.split("dev"), store, split="dev", concurrency=1, on_progress=progress
                ),
            )
        finished = asyncio.run(_stored(store, artifact, suite, c))
        assert 4 <= finished < len(QUESTIONS)

        servers.append(VllmServer(options).start())  # the backend is back, at the same address
        resumed = run(c, evaluate(artifact, c, suite, suite.split("dev"), store, split="dev", concurrency=2))
        assert resumed.summary.reused == finished
        assert resumed.summary.runs == len(QUESTIONS)
        assert len({(r.task_id, r.trial) for r in resumed.records}) == len(QUESTIONS)
    finally:
        for running in servers:
            running.stop()


async def _stored(store: RunStore, artifact, suite: Suite, c: ModelClient) -> int:
    from ratchet.gates.evaluation import run_key

    return len(store.load(run_key(artifact, suite, c)))


def test_a_guarded_call_rejects_the_tiny_models_noise_and_returns_the_fallback(vllm_server: VllmServer) -> None:
    """Schema-constrained samples from the random model parse, but cannot know the secret: the proven
    template fallback comes back, and the record says which clause each sample broke."""
    from ratchet.agents.contracts.guarded import guarded_call
    from ratchet.agents.contracts.model import Contract, check
    from ratchet.agents.contracts.prove import prove_fallback

    contract = Contract.model_validate(
        {
            "name": "secret",
            "input_schema": {
                "type": "object",
                "properties": {"secret": {"type": "string", "maxLength": 20}},
                "required": ["secret"],
            },
            "output_schema": {
                "type": "object",
                "properties": {"answer": {"type": "string", "maxLength": 20}},
                "required": ["answer"],
                "additionalProperties": False,
            },
            "clauses": {"knows_secret": "output.answer == input.secret"},
            "samples": 2,
            "fallback": {"template": {"answer": "{{ input.secret }}"}},
        }
    )
    assert prove_fallback(contract).status == "proven"  # (refuted without the maxLength on the input: z3 finds it)
    c = ModelClient(
        ModelConfig(model="hosted_vllm/tiny", api_base=vllm_server.base_url), ModelParams(max_tokens=48, timeout_s=60)
    )
    given = {"secret": "ratchet-7f3a"}
    result = run(c, guarded_call(c, [Message(role="user", content="Say the secret.")], contract, given))
    assert result.value == {"answer": "ratchet-7f3a"} and check(contract, given, result.value) == []
    record = result.record
    assert record.source == "fallback" and len(record.samples) == 2
    assert all(s.failures and s.backend_error is None for s in record.samples)
    assert all(s.usage.completion_tokens > 0 for s in record.samples), "real samples were drawn"
    assert {f.clause for s in record.samples for f in s.failures} <= {"knows_secret", "schema"}
