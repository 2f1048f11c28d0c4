"""Tasks: what an agent is asked to do and how its answer is checked."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class PythonTestsVerifier(BaseModel):
    """Run the answer as Python, then the hidden `test` code and `check(<entry_point>)`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["python_tests"] = "python_tests"
    test: str = Field(description="Python source defining check(candidate).")
    entry_point: str = Field(description="Name of the function the answer must define.")
    timeout_s: float = Field(default=5.0, gt=0, description="Wall-clock limit for the test run.")


class ExactMatchVerifier(BaseModel):
    """Compare the normalised answer with any of the expected strings."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["exact_match"] = "exact_match"
    expected: list[str] = Field(min_length=1, description="Accepted answers.")


VerifierSpec = Annotated[PythonTestsVerifier | ExactMatchVerifier, Field(discriminator="type")]


class Task(BaseModel):
    """One task of a suite. `input` is all the agent is given."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(min_length=1, description="Unique within the suite.")
    input: str = Field(description="The task text handed to the agent.")
    verifier: VerifierSpec
    rubric: str = Field(default="", description="What counts as success, in words (the critic sees this).")
    metadata: dict[str, str] = Field(default_factory=dict)


def natural_key(task_id: str) -> list[str | int]:
    """Sort key putting HumanEval/2 before HumanEval/10 (digit runs compare as numbers)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", task_id)]
