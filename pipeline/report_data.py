"""What `ratchet report` shows, read from the ledger on main and the evidence on the RC branches."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ratchet.agents import UserError
from ratchet.gates import KINDS, FlipKind
from ratchet.pipeline.release_outcomes import final_decisions
from ratchet.pipeline.settings import load_settings
from ratchet.releases import FLIPS, NOTES_JSON, EvidenceReader, GitStore, LedgerEntry, Registry

RELEASE_DECISIONS = ("release", "promote", "manual_promote")


class ReleasePoint(BaseModel):
    """One release on the canonical line and its measured pass rates."""

    model_config = ConfigDict(frozen=True)
    release: str = Field(description="The tag, e.g. coder/v2.")
    gate_pass_rate: float | None = Field(default=None, description="On the gate split; None if never measured.")
    holdout_pass_rate: float | None = Field(default=None, description="On the holdout split; None if never measured.")


class CycleSummary(BaseModel):
    """The final decision about one release candidate (rejected, held and inconclusive ones included)."""

    model_config = ConfigDict(frozen=True)
    rc: str = Field(description="RC branch, e.g. rc/coder/3.")
    decision: str
    release: str | None = Field(default=None, description="The tag a promotion made.")
    remediation: str | None = None
    fixes: int = Field(description="Confirmed F->P flips.")
    regressions: int = Field(description="Confirmed P->F flips.")
    baseline_gate_pass_rate: float | None = None
    gate_pass_rate: float | None = None

    @property
    def label(self) -> str:
        """Short axis label: `rc3` and what became of it."""
        outcome = f"-> {self.release.rsplit('/', 1)[-1]}" if self.release else self.decision
        return f"rc{self.rc.rsplit('/', 1)[-1]}\n{outcome}"


class FlipMatrix(BaseModel):
    """Flip counts (majority over trials) of one candidate against its baseline on the gate split."""

    model_config = ConfigDict(frozen=True)
    rc: str
    decision: str
    base_release: str | None = None
    counts: dict[FlipKind, int] = Field(description="Tasks per kind: P->P, P->F, F->P, F->F.")
    confirmed: dict[FlipKind, int] = Field(description="Flips the exact test confirmed, per kind.")


class ReportData(BaseModel):
    """Everything the report page and its plots show."""

    model_config = ConfigDict(frozen=True)
    version: int = 1
    agent: str
    workspace: str
    generated_at: str = Field(description="UTC, ISO 8601.")
    current_release: str
    releases: list[ReleasePoint]
    cycles: list[CycleSummary]
    flip_matrix: FlipMatrix | None = Field(default=None, description="Of the latest candidate with a flip table.")


def collect_report(workspace: Path, agent: str) -> ReportData:
    """Read the agent's history; UserError for an unknown agent or one without decisions."""
    load_settings(workspace)  # a clear error when this is not a workspace at all
    entries = Registry(workspace).ledger(agent)
    with GitStore(workspace) as git:
        reader = EvidenceReader(git)
        if not entries:
            known = sorted({t.split("/")[0] for t in git.tag_names("*/v*")})
            raise UserError(f"{workspace}: no agent {agent!r}; agents here: {', '.join(known) or 'none'}")
        finals = final_decisions(entries)
        if not finals:
            raise UserError(
                f"{workspace}: agent {agent!r} has no decisions yet; run `ratchet cycle --workspace "
                f"{workspace} --agent {agent}` first"
            )
        releases = [
            _release_point(reader, entries, e) for e in entries if e.decision in RELEASE_DECISIONS and e.release
        ]
        matrix = next((m for e in reversed(finals) if (m := _flip_matrix(reader, e))), None)
    return ReportData(
        agent=agent,
        workspace=str(workspace),
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        current_release=releases[-1].release,
        releases=releases,
        flip_matrix=matrix,
        cycles=[
            CycleSummary(
                rc=e.rc or "",
                **e.model_dump(
                    include={
                        "decision",
                        "release",
                        "remediation",
                        "fixes",
                        "regressions",
                        "baseline_gate_pass_rate",
                        "gate_pass_rate",
                    }
                ),
            )
            for e in finals
        ],
    )


def _release_point(reader: EvidenceReader, entries: list[LedgerEntry], made: LedgerEntry) -> ReleasePoint:
    """The candidate rates of the decision that made the release; failing those, the baseline rates of the
    first candidate built on it (the initial release has only these)."""
    gate = made.gate_pass_rate
    holdout: object = made.holdout_pass_rate  # or a value of the notes' JSON: ReleasePoint validates it
    built_on = next((e for e in entries if e.base_release == made.release and e.rc), None)
    if built_on is not None and gate is None:
        gate = built_on.baseline_gate_pass_rate
    if built_on is not None and holdout is None:
        holdout = reader.read_json(built_on, NOTES_JSON).get("baseline_holdout_pass_rate")
    return ReleasePoint.model_validate(
        {"release": made.release or "", "gate_pass_rate": gate, "holdout_pass_rate": holdout}
    )


def _flip_matrix(reader: EvidenceReader, entry: LedgerEntry) -> FlipMatrix | None:
    data = reader.read(entry, FLIPS)
    if data is None:
        return None
    counts: dict[FlipKind, int] = {kind: 0 for kind in KINDS}
    confirmed: dict[FlipKind, int] = {kind: 0 for kind in KINDS}
    kind_of: dict[str, FlipKind] = {kind: kind for kind in KINDS}
    for row in csv.DictReader(io.StringIO(data.decode())):
        kind = kind_of[row["kind"]]  # KeyError for a kind outside KINDS
        counts[kind] += 1
        confirmed[kind] += row.get("confirmed") == "True"
    return FlipMatrix(
        rc=entry.rc or "", decision=entry.decision, base_release=entry.base_release, counts=counts, confirmed=confirmed
    )
