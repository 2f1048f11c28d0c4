"""What `ratchet verify` reports (releases.audit): problems, one audit per agent, the report."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from ratchet.releases.ledger import LedgerEntry, ledger_path

ProblemKind = Literal["ledger", "main", "tag", "verdict", "manual"]


class Problem(BaseModel):
    """One thing in the workspace that disagrees with what Ratchet recorded (or, as a warning, that
    could not be checked)."""

    model_config = ConfigDict(frozen=True)
    agent: str
    kind: ProblemKind = Field(
        description="ledger, main (a commit on main), tag, verdict or manual (a person's decision)."
    )
    where: str = Field(description="What to look at: a ledger line, a tag, a commit.")
    message: str


class AgentAudit(BaseModel):
    """What `verify` checked for one agent and what it found."""

    model_config = ConfigDict(frozen=True)
    agent: str
    entries: int = Field(description="Ledger entries checked.")
    tags: int = Field(description="Release and rejected tags checked.")
    gate_decisions: int = Field(description="Automatic gate verdicts in the ledger.")
    rederived: int = Field(description="Of those, verdicts re-derived to the recorded outcome.")
    problems: list[Problem]
    warnings: list[Problem]


class AuditReport(BaseModel):
    """The result of `ratchet verify` over a workspace."""

    model_config = ConfigDict(frozen=True)
    version: int = 1
    workspace: str
    main: str = Field(description="The commit of main that was checked.")
    agents: list[AgentAudit]

    @computed_field  # type: ignore[prop-decorator]  # mypy rejects decorators over @property; the form pydantic documents
    @property
    def ok(self) -> bool:
        return not any(a.problems for a in self.agents)


class LedgerLine(BaseModel):
    """A readable ledger line and its 1-based line number."""

    model_config = ConfigDict(frozen=True)
    number: int
    entry: LedgerEntry


def line_where(agent: str, number: int) -> str:
    return f"{ledger_path(agent)} line {number}"
