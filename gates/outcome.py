"""Outcome: the verifier's verdict on one trace."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Outcome(BaseModel):
    """Verdict of a task's verifier on one (task, trial) run."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = 1
    task_id: str
    trial: int = 0
    passed: bool
    score: float = Field(ge=0.0, le=1.0, description="1.0 for a pass, 0.0 for a fail (partial credit later).")
    error_type: str | None = Field(
        default=None,
        description="SyntaxError, NameError, AssertionError, Timeout, MemoryError, Crash, NoOutput, AnswerTooLarge, "
        "InvalidModelOutput (the reply is not Unicode text), WrongAnswer, ...",
    )
    message: str = Field(default="", description="The verifier's message: last line of the error, trimmed.")
    duration_s: float = 0.0
