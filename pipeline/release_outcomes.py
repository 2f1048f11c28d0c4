"""Which stored gate outcome table belongs to a release, and what `ratchet why` computes
from those tables (read from the ledger on main and the evidence on the RC branches).

A release's stored gate outcomes are:

- for a release made by a promotion (`promote`, `manual_promote`): the candidate side of that
  decision's evidence (`outcomes-candidate-gate.csv`);
- for a rollback release: the outcomes of the release it restored (`rollback_to`), resolved recursively;
- otherwise, and as a fallback (the initial `release` has no evidence of its own): the baseline side
  of the first release candidate built on it that reached the gate.

None when no table fits (e.g. the latest release before any cycle ran on it).
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from ratchet.agents import UserError
from ratchet.gates import KINDS, FlipKind
from ratchet.releases import (
    FLIPS,
    VERDICT,
    EvidenceReader,
    LedgerEntry,
    Side,
    TaskRuns,
    flip_row,
    outcome_file,
    task_ids,
)

if TYPE_CHECKING:  # pandas and the statistics are for `diff`; `why` reads counts without them
    pass

PROMOTIONS = ("promote", "manual_promote")
STORY_EVENTS = 3  # `ratchet why`'s summary names the first two and the last three changes
RELEASE_NAME = re.compile(r"(?P<agent>[a-z][a-z0-9_-]*)/v(?P<number>\d+)")
_KIND_OF: dict[str, FlipKind] = {kind: kind for kind in KINDS}  # "P->F" as the FlipKind it names


class OutcomeSource(BaseModel):
    """Where a release's stored gate outcomes come from."""

    model_config = ConfigDict(frozen=True)
    release: str = Field(description="The release they belong to, e.g. coder/v2.")
    seq: int = Field(description="Ledger entry whose evidence holds the table.")
    rc: str = Field(description="The candidate of that entry, e.g. rc/coder/1.")
    side: Side = Field(description="candidate: the release as the promoted RC; baseline: measured as a baseline.")
    path: str = Field(description="The file on the RC branch, e.g. releases/coder/rc-1/outcomes-candidate-gate.csv.")
    commit: str | None = Field(default=None, description="The evidence commit recorded in the ledger.")
    restored: str | None = Field(default=None, description="For a rollback: the release whose outcomes these are.")

    def describe(self) -> str:
        how = f"restored from {self.restored}: " if self.restored else ""
        return f"{how}{self.side} outcomes of {self.rc} ({self.path})"


def parse_release(name: str) -> tuple[str, int]:
    """`coder/v3` -> ("coder", 3); UserError for anything else."""
    match = RELEASE_NAME.fullmatch(name.strip())
    if not match:
        raise UserError(f"{name!r} is not a release name; expected <agent>/v<N>, e.g. coder/v2")
    return match.group("agent"), int(match.group("number"))


class ReleaseLine:
    """One agent's canonical line as the ledger records it, with each release's stored gate outcomes."""

    def __init__(self, agent: str, entries: list[LedgerEntry], reader: EvidenceReader) -> None:
        self.agent = agent
        self.entries = entries
        self.reader = reader
        self.made_by: dict[str, LedgerEntry] = {e.release: e for e in entries if e.release}
        self._sources: dict[str, OutcomeSource | None] = {}

    @property
    def releases(self) -> list[str]:
        """Every release in ledger order (the order they were made)."""
        return list(self.made_by)

    def require(self, release: str) -> LedgerEntry:
        """The entry that made `release`; UserError naming the known releases otherwise."""
        if release not in self.made_by:
            known = ", ".join(self.releases) or "none"
            raise UserError(f"no release {release!r} in {self.agent}'s ledger; releases: {known}")
        return self.made_by[release]

    def source(self, release: str) -> OutcomeSource | None:
        """The stored gate outcome table of a release (rules in the module docstring), or None."""
        if release not in self._sources:
            self._sources[release] = None  # a rollback cycle (never written by Ratchet) resolves to None
            self._sources[release] = self._resolve(release)
        return self._sources[release]

    def entry(self, source: OutcomeSource) -> LedgerEntry:
        return self.entries[source.seq - 1]

    def _resolve(self, release: str) -> OutcomeSource | None:
        made = self.made_by.get(release)
        if made is None:
            return None
        if made.decision in PROMOTIONS and self.reader.has_outcomes(made, "candidate"):
            return self._source(release, made, "candidate")
        if made.decision == "rollback" and made.rollback_to:
            restored = self.source(made.rollback_to)
            if restored is not None:
                return restored.model_copy(update={"release": release, "restored": made.rollback_to})
        built_on = next(
            (
                e
                for e in self.entries
                if e.base_release == release and e.rc and e.evidence and self.reader.has_outcomes(e, "baseline")
            ),
            None,
        )
        return self._source(release, built_on, "baseline") if built_on else None

    def _source(self, release: str, entry: LedgerEntry, side: Side) -> OutcomeSource:
        return OutcomeSource(
            release=release,
            seq=entry.seq,
            rc=entry.rc or "",
            side=side,
            path=f"{entry.evidence}/{outcome_file(side)}",
            commit=entry.rc_commit,
        )

    def alpha(self, release: str, default: float = 0.05) -> float:
        """The gate's alpha from the verdict.json next to the release's outcomes (default 0.05)."""
        source = self.source(release)
        if source is None:
            return default
        policy = self.reader.read_json(self.entry(source), VERDICT).get("policy")
        value = policy.get("alpha") if isinstance(policy, dict) else None
        return float(value) if isinstance(value, int | float) else default


