"""The model call layer against a real OpenAI-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from ratchet.agents.artifact import ModelParams
from ratchet.agents.errors import ModelBackendError, UserError
from ratchet.agents.model_config import Deployment, ModelConfig, resolve_model
from ratchet.agents.models import ModelClient
from ratchet.agents.structured import complete_json, parse_and_validate
from ratchet.agents.trace import Message
from tests.agents.openai_stub import StubServer, completion, error, text

MESSAGES = [Message(role="system", content="be terse"), Message(role="user", content="hi")]
FAST = dict(retries=3, backoff_s=0.01, backoff_max_s=0.05)


@pytest.fixture
def stub() -> Iterator[StubServer]:
    servers: list[StubServer] = []

    def make(behaviour):
        server = StubServer(behaviour).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(params=["openai-http", "litellm"])
def transport(request) -> str:
    """Every behaviour below holds for both ways a request can travel."""
    return request.param


def client(server: StubServer, transport: str, **config) -> ModelClient:
    c = ModelClient(
        ModelConfig(model="hosted_vllm/tiny", api_base=server.base_url, transport=transport, **{**FAST, **config}),
        ModelParams(max_tokens=16, timeout_s=5),
    )
    assert c.transport == transport
    return c


def run(c: ModelClient, awaitable):
    """Await in a fresh event loop, then close the client's connections in it."""

    async def once():
        try:
            return await awaitable
        finally:
            await c.aclose()

    return asyncio.run(once())


def call(c: ModelClient, close: bool = True):
    async def once():
        try:
            return await c.complete(MESSAGES, [], 0)
        finally:
            if close:
                await c.aclose()

    return asyncio.run(once())


def test_transient_errors_are_retried_then_succeed(stub, transport) -> None:
    script = {0: error(500), 1: error(429, "slow down"), 2: error(503), 3: text(200, "{not json")}
    server = stub(lambda n, body: script.get(n, completion("done")))
    reply = call(client(server, transport, retries=5))
    assert reply.message.content == "done"
    assert reply.call.retries == 4 and len(server.requests) == 5
    assert reply.call.usage.prompt_tokens == 11 and reply.call.usage.completion_tokens == 7


def test_client_errors_are_never_retried(stub, transport) -> None:
    server = stub(lambda n, body: error(400, "bad request: prompt too long"))
    with pytest.raises(ModelBackendError, match="BadRequestError|HTTP 400") as info:
        call(client(server, transport))
    assert len(server.requests) == 1
    assert "\n" not in str(info.value)


def test_persistent_outage_fails_clearly_after_the_retries(stub, transport) -> None:
    server = stub(lambda n, body: error(502))
    with pytest.raises(ModelBackendError, match="after 4 attempts"):
        call(client(server, transport))
    assert len(server.requests) == 4


def test_request_timeout_is_a_transient_error(stub, transport) -> None:
    server = stub(lambda n, body: None if n == 0 else completion("second try"))
    c = client(server, transport, timeout_s=0.5)
    reply = call(c)
    assert reply.message.content == "second try" and reply.call.retries == 1


def test_connection_refused_is_retried_then_reported(stub, transport) -> None:
    server = stub(lambda n, body: completion("x"))
    server.stop()
    with pytest.raises(ModelBackendError, match="attempts"):
        call(client(server, transport, retries=2))


def test_key_comes_from_the_named_variable_and_is_never_recorded(stub, monkeypatch, transport) -> None:
    secret = "sk-test-abcdefghijklmnop"
    monkeypatch.setenv("STUB_KEY", secret)
    server = stub(lambda n, body: error(401, f"invalid key {secret}") if n == 0 else completion("ok"))
    with pytest.raises(ModelBackendError) as info:
        call(client(server, transport, api_key_env="STUB_KEY"))
    assert server.headers[0]["Authorization"] == f"Bearer {secret}"
    assert secret not in str(info.value), "errors are redacted"
    monkeypatch.delenv("STUB_KEY")
    with pytest.raises(UserError, match=r"\$STUB_KEY, which is not set"):
        client(server, transport, api_key_env="STUB_KEY")


def test_cost_is_accounted_at_configured_prices(stub, transport) -> None:
    server = stub(lambda n, body: completion("x", prompt_tokens=100, completion_tokens=10))
    reply = call(client(server, transport, input_cost_per_token=1e-6, output_cost_per_token=2e-6))
    assert reply.call.cost_usd == pytest.approx(100e-6 + 20e-6)
    assert call(client(server, transport)).call.cost_usd is None


