"""The agent's `python` tool: run code in the sandbox, then the task's docstring examples.

The first line of the result is a contract (a simulated model parses it), exactly one of:

    ok: ran N docstring example(s), all passed
    error: <ErrorType>: <message>
    fail: example K of N: <source> expected <want>, got <got>
    timeout: the code ran longer than X s

Further lines, if any, say which example raised, list what the sandbox refused (one
`sandbox: blocked ...` line each, also when the code caught the refusal and went on), and show the
code's stdout (trimmed). A refusal that ended the code reads
`error: SandboxViolation: blocked by the sandbox: <what>`.
"""

from __future__ import annotations

import doctest
import re
from typing import Any

from ratchet.gates.sandbox import SandboxLimits, SandboxResult, run_python
from ratchet.gates.task import Task

MAX_STDOUT_CHARS = 2_000
SANDBOX_LINE = "sandbox: blocked "  # starts each line that reports a refusal (critics.detectors looks for it)
_MISMATCH = "RatchetExampleMismatch"
_MARKER_RE = re.compile(r"^ratchet-example: (\d+)$", re.MULTILINE)

# Runs inside the sandbox as solution.py. The code is exec'd in this module's globals (so it is
# __main__); the driver's own names are locals of one function, out of the code's reach.
_DRIVER = r'''
class RatchetExampleMismatch(Exception):
    """An example's output differs from the expected output."""


def _ratchet_main(code, examples):
    import ast, doctest, io, sys, traceback
    mismatch = RatchetExampleMismatch
    exec(compile(code, "solution.py", "exec", dont_inherit=True), globals())
    checker = doctest.OutputChecker()

    def short(text, limit=80):
        text = " ".join(text.split()) or "nothing"
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def run(source):
        buffer, values, error = io.StringIO(), [], None
        saved = sys.stdout, sys.displayhook
        sys.stdout = buffer
        sys.displayhook = lambda value: (values.append(value), sys.__displayhook__(value))[-1]
        try:
            exec(compile(source, "<example>", "single", dont_inherit=True), globals())
        except Exception as exc:
            error = exc
        finally:
            sys.stdout, sys.displayhook = saved
        return buffer.getvalue(), values, error

    def literal_equal(want, values):
        try:
            expected = ast.literal_eval(want.strip())
        except Exception:
            return False
        return bool(values) and type(expected) is type(values[-1]) and expected == values[-1]

    for index, (source, want, exc_msg) in enumerate(examples, 1):
        try:
            sys.__stderr__.write("ratchet-example: %d\n" % index)
            sys.__stderr__.flush()
        except Exception:
            pass
        got, values, error = run(source)
        if not want.strip() and values and isinstance(values[-1], bool):
            want = "True\n"  # an assertion-style example such as `f(1) == 2` with no output line
        if error is not None:
            if exc_msg is None:
                raise error
            got = traceback.format_exception_only(type(error), error)[-1]
            if checker.check_output(exc_msg, got, 0):
                continue
        elif exc_msg is not None:
            got = got or "no exception"
        elif checker.check_output(want, got, 0) or literal_equal(want, values):
            continue
        if not got.strip() and values:
            got = repr(values[-1])
        raise mismatch("example %d of %d: %s expected %s, got %s" % (
            index, len(examples), short(source, 120), short(exc_msg or want), short(got)))


_ratchet_main(_RATCHET_CODE, _RATCHET_EXAMPLES)
'''


class PythonExamplesTool:
    """`python`: run the given code in a sandbox, then check it on the task's docstring examples."""

    name = "python"
    description = (
        "Run Python code in a sandbox (no network, no files outside its folder, no subprocesses, time and "
        "memory limits). The code is executed, "
        "then the task's docstring examples (>>> lines) are run against it. Returns 'ok: ...' when "
        "all examples pass, 'fail: example K of N: ...' for the first wrong result, "
        "'error: <Type>: <message>' for an exception, or 'timeout: ...'."
    )
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": {
            "code": {
                "type": "string",
                "description": "Complete Python source: imports and the function definition(s).",
            }
        },
        "required": ["code"],
    }

    def __init__(self, task: Task, limits: SandboxLimits | None = None) -> None:
        self.task = task
        self.limits = limits or SandboxLimits()
        self.examples = docstring_examples(task.input)

    async def call(self, arguments: dict[str, Any]) -> str:
        """Run the code and the examples; return the contract text."""
        code = arguments.get("code") if isinstance(arguments, dict) else None
        if not isinstance(code, str) or not code.strip():
            return "error: ToolArgumentError: the python tool needs a 'code' string"
        result = await run_python(driver_program(code, self.examples), self.limits)
        return render_result(result, self.examples, self.limits)


def docstring_examples(text: str) -> list[tuple[str, str, str | None]]:
    """(source, want, exc_msg) of every `>>>` example in the text; none if doctest cannot parse it."""
    try:
        examples = doctest.DocTestParser().get_examples(text)
    except ValueError:  # inconsistent indentation of an example
        return []
    return [(e.source, _clean_want(e.want), None if e.exc_msg is None else _clean_want(e.exc_msg)) for e in examples]


def _clean_want(want: str) -> str:
    """Drop the docstring's closing quotes, which doctest reads as output when parsing a whole prompt."""
    lines = want.splitlines()
    if lines:
        last = lines[-1].rstrip()
        for quotes in ('"""', "'''"):
            if last.endswith(quotes):
                last = last[: -len(quotes)].rstrip()
        lines = lines[:-1] + ([last] if last.strip() else [])
    return "".join(line + "\n" for line in lines)


def driver_program(code: str, examples: list[tuple[str, str, str | None]]) -> str:
    """The sandboxed program: define the code, then run the examples."""
    header = f"_RATCHET_CODE = {code!r}\n_RATCHET_EXAMPLES = {examples!r}\n"
    return header + _DRIVER


def render_result(result: SandboxResult, examples: list[tuple[str, str, str | None]], limits: SandboxLimits) -> str:
    """The tool's text: one contract line, then optional detail lines."""
    total = len(examples)
    if result.status == "ok":
        lines = [f"ok: ran {total} docstring example(s), all passed"]
    elif result.status == "timeout":
        lines = [f"timeout: the code ran longer than {limits.timeout_s:g} s"]
    elif result.error_type == _MISMATCH:
        lines = [f"fail: {result.message}"]
    else:
        lines = [f"error: {result.error_type or 'Error'}: {result.message or '(no message)'}"]
        lines += _example_context(result, examples)
    lines += [SANDBOX_LINE + violation for violation in result.violations]
    stdout = result.stdout.strip()
    if stdout:
        trimmed = stdout if len(stdout) <= MAX_STDOUT_CHARS else stdout[:MAX_STDOUT_CHARS] + "\n[... stdout trimmed]"
        lines += ["stdout:", trimmed]
    return "\n".join(lines)


def _example_context(result: SandboxResult, examples: list[tuple[str, str, str | None]]) -> list[str]:
    """Which example was running when the error happened (from the driver's stderr markers)."""
    markers = _MARKER_RE.findall(result.stderr)
    if not markers or result.status != "error":
        return []
    index = int(markers[-1])
    if not 1 <= index <= len(examples):
        return []
    source = " ".join(examples[index - 1][0].split())
    return [f"while running example {index} of {len(examples)}: {source}"]