def final_decisions(entries: list[LedgerEntry]) -> list[LedgerEntry]:
    """The last entry per RC (a hold or an inconclusive verdict is followed by the manual decision), in ledger
    order."""
    last = {e.rc: e for e in entries if e.rc}
    return [e for e in entries if e.rc and last[e.rc] is e]


# --- `ratchet why`: one task across every decision -------------------------------------------------


class TaskDecision(BaseModel):
    """One decision's evidence about one task: its runs on the baseline and on the candidate."""

    model_config = ConfigDict(frozen=True)
    seq: int
    decision: str
    rc: str
    base_release: str | None = None
    release: str | None = Field(default=None, description="The release this decision made, if any.")
    remediation: str | None = None
    intent: str = ""
    baseline: TaskRuns | None = None
    candidate: TaskRuns | None = None
    kind: FlipKind | None = Field(default=None, description="Majority outcome before -> after.")
    confirmed: bool | None = Field(default=None, description="Flips only: did the gate's exact test confirm it?")


class ReleaseState(BaseModel):
    """The task's runs in a release's stored gate outcomes."""

    model_config = ConfigDict(frozen=True)
    release: str
    runs: TaskRuns
    source: OutcomeSource


class LineEvent(BaseModel):
    """A release where the task's majority outcome changed from the release before it."""

    model_config = ConfigDict(frozen=True)
    release: str
    change: Literal["broken", "fixed"]
    decision: str = Field(description="The decision that made the release: promote, manual_promote, rollback.")
    rc: str | None = None
    remediation: str | None = None
    rollback_to: str | None = None


class TaskHistory(BaseModel):
    """What `ratchet why` shows: a task's outcome across all decisions and along the canonical line."""

    model_config = ConfigDict(frozen=True)
    version: int = 1
    agent: str
    task_id: str
    decisions: list[TaskDecision] = Field(description="Final decision per RC whose gate evidence has the task.")
    canonical: list[ReleaseState] = Field(description="Releases whose stored gate outcomes include the task.")
    unmeasured: list[str] = Field(default_factory=list, description="Releases with no stored outcomes for it.")
    events: list[LineEvent] = Field(default_factory=list, description="Where it broke or was fixed on the line.")
    summary: str


def task_history(line: ReleaseLine, task_id: str) -> TaskHistory:
    """The task across every final decision with gate evidence and every release; UserError for an unknown id."""
    finals = [e for e in final_decisions(line.entries) if e.evidence]
    line.reader.prefetch(finals, [outcome_file("baseline"), outcome_file("candidate")])
    decisions = [d for e in finals if (d := _task_decision(line, e, task_id))]
    canonical, unmeasured = [], []
    for release in line.releases:
        source = line.source(release)
        runs = line.reader.task_runs(line.entry(source), source.side, task_id) if source else None
        if source and runs:
            canonical.append(ReleaseState(release=release, runs=runs, source=source))
        else:
            unmeasured.append(release)
    if not decisions and not canonical:
        raise UserError(_unknown_task(line, task_id))
    events = _line_events(line, canonical)
    summary = f"{task_id} on {line.agent}'s canonical line: {_story(canonical, events)}.{_not_promoted(decisions)}"
    return TaskHistory(
        agent=line.agent,
        task_id=task_id,
        decisions=decisions,
        canonical=canonical,
        unmeasured=unmeasured,
        events=events,
        summary=summary,
    )


