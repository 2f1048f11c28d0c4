"""Deterministic detectors over blind views of real verifier outcomes."""

from __future__ import annotations

import asyncio

import pytest

from ratchet.agents.trace import Message, ToolCallRequest, Trace
from ratchet.critics.detectors import detect, detector
from ratchet.critics.symptoms import TAXONOMY, SymptomReport
from ratchet.critics.view import BlindView, blind_view
from ratchet.gates.outcome import Outcome
from ratchet.gates.task import PythonTestsVerifier, Task
from ratchet.gates.verifier import verify

TASK = Task(
    id="toy/inc",
    input='def inc(x):\n    """Return x + 1.\n    >>> inc(1)\n    2\n    """\n',
    rubric="inc(x) == x + 1",
    verifier=PythonTestsVerifier(
        test="def check(f):\n    assert f(1) == 2\n    assert f(-1) == 0\n", entry_point="inc", timeout_s=0.5
    ),
)
GOOD = "def inc(x):\n    return x + 1\n"

CASES = {
    "prose_at_error_line": ("Here is the function you asked for:\n\n" + GOOD, "non_code_output"),
    "prose_after_code": (GOOD + "This should work for every integer input\n", "non_code_output"),
    "fences": ("```python\n" + GOOD + "```\n", "non_code_output"),
    "name_error": ("def inc(x):\n    return x + one\n", "undefined_name"),
    "wrong_answer": ("def inc(x):\n    return x + 2\n", "wrong_answer"),
    "timeout": ("def inc(x):\n    while True:\n        pass\n", "timeout"),
    "unclosed_bracket": ("def inc(x):\n    return (x +", "incomplete_code"),
    "unfinished_block": ("def inc(x):\n    if x:\n", "incomplete_code"),
    "empty": ("", "no_answer"),
    "other_syntax_error": ("def inc(x):\n    return x +* 1\n    pass\n", "syntax_error"),
    "runtime_error": ("def inc(x):\n    return x / 0\n", "runtime_error"),
}


def _trace(answer: str, tool_call: bool = False, error: str | None = None) -> Trace:
    messages = [Message(role="system", content="be brief"), Message(role="user", content=TASK.input)]
    if tool_call:
        messages += [
            Message(role="assistant", tool_calls=[ToolCallRequest(id="c1", name="python", arguments='{"code": "x"}')]),
            Message(role="tool", content="error: NameError: name 'x' is not defined", tool_call_id="c1", name="python"),
        ]
    messages.append(Message(role="assistant", content=answer or None))
    return Trace(
        task_id=TASK.id,
        trial=0,
        agent="coder",
        artifact_hash="0" * 64,
        model="scripted/x",
        simulated=False,
        messages=messages,
        final_output=answer,
        error=error,
        started_at="2025-01-01T00:00:00+00:00",
        duration_s=0.1,
    )


def _view(answer: str, tool_call: bool = False) -> BlindView:
    outcome = asyncio.run(verify(TASK, answer))
    return blind_view(_trace(answer, tool_call), TASK, outcome)


@pytest.fixture(scope="module")
def views() -> dict[str, BlindView]:
    return {name: _view(answer) for name, (answer, _) in CASES.items()}


def _quotable(view: BlindView) -> list[str]:
    """Where a quote may come from: the view's JSON text or any of its text fields, verbatim."""
    fields = [
        view.task_input,
        view.rubric,
        view.final_output,
        view.verifier_message,
        view.run_error or "",
        view.error_type or "",
        *(step.text for step in view.steps),
    ]
    return [view.text(), *fields]


def _assert_quoted(report: SymptomReport, view: BlindView) -> None:
    for symptom in report.symptoms:
        assert symptom.evidence, symptom
        for quote in symptom.evidence:
            assert quote and any(quote in source for source in _quotable(view)), (symptom.label, quote)


@pytest.mark.parametrize("case", list(CASES))
def test_label_and_verbatim_evidence(case: str, views: dict[str, BlindView]) -> None:
    view = views[case]
    report = detect(view)
    assert not view.passed
    (symptom,) = report.symptoms
    assert symptom.label == CASES[case][1], (view.error_type, view.verifier_message)
    assert symptom.description == TAXONOMY[symptom.label] and symptom.detector
    assert (report.task_id, report.trial, report.passed, report.error_type) == (TASK.id, 0, False, view.error_type)
    assert report.source == "detectors"
    _assert_quoted(report, view)


def test_evidence_points_at_the_offending_text(views: dict[str, BlindView]) -> None:
    assert detect(views["prose_at_error_line"]).symptoms[0].evidence == ["Here is the function you asked for:"]
    assert detect(views["fences"]).symptoms[0].evidence == ["```python"]
    assert "one" in detect(views["name_error"]).symptoms[0].evidence[0]
    assert detect(views["unclosed_bracket"]).symptoms[0].evidence[-1] == "return (x +"


def test_passed_runs_have_no_symptoms() -> None:
    view = _view(GOOD, tool_call=True)
    assert view.passed
    report = detect(view)
    assert report.passed and report.symptoms == [] and report.error_type is None
    assert report.used_tools is True


def test_used_tools_is_reported_for_failures_too() -> None:
    report = detect(_view(CASES["name_error"][0], tool_call=True))
    assert report.used_tools is True and report.symptoms[0].label == "undefined_name"
    assert detect(_view(CASES["name_error"][0])).used_tools is False


def test_run_error_is_the_evidence_of_no_answer() -> None:
    outcome = asyncio.run(verify(TASK, ""))
    view = blind_view(_trace("", error="no final answer after max_turns=2 turns"), TASK, outcome)
    (symptom,) = detect(view).symptoms
    assert symptom.label == "no_answer" and symptom.evidence == ["no final answer after max_turns=2 turns"]
    _assert_quoted(detect(view), view)


def test_detectors_only_register_taxonomy_labels() -> None:
    with pytest.raises(ValueError, match="not_a_label"):
        detector("not_a_label")


@pytest.mark.parametrize(("answer", "error_type"), [("", "NoOutput"), ("def inc(x):\n    return x\n", None)])
def test_evidence_is_quoted_even_without_a_verifier_message(answer: str, error_type: str | None) -> None:
    outcome = Outcome(task_id=TASK.id, passed=False, score=0.0, error_type=error_type, message="")
    view = blind_view(_trace(answer), TASK, outcome)
    _assert_quoted(detect(view), view)
