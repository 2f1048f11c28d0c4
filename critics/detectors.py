"""Deterministic symptom detectors over the blind view.

Each detector is a function registered with `@detector(label)`; it returns a Symptom
or None. `detect(view)` runs them in registration order and keeps the first match,
so the most specific detectors come first. Evidence is always quoted verbatim from
the view.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ratchet.critics.symptoms import TAXONOMY, Symptom, SymptomReport
from ratchet.critics.view import BlindView

DetectorFn = Callable[[BlindView], list[str] | None]
_DETECTORS: list[tuple[str, DetectorFn]] = []
ALWAYS_REPORTED = frozenset({"sandbox_violation"})  # labels reported for passed runs too

PROSE_LINE = re.compile(r"^[A-Z][a-z']*(?: [^\s()=\[\]{}]+){2,}$")
LINE_NUMBER = re.compile(r"line (\d+)")
UNFINISHED = ("was never closed", "unexpected EOF", "expected an indented block", "unterminated")
# How a sandbox refusal reads from outside: the python tool's `sandbox: blocked ...` lines and the
# `SandboxViolation: blocked by the sandbox: ...` error (gates.sandbox, gates.python_tool).
SANDBOX_REFUSAL = re.compile(
    r"^(?:sandbox: blocked .+|.*\bSandboxViolation: blocked by the sandbox: .+)$", re.MULTILINE
)


def detector(label: str) -> Callable[[DetectorFn], DetectorFn]:
    """Register a detector for a taxonomy label; it returns evidence quotes or None."""
    if label not in TAXONOMY:
        raise ValueError(f"unknown symptom label {label!r}")

    def register(fn: DetectorFn) -> DetectorFn:
        _DETECTORS.append((label, fn))
        return fn

    return register


def detect(view: BlindView) -> SymptomReport:
    """The detectors' report for one run. A passed run has no symptom, except a sandbox refusal: code
    that probed the sandbox is worth reporting even when the answer was right."""
    symptoms = []
    detectors = _DETECTORS if not view.passed else [(label, fn) for label, fn in _DETECTORS if label in ALWAYS_REPORTED]
    for label, fn in detectors:
        evidence = fn(view)
        if evidence is not None:
            symptoms.append(Symptom(label=label, description=TAXONOMY[label], evidence=evidence, detector=fn.__name__))
            break
    return SymptomReport(
        task_id=view.task_id,
        trial=view.trial,
        passed=view.passed,
        error_type=view.error_type,
        used_tools=any(step.kind == "tool_call" for step in view.steps),
        symptoms=symptoms,
    )


@detector("sandbox_violation")
def sandbox_refusal(view: BlindView) -> list[str] | None:
    """The code (a tool call's or the final answer's) tried what the sandbox forbids. It comes first: a
    run that probes for the network, the host's files or new processes matters more than why it failed."""
    texts = [view.verifier_message, view.run_error or ""] + [s.text for s in view.steps if s.kind == "tool_result"]
    quotes = [match.group(0).strip() for text in texts for match in SANDBOX_REFUSAL.finditer(text)]
    return list(dict.fromkeys(quotes))[:3] or None


@detector("contract_violation")
def fallback_after_contract(view: BlindView) -> list[str] | None:
    """The answer contract refused every answer: the fallback, not the model, answered."""
    for step in view.steps:
        if step.kind == "contract_check" and step.text.endswith("the fallback answer was used"):
            return [line for line in step.text.splitlines() if " refused: " in line][:3] or [step.text]
    return None


@detector("no_answer")
def empty_final_answer(view: BlindView) -> list[str] | None:
    if view.final_output.strip():
        return None
    quote = view.run_error or view.verifier_message or view.error_type
    return [quote] if quote else []


@detector("non_code_output")
def prose_or_fences(view: BlindView) -> list[str] | None:
    if view.error_type not in ("SyntaxError", "IndentationError"):
        return None
    lines = view.final_output.splitlines()
    fences = [line.strip() for line in lines if line.strip().startswith("```")]
    number = _error_line(view)
    bad_line = lines[number - 1].strip() if number and 0 < number <= len(lines) else ""
    prose = [bad_line] if PROSE_LINE.match(bad_line) else []
    return prose + fences[:1] if prose or fences else None


@detector("incomplete_code")
def unfinished_code(view: BlindView) -> list[str] | None:
    if view.error_type not in ("SyntaxError", "IndentationError"):
        return None
    lines = view.final_output.rstrip().splitlines()
    at_end = _error_line(view) in (len(lines), len(lines) + 1)
    if any(marker in view.verifier_message for marker in UNFINISHED) or at_end:
        return [view.verifier_message, lines[-1].strip()] if lines and lines[-1].strip() else [view.verifier_message]
    return None


@detector("syntax_error")
def other_syntax_error(view: BlindView) -> list[str] | None:
    return [view.verifier_message] if view.error_type in ("SyntaxError", "IndentationError") else None


@detector("undefined_name")
def name_error(view: BlindView) -> list[str] | None:
    return [view.verifier_message] if view.error_type == "NameError" else None


@detector("timeout")
def timed_out(view: BlindView) -> list[str] | None:
    return [view.verifier_message] if view.error_type == "Timeout" else None


@detector("wrong_answer")
def failed_tests(view: BlindView) -> list[str] | None:
    return [view.verifier_message] if view.error_type in ("AssertionError", "WrongAnswer") else None


@detector("runtime_error")
def other_exception(view: BlindView) -> list[str] | None:
    lines = [line.strip() for line in view.final_output.splitlines() if line.strip()]
    quote = view.verifier_message or view.error_type or (lines[-1] if lines else "")
    return [quote] if quote else []


def _error_line(view: BlindView) -> int | None:
    match = LINE_NUMBER.search(view.verifier_message)
    return int(match.group(1)) if match else None