def _task_decision(line: ReleaseLine, entry: LedgerEntry, task_id: str) -> TaskDecision | None:
    baseline = line.reader.task_runs(entry, "baseline", task_id)
    candidate = line.reader.task_runs(entry, "candidate", task_id)
    if baseline is None and candidate is None:
        return None
    kind = _KIND_OF[f"{baseline.letter}->{candidate.letter}"] if baseline and candidate else None
    confirmed = None
    if kind in ("P->F", "F->P") and (flips := line.reader.read(entry, FLIPS)):
        row = flip_row(flips, task_id) or {}
        confirmed = {"True": True, "False": False}.get(row.get("confirmed", ""))
    return TaskDecision(
        seq=entry.seq,
        decision=entry.decision,
        rc=entry.rc or "",
        base_release=entry.base_release,
        release=entry.release,
        remediation=entry.remediation,
        intent=entry.intent,
        baseline=baseline,
        candidate=candidate,
        kind=kind,
        confirmed=confirmed,
    )


def _line_events(line: ReleaseLine, states: list[ReleaseState]) -> list[LineEvent]:
    events = []
    for before, after in zip(states, states[1:], strict=False):
        if before.runs.passed != after.runs.passed:
            made = line.made_by[after.release]
            events.append(
                LineEvent(
                    release=after.release,
                    change="fixed" if after.runs.passed else "broken",
                    decision=made.decision,
                    rc=made.rc,
                    remediation=made.remediation,
                    rollback_to=made.rollback_to,
                )
            )
    return events


def _story(states: list[ReleaseState], events: list[LineEvent]) -> str:
    """When the task broke and was fixed on the line of releases, and by which decision (the first two and
    last three changes when there are more)."""
    if not states:
        return "no release has stored gate outcomes for it"
    first, last = states[0], states[-1]
    if not events:
        span = f"{first.release} to {last.release}" if len(states) > 1 else first.release
        return (
            f"passing in every release ({span}), never broken"
            if first.runs.passed
            else f"failing in every release ({span}), never fixed"
        )
    told = [f"{_verb(e, i, events)} by {_cause(e)} in {e.release}" for i, e in enumerate(events)]
    if len(told) > STORY_EVENTS + 2:
        told = [*told[:2], f"... {len(told) - STORY_EVENTS} more changes", *told[-STORY_EVENTS:]]
    end = f"{'passing' if last.runs.passed else 'failing'} now ({last.release})"
    if not any(e.change == "broken" for e in events):
        end += ", never broken since"
    return "; ".join([f"{'passing' if first.runs.passed else 'failing'} in {first.release}", *told, end])


def _verb(event: LineEvent, index: int, events: list[LineEvent]) -> str:
    if event.change == "fixed":
        return "fixed"
    return "broken again" if any(e.change == "broken" for e in events[:index]) else "first broken"


def _cause(event: LineEvent) -> str:
    if event.decision == "rollback":
        return f"the rollback to {event.rollback_to}"
    manual = ", promoted by hand" if event.decision == "manual_promote" else ""
    return f"{event.rc} ({event.remediation or 'no remediation id'}{manual})"


def _not_promoted(decisions: list[TaskDecision]) -> str:
    """Candidates that flipped the task but did not reach the line (the latest few)."""
    flipped = [d for d in decisions if d.release is None and d.kind in ("P->F", "F->P")]
    if not flipped:
        return ""
    told = [
        f"{d.rc} ({d.remediation or 'no remediation id'}, {d.decision}) {'broke' if d.kind == 'P->F' else 'fixed'} it"
        for d in flipped[-STORY_EVENTS:]
    ]
    more = f"{len(flipped)} candidates flipped it, the latest: " if len(flipped) > STORY_EVENTS else ""
    return f" Not promoted: {more}{'; '.join(told)}."


def _unknown_task(line: ReleaseLine, task_id: str) -> str:
    found = next(
        (
            (e, data)
            for e in reversed(final_decisions(line.entries))
            if (data := line.reader.read(e, outcome_file("candidate")))
        ),
        None,
    )
    if found is None:
        return f"{line.agent} has no stored gate outcomes yet; run `ratchet cycle --agent {line.agent}` first"
    entry, data = found
    close = difflib.get_close_matches(task_id, task_ids(data), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return (
        f"no gate outcome of {line.agent} has a task {task_id!r}; {hint}the ids are the first column of "
        f"`git show {entry.rc_commit or entry.rc}:{entry.evidence}/{outcome_file('candidate')}`"
    )
