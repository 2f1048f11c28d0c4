"""Verifiers: turn an agent's final answer into an Outcome.

- `python_tests`: the answer, then the task's hidden tests and `check(<entry_point>)`, run in
  the sandbox. Passed iff the program finishes without an exception.
- `exact_match`: the normalised answer equals one of the normalised expected strings.

An answer longer than `MAX_ANSWER_CHARS` fails with error type `AnswerTooLarge` without being
compiled, run or compared: checking it would cost the evaluation's own process seconds of CPU
and gigabytes of memory (compiling 10 MB of Python takes ~12 s and ~2.4 GB), and no task's
answer is that long.

An answer that is not Unicode text (it holds a lone surrogate such as U+D800) fails with error type
`InvalidModelOutput`, unchecked: the verifier judges what the model said, never a repaired copy of
it. `verify_run` gives that outcome to a run the runtime ended on such a reply. Verifier messages
keep any surrogate escaped (`\\ud800`), so every outcome can be stored.
"""

from __future__ import annotations

import re
import time

from ratchet.agents import INVALID_MODEL_OUTPUT, Trace, escape_surrogates, surrogate_at
from ratchet.gates.outcome import Outcome
from ratchet.gates.sandbox import SandboxLimits, SandboxResult, run_python
from ratchet.gates.task import ExactMatchVerifier, PythonTestsVerifier, Task

_QUOTES = "\"'`*\u2018\u2019\u201c\u201d\u00ab\u00bb"
_TRAILING = ".,;:!?"
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SHOWN = 60
MAX_ANSWER_CHARS = 256 * 1024


async def verify(task: Task, answer: str, trial: int = 0) -> Outcome:
    """Check `answer` against the task's verifier."""
    started = time.monotonic()
    if not answer or not answer.strip():
        return _outcome(task, trial, started, error_type="NoOutput", message="NoOutput: the answer is empty")
    if len(answer) > MAX_ANSWER_CHARS:
        message = (
            f"AnswerTooLarge: the answer has {len(answer):,} characters; the verifier checks at most "
            f"{MAX_ANSWER_CHARS:,}"
        )
        return _outcome(task, trial, started, error_type="AnswerTooLarge", message=message)
    where = surrogate_at(answer)
    if where is not None:
        message = f"{INVALID_MODEL_OUTPUT}: the answer holds {where}, a lone surrogate: not Unicode text, not checked"
        return _outcome(task, trial, started, error_type=INVALID_MODEL_OUTPUT, message=message)
    spec = task.verifier
    if isinstance(spec, PythonTestsVerifier):
        return await _verify_python(task, spec, answer, trial, started)
    if isinstance(spec, ExactMatchVerifier):
        return _verify_exact(task, spec, answer, trial, started)
    raise TypeError(f"unknown verifier type: {type(spec).__name__}")


async def verify_run(task: Task, trace: Trace, trial: int = 0) -> Outcome:
    """The outcome of one run: `InvalidModelOutput` when the runtime ended it on a reply that is not Unicode
    text (its error says where), else `verify` of its final answer."""
    if trace.error is not None and trace.error.startswith(INVALID_MODEL_OUTPUT):
        return _outcome(task, trial, time.monotonic(), error_type=INVALID_MODEL_OUTPUT, message=_trim(trace.error, 300))
    return await verify(task, trace.final_output, trial=trial)


def program_for(answer: str, spec: PythonTestsVerifier) -> str:
    """The program the sandbox runs: answer, hidden tests, then the check call."""
    return answer + "\n\n" + spec.test + f"\n\ncheck({spec.entry_point})\n"


async def _verify_python(task: Task, spec: PythonTestsVerifier, answer: str, trial: int, started: float) -> Outcome:
    syntax = _compile_error(answer)
    if syntax is not None:
        return _outcome(task, trial, started, error_type=syntax[0], message=f"{syntax[0]}: {syntax[1]}")
    result = await run_python(program_for(answer, spec), SandboxLimits(timeout_s=spec.timeout_s))
    if result.status == "ok":
        return _outcome(task, trial, started, passed=True)
    return _outcome(task, trial, started, error_type=result.error_type, message=_failure_message(result, spec))


def _compile_error(answer: str) -> tuple[str, str] | None:
    """(error type, message) if the answer alone does not compile; the tests must not mask it."""
    try:
        compile(answer, "solution.py", "exec", dont_inherit=True)
    except SyntaxError as exc:  # includes IndentationError and TabError
        return type(exc).__name__, _one_line(str(exc))
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        return "SyntaxError", _one_line(str(exc) or type(exc).__name__)
    return None


def _failure_message(result: SandboxResult, spec: PythonTestsVerifier) -> str:
    error_type = result.error_type or "Error"
    if result.status == "timeout" and "CPU" not in result.message:
        return f"Timeout: the tests ran longer than {spec.timeout_s:g} s"
    if error_type == "AssertionError" and not result.message:
        return "AssertionError: a hidden test failed"
    return f"{error_type}: {result.message}" if result.message else error_type


def _verify_exact(task: Task, spec: ExactMatchVerifier, answer: str, trial: int, started: float) -> Outcome:
    wanted = [normalise(e) for e in spec.expected]
    if normalise(answer) in wanted:
        return _outcome(task, trial, started, passed=True)
    shown = ", ".join(repr(_trim(e, _SHOWN)) for e in wanted[:3])
    more = f", +{len(wanted) - 3} more" if len(wanted) > 3 else ""
    got = repr(_trim(normalise(answer), _SHOWN))
    message = f"WrongAnswer: expected one of [{shown}{more}], got {got}"
    return _outcome(task, trial, started, error_type="WrongAnswer", message=message)


def normalise(text: str) -> str:
    """Lowercase, strip surrounding quotes and final punctuation, drop articles, collapse whitespace."""
    text = _strip_edges(text.lower())
    text = _ARTICLES.sub(" ", text)
    return _strip_edges(" ".join(text.split()))


def _strip_edges(text: str) -> str:
    """Quotes (and markdown emphasis) at both ends, sentence punctuation at the end; keeps '-5' and '.5'."""
    previous = None
    while text != previous:
        previous = text
        text = text.strip().strip(_QUOTES).rstrip(_TRAILING)
    return text


def _outcome(
    task: Task, trial: int, started: float, *, passed: bool = False, error_type: str | None = None, message: str = ""
) -> Outcome:
    return Outcome(
        task_id=task.id,
        trial=trial,
        passed=passed,
        score=1.0 if passed else 0.0,
        error_type=None if passed else error_type,
        message=escape_surrogates(message),
        duration_s=time.monotonic() - started,
    )


def _one_line(text: str, limit: int = 300) -> str:
    return _trim(" ".join(part.strip() for part in text.splitlines() if part.strip()), limit)


def _trim(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
