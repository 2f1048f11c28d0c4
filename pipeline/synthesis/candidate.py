"""A proposed release candidate: one change to the artifact plus a stated intent."""

from __future__ import annotations

import difflib

from pydantic import BaseModel, ConfigDict, Field

from ratchet.agents import GuardedCallRecord


class Proposal(BaseModel):
    """What the synthesizer proposes; becomes one commit on an RC branch."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = 1
    agent: str
    strategy: str = Field(description="Which synthesis strategy made it (playbook, llm, ...).")
    remediation: str = Field(description="Identifier of the change, e.g. a playbook remediation id.")
    targets: list[str] = Field(description="Symptom pattern labels it is meant to fix.")
    intent: str
    expected_fixes: list[str] = Field(description="Dev task ids showing the targeted patterns.")
    changes: dict[str, str | None] = Field(description="Workspace-relative path -> new text (None deletes).")
    diff: str = ""
    synthesis_call: GuardedCallRecord | None = Field(
        default=None, description="The LLM synthesizer's guarded call (llm strategy only)."
    )

    @property
    def meta_edits(self) -> list[str]:
        """Changed paths of the improvement procedure itself (agents/<agent>/meta/...)."""
        prefix = f"agents/{self.agent}/meta/"
        return sorted(path for path in self.changes if path.startswith(prefix))

    def commit_message(self) -> str:
        return (
            f"RC for {self.agent}: {self.remediation}\n\n{self.intent}\n\n"
            f"Targets: {', '.join(self.targets)}\nExpected fixes (dev): {len(self.expected_fixes)} tasks\n"
            f"Strategy: {self.strategy}\n" + (f"Meta-edits: {', '.join(self.meta_edits)}\n" if self.meta_edits else "")
        )


def unified_diff(path: str, old: str | None, new: str | None) -> str:
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True),
        (new or "").splitlines(keepends=True),
        fromfile=f"a/{path}" if old is not None else "/dev/null",
        tofile=f"b/{path}" if new is not None else "/dev/null",
    )
    return "".join(lines)
