"""The blind view: what the critic may see of a run.

`blind_view(trace, task, outcome)` is the only way the critic gets at a run. It takes
the task's own input and rubric, the agent's observable behaviour (its answers, the
tools it called and what they returned) and the verifier's outcome. It never receives
the agent artifact, and it drops the system and user messages, which are rendered
from the artifact's prompts.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ratchet.agents import GuardedCallRecord, Trace
from ratchet.gates import Outcome, Task


class ObservedStep(BaseModel):
    """One observable thing the agent did."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["answer", "tool_call", "tool_result", "contract_check"]
    text: str
    tool: str | None = None


class BlindView(BaseModel):
    """Implementation-blind record of one run."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    task_id: str
    trial: int
    task_input: str
    rubric: str
    steps: list[ObservedStep] = Field(default_factory=list)
    final_output: str
    passed: bool
    error_type: str | None
    verifier_message: str
    run_error: str | None = Field(default=None, description="Why the run ended abnormally, if it did.")

    def text(self) -> str:
        """Everything in the view as one string (quotes must come from here)."""
        return self.model_dump_json()


def blind_view(trace: Trace, task: Task, outcome: Outcome) -> BlindView:
    """Build the critic's view of one run. Takes no artifact, by design."""
    steps: list[ObservedStep] = []
    for message in trace.messages:
        if message.role == "assistant":
            if message.content:
                steps.append(ObservedStep(kind="answer", text=message.content))
            for call in message.tool_calls:
                steps.append(ObservedStep(kind="tool_call", text=_arguments_text(call.arguments), tool=call.name))
        elif message.role == "tool":
            steps.append(ObservedStep(kind="tool_result", text=message.content or "", tool=message.name))
    if trace.answer_guard is not None:
        steps.append(ObservedStep(kind="contract_check", text=_guard_text(trace.answer_guard)))
    return BlindView(
        task_id=task.id,
        trial=trace.trial,
        task_input=task.input,
        rubric=task.rubric,
        steps=steps,
        final_output=trace.final_output,
        passed=outcome.passed,
        error_type=outcome.error_type,
        verifier_message=outcome.message,
        run_error=trace.error,
    )


def _guard_text(record: GuardedCallRecord) -> str:
    """What the answer contract did, as observed: which answers it refused and why, and the outcome."""
    lines = [f"answer {s.index + 1} refused: {f.clause}: {f.reason}" for s in record.samples for f in s.failures[:1]]
    lines += [f"answer {s.index + 1} not received: {s.backend_error}" for s in record.samples if s.backend_error]
    outcome = {
        "sample": "an answer was accepted",
        "computed_fallback": "a computed fallback answer was used",
        "fallback": "the fallback answer was used",
    }[record.source]
    return "\n".join([*lines, outcome])


def _arguments_text(raw: str) -> str:
    """Tool arguments as readable text: the `code` argument alone when that is all there is."""
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    if isinstance(parsed, dict) and set(parsed) == {"code"} and isinstance(parsed["code"], str):
        return parsed["code"]
    return raw
