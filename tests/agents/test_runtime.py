"""The agent runtime's tool loop, driven by the scripted provider through the real litellm path."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ratchet.agents.artifact import Artifact, ModelParams, load_artifact
from ratchet.agents.errors import ModelBackendError, UserError
from ratchet.agents.models import ModelClient
from ratchet.agents.providers.scripted import ScriptedProvider, ScriptedReply, register_scripted, unregister_scripted
from ratchet.agents.runtime import run_agent
from ratchet.agents.tools import Tool
from ratchet.agents.trace import Trace
from ratchet.pipeline.workspace import DEMO

SECRET = "sk-test-abcdef123456"
_names = itertools.count()


class LookupTool:
    """A tiny fake tool: looks a key up in a dict and remembers every call."""

    name = "lookup"
    description = "Look up the value stored under a key."
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": {"key": {"type": "string"}},
        "required": ["key"],
    }

    def __init__(self, table: dict[str, str] | None = None) -> None:
        self.table = table or {"colour": "blue", "size": "large"}
        self.calls: list[dict[str, Any]] = []

    async def call(self, arguments: dict[str, Any]) -> str:
        self.calls.append(arguments)
        key = arguments.get("key")
        return f"{key} = {self.table[key]}" if key in self.table else f"error: KeyError: no key {key!r}"


def _artifact(tmp_path: Path, **fields: object) -> Artifact:
    root = tmp_path / "agents" / "coder"
    if not root.exists():
        shutil.copytree(DEMO / "agents" / "coder", root, ignore=shutil.ignore_patterns("__pycache__"))
    spec = yaml.safe_load((root / "agent.yaml").read_text())
    spec.update(fields)
    (root / "agent.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_artifact(root)


@pytest.fixture
def scripted() -> Iterator[Callable[[Any], tuple[ModelClient, ScriptedProvider]]]:
    """Register a script under a fresh name; returns the model client and the provider."""
    names: list[str] = []

    def make(script: Any) -> tuple[ModelClient, ScriptedProvider]:
        provider = ScriptedProvider(script)
        name = f"runtime{next(_names)}"
        names.append(name)
        return ModelClient(register_scripted(name, provider), ModelParams()), provider

    yield make
    for name in names:
        unregister_scripted(name)


def _run(
    artifact: Artifact,
    client: ModelClient,
    tools: dict[str, Tool] | None = None,
    task_input: str = "What colour is it?",
) -> Trace:
    return asyncio.run(run_agent(artifact, "demo/1", task_input, client, tools=tools, trial=2))


def _call(name: str, arguments: dict[str, Any] | str) -> ScriptedReply:
    return ScriptedReply(tool_calls=[(name, arguments)])


# --------------------------------------------------------------------------- the tool loop


def test_multi_turn_run_with_a_tool(tmp_path: Path, scripted: Any) -> None:
    artifact = _artifact(tmp_path, tools=["lookup"])
    client, provider = scripted(
        [
            ScriptedReply(content="Let me check.", tool_calls=[("lookup", {"key": "colour"})]),
            _call("lookup", {"key": "size"}),
            ScriptedReply(content="It is blue and large."),
        ]
    )
    tool = LookupTool()
    trace = _run(artifact, client, {"lookup": tool, "unused": LookupTool()})

    assert [m.role for m in trace.messages] == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert trace.final_output == "It is blue and large." and trace.error is None
    assert (trace.task_id, trace.trial, trace.agent, trace.model) == ("demo/1", 2, "coder", client.model)
    assert trace.artifact_hash == artifact.content_hash and trace.simulated is False

    first = trace.messages[2]
    assert first.content == "Let me check."
    (request,) = first.tool_calls
    assert request.name == "lookup" and json.loads(request.arguments) == {"key": "colour"}
    result = trace.messages[3]
    assert (result.tool_call_id, result.name, result.content) == (request.id, "lookup", "colour = blue")
    assert trace.messages[5].tool_call_id == trace.messages[4].tool_calls[0].id != request.id

    assert tool.calls == [{"key": "colour"}, {"key": "size"}]
    assert [(c.turn, c.name, c.arguments, c.result, c.error) for c in trace.tool_calls] == [
        (0, "lookup", {"key": "colour"}, "colour = blue", None),
        (1, "lookup", {"key": "size"}, "size = large", None),
    ]
    assert [c.id for c in trace.tool_calls] == [trace.messages[2].tool_calls[0].id, trace.messages[4].tool_calls[0].id]

    assert [(c.turn, c.finish_reason) for c in trace.model_calls] == [(0, "tool_calls"), (1, "tool_calls"), (2, "stop")]
    assert all(
        c.model == client.model and c.usage.prompt_tokens > 0 and c.usage.completion_tokens > 0
        for c in trace.model_calls
    )
    assert trace.usage.prompt_tokens == sum(c.usage.prompt_tokens for c in trace.model_calls)
    assert trace.usage.completion_tokens == sum(c.usage.completion_tokens for c in trace.model_calls)
    assert trace.model_calls[2].usage.prompt_tokens > trace.model_calls[0].usage.prompt_tokens  # history grows

    # what litellm handed the model: only the enabled tool, and the whole history each turn
    assert [t["function"]["name"] for t in provider.requests[0]["tools"]] == ["lookup"]
    last = provider.requests[2]["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "tool", "assistant", "tool"]
    assert last[3]["content"] == "colour = blue" and last[3]["tool_call_id"] == request.id
    assert "What colour is it?" in last[1]["content"]
    assert Trace.model_validate_json(trace.model_dump_json()) == trace


def test_answer_without_tools_is_one_turn(tmp_path: Path, scripted: Any) -> None:
    client, provider = scripted([ScriptedReply(content="def f():\n    return 1\n")])
    trace = _run(_artifact(tmp_path), client)
    assert [m.role for m in trace.messages] == ["system", "user", "assistant"]
    assert trace.final_output == "def f():\n    return 1\n" and trace.tool_calls == []
    assert provider.requests[0]["tools"] is None  # the demo agent offers no tools


def test_run_with_the_real_python_tool_on_humaneval(tmp_path: Path, scripted: Any) -> None:
    from ratchet.gates.python_tool import PythonExamplesTool
    from ratchet.gates.suite import builtin_humaneval_tasks
    from ratchet.gates.verifier import verify

    task = next(t for t in builtin_humaneval_tasks() if t.id == "HumanEval/0")
    body = (
        "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
        "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
    )
    draft, fixed = body, "from typing import List\n\n\n" + body

    def script(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> ScriptedReply:
        assert tools and tools[0]["function"]["name"] == "python"
        results = [m["content"] for m in messages if m["role"] == "tool"]
        if not results:
            return _call("python", {"code": draft})
        if results[-1].startswith("error:"):
            return _call("python", {"code": fixed})
        return ScriptedReply(content=fixed)

    client, _ = scripted(script)
    trace = asyncio.run(
        run_agent(
            _artifact(tmp_path, tools=["python"]),
            task.id,
            task.input,
            client,
            tools={"python": PythonExamplesTool(task)},
        )
    )
    assert [c.arguments["code"] for c in trace.tool_calls] == [draft, fixed]
    first, second = (c.result for c in trace.tool_calls)
    assert first.startswith("error: NameError") and "List" in first
    assert second.startswith("ok: ran 2 docstring example(s), all passed")
    assert [m.content for m in trace.messages if m.role == "tool"] == [first, second]
    assert trace.final_output == fixed and trace.error is None
    assert asyncio.run(verify(task, trace.final_output)).passed


# --------------------------------------------------------------------------- abnormal endings


def test_max_turns_exhausted_is_recorded(tmp_path: Path, scripted: Any) -> None:
    client, _ = scripted(lambda messages, tools: _call("lookup", {"key": "colour"}))
    trace = _run(_artifact(tmp_path, tools=["lookup"], max_turns=3), client, {"lookup": LookupTool()})
    assert trace.error is not None and "max_turns=3" in trace.error
    assert trace.final_output == ""
    assert len(trace.model_calls) == 3 and len(trace.tool_calls) == 3
    assert trace.messages[-1].role == "tool"


def test_tool_not_offered_is_a_user_error_naming_tools(tmp_path: Path, scripted: Any) -> None:
    client, provider = scripted([ScriptedReply(content="never asked")])
    artifact = _artifact(tmp_path, tools=["python"])
    with pytest.raises(UserError) as info:
        _run(artifact, client, {"lookup": LookupTool()})
    message = str(info.value)
    assert message.startswith(f"{artifact.root / 'agent.yaml'}: field 'tools'")
    assert "'python'" in message and "lookup" in message and "\n" not in message
    assert provider.requests == []  # refused before any model call


def test_invalid_json_arguments_become_a_tool_error(tmp_path: Path, scripted: Any) -> None:
    client, _ = scripted([_call("lookup", '{"key": "colour"'), ScriptedReply(content="gave up")])
    tool = LookupTool()
    trace = _run(_artifact(tmp_path, tools=["lookup"]), client, {"lookup": tool})
    (call,) = trace.tool_calls
    assert call.result.startswith("error: ToolArgumentError")
    assert call.error is not None and call.arguments == {}
    assert tool.calls == []  # the tool never ran
    assert trace.messages[3].content == call.result
    assert trace.final_output == "gave up"


def test_call_to_a_tool_that_is_not_enabled(tmp_path: Path, scripted: Any) -> None:
    client, _ = scripted([_call("shell", {"cmd": "ls"}), ScriptedReply(content="ok")])
    trace = _run(_artifact(tmp_path, tools=["lookup"]), client, {"lookup": LookupTool(), "shell": LookupTool()})
    (call,) = trace.tool_calls
    assert call.result.startswith("error: UnknownTool") and "'shell'" in call.result
    assert trace.final_output == "ok"


def test_model_failure_is_a_model_backend_error(tmp_path: Path, scripted: Any) -> None:
    client, _ = scripted([_call("lookup", {"key": "colour"})])  # no reply left for turn 1
    with pytest.raises(ModelBackendError, match=rf"{client.model}.*turn 1"):
        _run(_artifact(tmp_path, tools=["lookup"]), client, {"lookup": LookupTool()})


# --------------------------------------------------------------------------- secrets


def _leaky_script(secret: str) -> list[ScriptedReply]:
    return [
        ScriptedReply(content=f"my key is {secret}", tool_calls=[("lookup", {"key": secret})]),
        ScriptedReply(content=f"done; the key was {secret}"),
    ]


def test_secret_from_the_environment_never_reaches_the_trace(
    tmp_path: Path, scripted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    client, _ = scripted(_leaky_script(SECRET))
    trace = _run(_artifact(tmp_path, tools=["lookup"]), client, {"lookup": LookupTool({SECRET: SECRET})})
    text = trace.model_dump_json()
    assert SECRET not in text
    assert "[REDACTED]" in trace.final_output and "[REDACTED]" in trace.tool_calls[0].result
    assert trace.tool_calls[0].arguments == {"key": "[REDACTED]"}
    assert SECRET not in trace.messages[2].tool_calls[0].arguments


def test_secret_without_a_known_shape_is_masked_too(
    tmp_path: Path, scripted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "plain-service-token-0042"
    monkeypatch.setenv("MY_SERVICE_TOKEN", secret)
    client, _ = scripted(_leaky_script(secret))
    trace = _run(_artifact(tmp_path, tools=["lookup"]), client, {"lookup": LookupTool()})
    assert secret not in trace.model_dump_json()


def test_secret_with_json_special_characters_is_masked(
    tmp_path: Path, scripted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = 'pa"ss\\word-0042'
    monkeypatch.setenv("DB_PASSWORD", secret)
    client, _ = scripted(_leaky_script(secret))
    trace = _run(_artifact(tmp_path, tools=["lookup"]), client, {"lookup": LookupTool()})
    assert secret not in trace.final_output
    assert secret not in trace.messages[2].content


# --------------------------------------------------------------------------- the scripted provider itself


def test_scripted_provider_sync_call_and_clear_errors() -> None:
    import litellm

    model = register_scripted("plain", ScriptedProvider([ScriptedReply(content="first")]))
    try:
        response = litellm.completion(model=model, messages=[{"role": "user", "content": "hello"}])
        assert isinstance(response, litellm.ModelResponse) and response.model == model
        assert response.choices[0].message.content == "first" and response.choices[0].finish_reason == "stop"
        assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens >= 2
        with pytest.raises(litellm.BadRequestError, match="has 1 replies; call 2 has none"):
            litellm.completion(model=model, messages=[{"role": "user", "content": "again"}])
        with pytest.raises(litellm.BadRequestError, match="does not stream"):
            litellm.completion(model=model, messages=[{"role": "user", "content": "x"}], stream=True)
        register_scripted("plain", ScriptedProvider([ScriptedReply(content="replaced")]))
        again = litellm.completion(model=model, messages=[{"role": "user", "content": "x"}])
        assert again.choices[0].message.content == "replaced"
    finally:
        unregister_scripted("plain")
    with pytest.raises(litellm.BadRequestError, match="no scripted model named 'plain'"):
        litellm.completion(model=model, messages=[{"role": "user", "content": "x"}])
    assert [item["provider"] for item in litellm.custom_provider_map].count("scripted") == 1


def test_scripted_module_is_not_imported_by_the_providers_package() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    code = "import sys, ratchet.agents.providers; assert 'ratchet.agents.providers.scripted' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env={"PYTHONPATH": str(root)}, timeout=60)


def test_the_fast_secret_check_never_misses_what_the_walk_would_mask() -> None:
    import json as _json

    from ratchet.agents.redaction import SECRET_SHAPES, might_hold_secrets

    samples = ["plain text", "line\nsk-abcdefgh12345678", 'quote " then ghp_' + "a" * 24, "tab\thf_" + "b" * 20]
    for text in samples:
        as_json = _json.dumps({"content": text}, ensure_ascii=False)
        if SECRET_SHAPES.search(text):
            assert might_hold_secrets(as_json, []), text
    assert not might_hold_secrets(_json.dumps({"content": "nothing here"}), ["s3cr3t-value"])
    assert might_hold_secrets(_json.dumps({"content": "x s3cr3t-value"}), ["s3cr3t-value"])
    assert might_hold_secrets("{}", ['has"quote']), "secrets JSON would escape are always walked"


ANSWER_CONTRACT = """\
name: answer
input_schema: {type: object, properties: {task: {type: string}}, required: [task]}
output_schema:
  type: object
  properties: {label: {type: string, enum: ["yes", "no", "unsure"]}, why: {type: string}}
  required: [label, why]
  additionalProperties: false