def test_router_spreads_over_deployments_and_survives_one_down(stub) -> None:
    good = stub(lambda n, body: completion("from good"))
    bad = stub(lambda n, body: error(503))
    config = ModelConfig(
        model="tiny-pool",
        deployments=[
            Deployment(model="hosted_vllm/tiny", api_base=good.base_url),
            Deployment(model="hosted_vllm/tiny", api_base=bad.base_url),
        ],
        retries=8,
        backoff_s=0.01,
        backoff_max_s=0.02,
    )
    c = ModelClient(config, ModelParams(max_tokens=8, timeout_s=5))

    async def many() -> list:
        return await asyncio.gather(*(c.complete(MESSAGES, [], 0) for _ in range(12)))

    replies = asyncio.run(many())
    assert all(r.message.content == "from good" for r in replies)
    assert len(good.requests) == 12 and len(bad.requests) >= 1


def test_structured_outputs_use_response_format_on_vllm(stub, transport) -> None:
    schema = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
    server = stub(lambda n, body: completion(json.dumps({"label": "ok"}) if n == 0 else '{"nope": 1}'))
    c = client(server, transport)
    first = run(c, complete_json(c, MESSAGES, schema))
    assert first.valid and first.value == {"label": "ok"} and first.constrained
    sent = server.requests[0]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == schema
    second = run(c, complete_json(c, MESSAGES, schema))
    assert not second.valid and "label" in second.error


def test_structured_outputs_fall_back_to_the_prompt_when_unsupported(stub, transport) -> None:
    server = stub(lambda n, body: completion('```json\n{"n": 3}\n```'))
    c = client(server, transport, structured_outputs=False)
    answer = run(c, complete_json(c, MESSAGES, {"type": "object", "required": ["n"]}))
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


def test_auto_transport_is_http_for_a_vllm_endpoint_and_litellm_otherwise() -> None:
    base = "http://127.0.0.1:1/v1"
    assert ModelConfig(model="hosted_vllm/tiny", api_base=base).uses_http_transport()
    assert not ModelConfig(model="hosted_vllm/tiny").uses_http_transport(), "no api_base: litellm's env lookup"
    assert not ModelConfig(model="openai/gpt-4o-mini", api_base=base).uses_http_transport()
    assert not ModelConfig(model="hosted_vllm/tiny", api_base=base, transport="litellm").uses_http_transport()
    assert ModelConfig(model="openai/tiny", api_base=base, transport="openai-http").served_name() == "tiny"
    with pytest.raises(ValueError, match="needs one endpoint"):
        ModelConfig(model="hosted_vllm/tiny", transport="openai-http")


def test_tool_calls_and_the_served_name_travel_over_http(stub, transport) -> None:
    def behaviour(n, body):
        if n == 0:
            answer = completion(None)
            answer["choices"][0]["message"]["tool_calls"] = [
                {"id": "call_1", "type": "function", "function": {"name": "python", "arguments": '{"code": "1"}'}}
            ]
            answer["choices"][0]["finish_reason"] = "tool_calls"
            return answer
        return completion("final")

    server = stub(behaviour)
    tools = [{"type": "function", "function": {"name": "python", "parameters": {"type": "object"}}}]
    c = client(server, transport)
    first = run(c, c.complete(MESSAGES, tools, 0))
    assert first.message.tool_calls[0].name == "python" and first.message.tool_calls[0].arguments == '{"code": "1"}'
    assert first.call.finish_reason == "tool_calls"
    assert server.requests[0]["model"] == "tiny" and server.requests[0]["tools"][0]["function"]["name"] == "python"
    assert server.requests[0]["max_tokens"] == 16


def test_a_200_without_choices_is_retried_as_malformed(stub, transport) -> None:
    server = stub(lambda n, body: {"object": "error page"} if n == 0 else completion("fine"))
    reply = call(client(server, transport))
    assert reply.message.content == "fine" and reply.call.retries == 1


def test_one_client_serves_several_event_loops_and_closes_cleanly(stub) -> None:
    server = stub(lambda n, body: completion(f"answer {n}"))
    c = client(server, "openai-http")

    async def twice() -> list[str]:
        replies = [(await c.complete(MESSAGES, [], 0)).message.content for _ in range(2)]
        await c.aclose()
        return replies

    assert asyncio.run(twice()) == ["answer 0", "answer 1"]
    assert call(c, close=False).message.content == "answer 2", "a new loop gets a new session"
    assert call(c).message.content == "answer 3", "and the one left open by the previous loop is dropped"
