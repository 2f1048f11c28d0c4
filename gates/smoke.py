"""The smoke check: a short, cheap suite the RC runs before the gate's expensive evaluation.

The built-in smoke suite is TQB++ core (52 short questions, `builtin:tqbpp-core`). Each side
runs it once per task; the baseline's runs are reused from the run store (it was the previous
cycle's candidate). The check is a tripwire for broken candidates (an edit that makes the
agent answer nothing, or in the wrong shape), not a second gate: it rejects only when the
candidate's pass rate falls more than the policy's `smoke_max_drop` below the baseline's.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ratchet.gates.evaluation import Evaluation


class SmokeCheck(BaseModel):
    """Both sides' smoke results and whether the candidate may go on to the gate."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    suite: str
    model: str
    tasks: int = Field(ge=0)
    baseline_passed: int = Field(ge=0)
    candidate_passed: int = Field(ge=0)
    max_drop: float = Field(ge=0.0, le=1.0)

    @property
    def drop(self) -> float:
        """How far the candidate's pass rate fell below the baseline's (negative: it rose)."""
        return (self.baseline_passed - self.candidate_passed) / self.tasks if self.tasks else 0.0

    @property
    def passed(self) -> bool:
        return self.drop <= self.max_drop + 1e-12

    def summary(self) -> str:
        """One line, e.g. 'smoke suite tqb: 52/52 -> 45/52 (drop 13.5 points, allowed 25)'."""
        return (
            f"smoke suite {self.suite}: {self.baseline_passed}/{self.tasks} -> {self.candidate_passed}/{self.tasks} "
            f"(drop {self.drop * 100:.1f} points, allowed {self.max_drop * 100:g})"
        )


def smoke_check(suite: str, baseline: Evaluation, candidate: Evaluation, max_drop: float) -> SmokeCheck:
    """Compare one run per task on each side (the first trial of each task)."""

    def passes(evaluation: Evaluation) -> dict[str, bool]:
        first: dict[str, bool] = {}
        for record in evaluation.records:
            first.setdefault(record.task_id, record.outcome.passed)
        return first

    base, cand = passes(baseline), passes(candidate)
    shared = base.keys() & cand.keys()
    return SmokeCheck(
        suite=suite,
        model=candidate.summary.model,
        tasks=len(shared),
        baseline_passed=sum(base[t] for t in shared),
        candidate_passed=sum(cand[t] for t in shared),
        max_drop=max_drop,
    )
