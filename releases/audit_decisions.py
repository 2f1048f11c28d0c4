"""`verify`'s checks of the decisions themselves (releases.audit).

Every decision must follow a state that allows it: `release` is only the first line (`ratchet init`), the gate
decides each candidate once (promote, reject, hold or inconclusive), a person promotes or rejects only a candidate
the gate held or found inconclusive (or, with an override, promotes one it rejected) and on the very commit the gate
saw, and a rollback restores a release recorded before it. A person's decision names a person
(releases.ledger.actor_problem) and a reason. A release made by a merge or a rollback holds exactly the artifact it
claims: the RC commit's, or the restored release's. And an automatic verdict without outcome hashes is accepted (as
a warning) only from a provably legacy line (`legacy_lines`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ratchet.releases.audit_git import read_objects
from ratchet.releases.audit_model import LedgerLine, Problem, ProblemKind, line_where
from ratchet.releases.ledger import AWAITING_PERSON, GATE_VERDICTS, RELEASING, actor_problem, release_tag

MANUAL = ("manual_promote", "manual_reject", "rollback")


def legacy_lines(lines: Sequence[LedgerLine]) -> set[int]:
    """The lines written before outcome hashes existed: ledger version 1, and no earlier line of a later
    version or with outcome hashes (Ratchet never went back to writing gate decisions without them)."""
    legacy: set[int] = set()
    for line in lines:
        if line.entry.version >= 2 or line.entry.outcome_hashes:
            break
        legacy.add(line.number)
    return legacy


def _what(line: LedgerLine) -> str:
    entry = line.entry
    return "override" if entry.override else entry.decision.replace("_", " ")


def check_manual_decisions(agent: str, lines: Sequence[LedgerLine]) -> list[Problem]:
    """Overrides, manual decisions and rollbacks name a person (not the bot) and a reason."""
    problems = []
    for line in lines:
        entry = line.entry
        if not (entry.override or entry.decision in MANUAL):
            continue

        found = []
        if entry.override and entry.decision != "manual_promote":
            found.append(
                f"marked as an override on a {entry.decision} entry; only a manual promotion overrides the gate"
            )
        if (wrong := actor_problem(entry.actor)) is not None:
            found.append(f"actor {wrong}")
        if not entry.reason.strip():
            found.append("no reason recorded; a person's decision must say why")
        where, what = line_where(agent, line.number), f"{_what(line)} of {entry.rc or entry.release}"
        problems += [Problem(agent=agent, kind="manual", where=where, message=f"{what}: {m}") for m in found]
    return problems


def check_decision_states(agent: str, lines: Sequence[LedgerLine]) -> list[Problem]:
    """Each decision follows a state that allows it (see the module's docstring)."""
    decided: dict[str, LedgerLine] = {}  # the last decision about each RC branch
    released: set[str] = set()
    problems = []
    for line in lines:
        entry = line.entry
        found = _state_problem(agent, line, decided.get(entry.rc or ""), released, first=line is lines[0])
        if found is not None:
            kind, message = found
            problems.append(Problem(agent=agent, kind=kind, where=line_where(agent, line.number), message=message))
        if entry.rc:
            decided[entry.rc] = line
        if entry.release and entry.decision in RELEASING:
            released.add(entry.release)
    return problems


def _state_problem(
    agent: str,
    line: LedgerLine,
    before: LedgerLine | None,
    released: set[str],
    first: bool,
) -> tuple[ProblemKind, str] | None:
    entry = line.entry
    if entry.decision == "release" and not (first and entry.release == release_tag(agent, 1)):
        return "ledger", (
            f"release {entry.release}: a 'release' entry is only the first line, made by `ratchet init` "
            f"for {release_tag(agent, 1)}; every later release comes from a promotion or a rollback"
        )
    if entry.decision in GATE_VERDICTS and before is not None:
        return "verdict", (
            f"{entry.decision} of {entry.rc}: line {before.number} already decided it "
            f"({before.entry.decision}); the gate decides each candidate once"
        )
    if entry.decision in ("manual_promote", "manual_reject"):
        return _manual_state_problem(line, before)
    if entry.decision == "rollback" and entry.rollback_to not in released:
        return "manual", (
            f"rollback to {entry.rollback_to}: no earlier line records that release; a rollback "
            f"restores a release of the ledger"
        )
    return None


def _manual_state_problem(line: LedgerLine, before: LedgerLine | None) -> tuple[ProblemKind, str] | None:
    entry = line.entry
    allowed = ("reject",) if entry.override else AWAITING_PERSON
    subject = f"{_what(line)} of {entry.rc}"
    if before is None:
        return "manual", (
            f"{subject}: no decision about {entry.rc} comes before it; a person decides only a "
            f"candidate the gate held or found inconclusive (or, with --override, promotes one it rejected)"
        )
    if before.entry.decision not in allowed:
        rule = (
            "an override follows a reject" if entry.override else "a manual decision follows a hold or an inconclusive"
        )
        return "manual", f"{subject}: follows {before.entry.decision} on line {before.number}, but {rule}"
    if entry.rc_commit != before.entry.rc_commit:
        state = {"hold": "held", "inconclusive": "found inconclusive", "reject": "rejected"}[before.entry.decision]
        return "manual", (
            f"{subject}: decides commit {str(entry.rc_commit)[:10]}, but {entry.rc} was {state} at "
            f"commit {str(before.entry.rc_commit)[:10]} (line {before.number}); a person decides on "
            f"what the gate saw"
        )
    return None


def released_artifacts(
    path: Path,
    agent: str,
    lines: Sequence[LedgerLine],
    added_by: dict[int, str],
) -> list[Problem]:
    """A promotion's commit holds the RC commit's `agents/<agent>/`, a rollback's the restored release's."""
    made_by = {
        line.entry.release: added_by.get(line.number)
        for line in lines
        if line.entry.release and line.entry.decision in RELEASING
    }
    pairs: dict[int, tuple[str, str]] = {}
    for line in lines:
        entry, commit = line.entry, added_by.get(line.number)
        source = (
            entry.rc_commit
            if entry.decision in ("promote", "manual_promote")
            else made_by.get(entry.rollback_to or "")
            if entry.decision == "rollback"
            else None
        )
        if commit and source:
            pairs[line.number] = (commit, source)
    folder = f"agents/{agent}"
    trees = read_objects(path, [f"{sha}:{folder}" for pair in pairs.values() for sha in pair])
    problems = []
    for line in lines:
        if line.number not in pairs:
            continue
        commit, source = pairs[line.number]
        if trees.get(f"{commit}:{folder}") != trees.get(f"{source}:{folder}"):
            problems.append(_artifact_problem(agent, line, commit, source))
    return problems


def _artifact_problem(agent: str, line: LedgerLine, commit: str, source: str) -> Problem:
    entry, where = line.entry, line_where(agent, line.number)
    if entry.decision == "rollback":
        return Problem(
            agent=agent,
            kind="manual",
            where=where,
            message=f"rollback to {entry.rollback_to} ({entry.release}): agents/{agent}/ at commit "
            f"{commit[:10]} is not {entry.rollback_to}'s; a rollback restores its artifact exactly",
        )
    return Problem(
        agent=agent,
        kind="main",
        where=where,
        message=f"{entry.decision} of {entry.rc} ({entry.release}): agents/{agent}/ at commit {commit[:10]} "
        f"is not the RC commit {source[:10]}'s; a release holds exactly what was decided on",
    )
