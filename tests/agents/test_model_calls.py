"""The model call layer against a real OpenAI-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from agents.artifact import ModelParams
from agents.errors import ModelBackendError, UserError
from agents.model_config import Deployment, ModelConfig, resolve_model
from agents.models import ModelClient
from agents.structured import complete_json, parse_and_validate
from agents.trace import Message
from tests.agents.openai_stub import StubServer, completion, error, text

MESSAGES = [Message(role="system", content="be terse"), Message(role="user", content="hi")]
FAST = dict(retries=3, backoff_s=0.01, backoff_max_s=0.05)


@pytest.fixture
def stub() -> Iterator[StubServer]:
    servers: list[StubServer] = []

    def make(behaviour):  # noqa: ANN001, ANN202
        server = StubServer(behaviour).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def client(server: StubServer, **config) -> ModelClient:  # noqa: ANN003
    return ModelClient(ModelConfig(model="hosted_vllm/tiny", api_base=server.base_url, **{**FAST, **config}),
                       ModelParams(max_tokens=16, timeout_s=5))


def call(c: ModelClient):  # noqa: ANN201
    return asyncio.run(c.complete(MESSAGES, [], 0))


def test_transient_errors_are_retried_then_succeed(stub) -> None:  # noqa: ANN001
    script = {0: error(500), 1: error(429, "slow down"), 2: error(503), 3: text(200, "{not json")}
    server = stub(lambda n, body: script.get(n, completion("done")))
    reply = call(client(server, retries=5))
    assert reply.message.content == "done"
    assert reply.call.retries == 4 and len(server.requests) == 5
    assert reply.call.usage.prompt_tokens == 11 and reply.call.usage.completion_tokens == 7


def test_client_errors_are_never_retried(stub) -> None:  # noqa: ANN001
    server = stub(lambda n, body: error(400, "bad request: prompt too long"))
    with pytest.raises(ModelBackendError, match="BadRequestError") as info:
        call(client(server))
    assert len(server.requests) == 1
    assert "\n" not in str(info.value)


def test_persistent_outage_fails_clearly_after_the_retries(stub) -> None:  # noqa: ANN001
    server = stub(lambda n, body: error(502))
    with pytest.raises(ModelBackendError, match="after 4 attempts"):
        call(client(server))
    assert len(server.requests) == 4


def test_request_timeout_is_a_transient_error(stub) -> None:  # noqa: ANN001
    server = stub(lambda n, body: None if n == 0 else completion("second try"))
    c = ModelClient(ModelConfig(model="hosted_vllm/tiny", api_base=server.base_url, timeout_s=0.5, **FAST),
                    ModelParams(max_tokens=16))
    reply = call(c)
    assert reply.message.content == "second try" and reply.call.retries == 1


def test_connection_refused_is_retried_then_reported(stub) -> None:  # noqa: ANN001
    server = stub(lambda n, body: completion("x"))
    server.stop()
    with pytest.raises(ModelBackendError, match="attempts"):
        call(client(server, retries=2))


def test_key_comes_from_the_named_variable_and_is_never_recorded(stub, monkeypatch) -> None:  # noqa: ANN001
    secret = "sk-test-abcdefghijklmnop"
    monkeypatch.setenv("STUB_KEY", secret)
    server = stub(lambda n, body: error(401, f"invalid key {secret}") if n == 0 else completion("ok"))
    with pytest.raises(ModelBackendError) as info:
        call(client(server, api_key_env="STUB_KEY"))
    assert server.headers[0]["Authorization"] == f"Bearer {secret}"
    assert secret not in str(info.value), "errors are redacted"
    monkeypatch.delenv("STUB_KEY")
    with pytest.raises(UserError, match=r"\$STUB_KEY, which is not set"):
        client(server, api_key_env="STUB_KEY")


def test_cost_is_accounted_at_configured_prices(stub) -> None:  # noqa: ANN001
    server = stub(lambda n, body: completion("x", prompt_tokens=100, completion_tokens=10))
    reply = call(client(server, input_cost_per_token=1e-6, output_cost_per_token=2e-6))
    assert reply.call.cost_usd == pytest.approx(100e-6 + 20e-6)
    assert call(client(server)).call.cost_usd is None


def test_router_spreads_over_deployments_and_survives_one_down(stub) -> None:  # noqa: ANN001
    good = stub(lambda n, body: completion("from good"))
    bad = stub(lambda n, body: error(503))
    config = ModelConfig(model="tiny-pool", deployments=[
        Deployment(model="hosted_vllm/tiny", api_base=good.base_url),
        Deployment(model="hosted_vllm/tiny", api_base=bad.base_url),
    ], retries=8, backoff_s=0.01, backoff_max_s=0.02)
    c = ModelClient(config, ModelParams(max_tokens=8, timeout_s=5))

    async def many() -> list:
        return await asyncio.gather(*(c.complete(MESSAGES, [], 0) for _ in range(12)))

    replies = asyncio.run(many())
    assert all(r.message.content == "from good" for r in replies)
    assert len(good.requests) == 12 and len(bad.requests) >= 1


def test_structured_outputs_use_response_format_on_vllm(stub) -> None:  # noqa: ANN001
    schema = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
    server = stub(lambda n, body: completion(json.dumps({"label": "ok"}) if n == 0 else '{"nope": 1}'))
    c = client(server)
    first = asyncio.run(complete_json(c, MESSAGES, schema))
    assert first.valid and first.value == {"label": "ok"} and first.constrained
    sent = server.requests[0]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == schema
    second = asyncio.run(complete_json(c, MESSAGES, schema))
    assert not second.valid and "label" in second.error


def test_structured_outputs_fall_back_to_the_prompt_when_unsupported(stub) -> None:  # noqa: ANN001
    server = stub(lambda n, body: completion('```json\n{"n": 3}\n```'))
    c = client(server, structured_outputs=False)
    answer = asyncio.run(complete_json(c, MESSAGES, {"type": "object", "required": ["n"]}))
    assert answer.valid and answer.value == {"n": 3} and not answer.constrained
    body = server.requests[0]
    assert "response_format" not in body and "JSON schema" in body["messages"][-1]["content"]


def test_parse_and_validate_reports_why() -> None:
    assert parse_and_validate("[1, 2]", {"type": "array"}) == ([1, 2], None)
    assert "not JSON" in parse_and_validate("nope", {})[1]
    assert "schema violation" in parse_and_validate('{"a": "x"}', {"properties": {"a": {"type": "integer"}}})[1]


def test_aliases_resolve_and_plain_strings_pass_through() -> None:
    aliases = {"tiny": ModelConfig(model="hosted_vllm/tiny", api_base="http://127.0.0.1:1/v1")}
    assert resolve_model("tiny", aliases).model == "hosted_vllm/tiny"
    assert resolve_model("tiny", aliases, "http://other/v1").api_base == "http://other/v1"
    assert resolve_model("openai/gpt-4o-mini", aliases) == ModelConfig(model="openai/gpt-4o-mini")
    with pytest.raises(ValueError, match="NAME of an environment variable"):
        ModelConfig(model="x", api_key_env="sk-live-123")
