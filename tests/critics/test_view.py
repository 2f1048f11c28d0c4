"""The blind view: the critic sees the task, the agent's observable behaviour and the outcome, nothing else."""

from __future__ import annotations

import inspect
import json

from ratchet.agents.trace import Message, ToolCallRequest, Trace
from ratchet.critics.view import BlindView, blind_view
from ratchet.gates.outcome import Outcome
from ratchet.gates.task import PythonTestsVerifier, Task

SYSTEM_SECRET = "SYSTEM-PROMPT-SENTINEL: you are a careful programmer, keep it brief"
USER_SECRET = "USER-TEMPLATE-SENTINEL: complete the following function"
TASK_INPUT = 'def add(a, b):\n    """Return the sum of a and b.\n    >>> add(1, 2)\n    3\n    """\n'
DRAFT = "def add(a, b):\n    return a - b\n"
FINAL = "def add(a, b):\n    return a + b\n"


def _task() -> Task:
    return Task(
        id="toy/1",
        input=TASK_INPUT,
        rubric="add(a, b) returns a + b for all ints",
        verifier=PythonTestsVerifier(test="def check(f):\n    assert f(2, 3) == 5\n", entry_point="add"),
    )


def _trace(final: str = FINAL, error: str | None = None) -> Trace:
    messages = [
        Message(role="system", content=SYSTEM_SECRET),
        Message(role="user", content=f"{USER_SECRET}\n\n{TASK_INPUT}"),
        Message(
            role="assistant",
            content="I will test a draft first.",
            tool_calls=[
                ToolCallRequest(id="call_1", name="python", arguments=json.dumps({"code": DRAFT})),
                ToolCallRequest(id="call_2", name="search", arguments='{"query": "sum of two numbers", "k": 2}'),
            ],
        ),
        Message(
            role="tool",
            content="fail: example 1 of 1: add(1, 2) expected 3, got -1",
            tool_call_id="call_1",
            name="python",
        ),
        Message(role="tool", content="no results", tool_call_id="call_2", name="search"),
        Message(role="assistant", content=final),
    ]
    return Trace(
        task_id="toy/1",
        trial=1,
        agent="coder",
        artifact_hash="a" * 64,
        model="scripted/x",
        simulated=False,
        messages=messages,
        final_output=final,
        error=error,
        started_at="2025-01-01T00:00:00.000+00:00",
        duration_s=0.5,
    )


def _outcome(passed: bool = False) -> Outcome:
    if passed:
        return Outcome(task_id="toy/1", trial=1, passed=True, score=1.0)
    return Outcome(
        task_id="toy/1",
        trial=1,
        passed=False,
        score=0.0,
        error_type="AssertionError",
        message="AssertionError: a hidden test failed",
    )


def test_blind_view_takes_no_artifact() -> None:
    assert list(inspect.signature(blind_view).parameters) == ["trace", "task", "outcome"]


def test_view_shows_task_behaviour_and_outcome() -> None:
    view = blind_view(_trace(), _task(), _outcome())
    text = view.text()
    assert (view.task_id, view.trial, view.task_input, view.rubric) == ("toy/1", 1, TASK_INPUT, _task().rubric)
    assert [(s.kind, s.tool) for s in view.steps] == [
        ("answer", None),
        ("tool_call", "python"),
        ("tool_call", "search"),
        ("tool_result", "python"),
        ("tool_result", "search"),
        ("answer", None),
    ]
    assert view.steps[0].text == "I will test a draft first."
    assert view.steps[1].text == DRAFT  # a lone `code` argument is shown as code
    assert json.loads(view.steps[2].text) == {"query": "sum of two numbers", "k": 2}
    assert view.steps[3].text.startswith("fail: example 1 of 1") and view.steps[4].text == "no results"
    assert view.final_output == FINAL and view.steps[-1].text == FINAL
    assert view.passed is False and view.error_type == "AssertionError"
    assert view.verifier_message == "AssertionError: a hidden test failed"
    for shown in ("return a - b", "got -1", "sum of two numbers", "a hidden test failed", "returns a + b"):
        assert shown in text


def test_view_never_shows_system_or_user_messages() -> None:
    view = blind_view(_trace(), _task(), _outcome())
    text = view.text()
    for secret in (SYSTEM_SECRET, USER_SECRET, "SENTINEL", "careful programmer"):
        assert secret not in text
    assert all("SENTINEL" not in step.text for step in view.steps)
    assert "artifact_hash" not in text and "a" * 64 not in text
    assert "scripted/x" not in text  # nor which model ran


def test_view_of_a_passed_run_and_of_a_run_error() -> None:
    passed = blind_view(_trace(), _task(), _outcome(passed=True))
    assert passed.passed and passed.error_type is None and passed.run_error is None
    broken = blind_view(_trace(final="", error="no final answer after max_turns=2 turns"), _task(), _outcome())
    assert broken.run_error == "no final answer after max_turns=2 turns" and broken.final_output == ""
    assert [s.kind for s in broken.steps][-1] == "tool_result"  # the empty answer is no step


def test_arguments_that_are_not_json_are_shown_raw() -> None:
    trace = _trace()
    messages = list(trace.messages)
    messages[2] = Message(
        role="assistant", content=None, tool_calls=[ToolCallRequest(id="c", name="python", arguments='{"code": "x = (')]
    )
    view = blind_view(trace.model_copy(update={"messages": messages}), _task(), _outcome())
    assert view.steps[0].kind == "tool_call" and view.steps[0].text == '{"code": "x = ('


def test_view_round_trips_through_json() -> None:
    view = blind_view(_trace(), _task(), _outcome())
    assert BlindView.model_validate_json(view.text()) == view
