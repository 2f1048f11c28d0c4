"""Symptoms: what a failure looks like from outside, never a cause inside the agent."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ratchet.agents import GuardedCallRecord

TAXONOMY: dict[str, str] = {
    "non_code_output": "The answer is not plain code: prose or markdown fences around it break execution.",
    "undefined_name": "The code uses a name it never defines or imports (NameError).",
    "incomplete_code": "The code stops before it is complete (unclosed bracket or block at the end).",
    "syntax_error": "The code has a syntax error that is not prose and not an unfinished ending.",
    "wrong_answer": "The code runs but gives wrong results on hidden tests.",
    "runtime_error": "The code raises an exception other than NameError while being tested.",
    "timeout": "The code does not finish within the time limit.",
    "no_answer": "The run ended without a final answer.",
    "contract_violation": "Every answer broke the answer's declared output contract; a fallback answer was used.",
    "sandbox_violation": "The code tried something the sandbox forbids (network, files outside its folder, new "
    "processes, native code) and was refused.",
}


class Symptom(BaseModel):
    """One observed failure symptom with verbatim evidence from the blind view."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    label: str = Field(description="A key of TAXONOMY (or a new label, flagged by the critic).")
    description: str
    evidence: list[str] = Field(default_factory=list, description="Verbatim quotes from the blind view.")
    detector: str = Field(description="Which detector or critic produced it.")
    new_label: bool = Field(default=False, description="The LLM critic's own label, not in TAXONOMY.")


class SymptomReport(BaseModel):
    """The critic's report on one run."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = 1
    task_id: str
    trial: int
    passed: bool
    error_type: str | None = None
    used_tools: bool = False
    symptoms: list[Symptom] = Field(default_factory=list)
    source: Literal["detectors", "llm"] = "detectors"
    critic_call: GuardedCallRecord | None = Field(
        default=None, description="The LLM critic's guarded call: samples, broken clauses, fallback used."
    )