clauses:
  explained: len(output.why) >= 3
samples: 3
fallback:
  constant: {label: unsure, why: "no valid answer"}
"""


def _contract_artifact(tmp_path: Path) -> Artifact:
    root = tmp_path / "agents" / "coder"
    _artifact(tmp_path)
    (root / "contracts").mkdir()
    (root / "contracts/answer.yaml").write_text(ANSWER_CONTRACT)
    return _artifact(tmp_path, answer_contract="answer")


def test_an_answer_that_breaks_its_contract_is_resampled_with_the_reason(tmp_path: Path, scripted) -> None:
    artifact = _contract_artifact(tmp_path)
    client, provider = scripted(
        [ScriptedReply(content="Yes, probably."), ScriptedReply(content='{"label": "yes", "why": "it is blue"}')]
    )
    trace = _run(artifact, client)
    assert json.loads(trace.final_output) == {"label": "yes", "why": "it is blue"}
    guard = trace.answer_guard
    assert guard is not None and guard.source == "sample" and len(guard.samples) == 2
    assert guard.samples[0].failures[0].clause == "schema" and guard.samples[1].accepted
    feedback = provider.requests[1]["messages"]
    assert any("does not have the required form: schema" in (m.get("content") or "") for m in feedback)
    assert trace.usage.total_tokens >= sum(c.usage.total_tokens for c in trace.model_calls)


def test_when_every_answer_breaks_the_contract_the_fallback_answers_and_the_critic_sees_it(
    tmp_path: Path, scripted
) -> None:
    from ratchet.critics.detectors import detect
    from ratchet.critics.view import blind_view
    from ratchet.gates.outcome import Outcome
    from ratchet.gates.task import ExactMatchVerifier, Task

    artifact = _contract_artifact(tmp_path)
    client, provider = scripted(
        [
            ScriptedReply(content='{"label": "maybe", "why": "?"}'),
            ScriptedReply(content='{"label": "yes", "why": ""}'),
            ScriptedReply(content="no JSON at all"),
        ]
    )
    trace = _run(artifact, client)
    assert json.loads(trace.final_output) == {"label": "unsure", "why": "no valid answer"}
    assert trace.answer_guard.source == "fallback" and len(provider.requests) == 3
    assert [s.failures[0].clause for s in trace.answer_guard.samples] == ["schema", "explained", "schema"]

    task = Task(id="demo/1", input="What colour is it?", verifier=ExactMatchVerifier(expected=["blue"]))
    outcome = Outcome(task_id="demo/1", passed=False, score=0.0, error_type="WrongAnswer", message="WrongAnswer")
    view = blind_view(trace, task, outcome)
    report = detect(view)
    assert report.symptoms[0].label == "contract_violation"
    assert all(q in view.final_output or any(q in s.text for s in view.steps) for q in report.symptoms[0].evidence)
    assert "answer 2 refused: explained" in view.steps[-1].text


def test_an_answer_contract_that_does_not_exist_stops_the_load(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="field 'answer_contract': no contract 'answer'"):
        _artifact(tmp_path, answer_contract="answer")
