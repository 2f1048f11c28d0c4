"""The ledger: `releases/<agent>/ledger.jsonl` on main, one hash-chained line per decision."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.errors import StateError

DecisionKind = Literal["release", "promote", "reject", "hold", "manual_promote", "manual_reject"]
GENESIS = "0" * 64


def ledger_path(agent: str) -> str:
    return f"releases/{agent}/ledger.jsonl"


class LedgerEntry(BaseModel):
    """One decision about one agent's version line."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = 1
    seq: int = Field(ge=1)
    agent: str
    decision: DecisionKind
    release: str | None = Field(default=None, description="The tag made by this decision, e.g. coder/v2.")
    base_release: str | None = Field(default=None, description="The release the RC was built on.")
    rc: str | None = Field(default=None, description="RC branch, e.g. rc/coder/1.")
    rc_commit: str | None = None
    intent: str = ""
    remediation: str | None = Field(default=None, description="Identifier of the RC's change (playbook remediation id).")
    fixes: int = 0
    regressions: int = 0
    gate_pass_rate: float | None = Field(default=None, description="Candidate's pass rate on the gate split.")
    baseline_gate_pass_rate: float | None = None
    holdout_pass_rate: float | None = None
    policy_hash: str | None = None
    evidence: str | None = Field(default=None, description="Folder on the RC branch holding the evidence.")
    actor: str
    reason: str
    timestamp: str
    prev_hash: str
    hash: str = ""

    def compute_hash(self) -> str:
        body = self.model_dump(mode="json", exclude={"hash"})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def parse_ledger(text: str, source: str) -> list[LedgerEntry]:
    """All entries; StateError naming the line for anything unreadable or off-chain."""
    entries: list[LedgerEntry] = []
    prev = GENESIS
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = LedgerEntry.model_validate_json(line)
        except ValidationError as exc:
            raise StateError(f"{source} line {number}: unreadable ledger entry: {exc.errors()[0]['msg']}") from exc
        if entry.prev_hash != prev or entry.hash != entry.compute_hash():
            raise StateError(f"{source} line {number}: ledger hash chain broken; the ledger was edited by hand")
        entries.append(entry)
        prev = entry.hash
    return entries


def new_entry(previous: list[LedgerEntry], **fields: object) -> LedgerEntry:
    """The next entry of the chain, with seq, timestamp, prev_hash and hash filled in."""
    draft = LedgerEntry(
        seq=len(previous) + 1,
        prev_hash=previous[-1].hash if previous else GENESIS,
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        **fields,
    )
    return draft.model_copy(update={"hash": draft.compute_hash()})


def append_line(text: str, entry: LedgerEntry) -> str:
    if text and not text.endswith("\n"):
        text += "\n"
    return text + entry.model_dump_json() + "\n"
