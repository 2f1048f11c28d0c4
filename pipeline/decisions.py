"""Manual decisions: on release candidates the gate put on hold or found inconclusive, overrides of a reject,
rollbacks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from git import Repo

from ratchet.agents import StateError, UserError
from ratchet.releases import (
    AWAITING_PERSON,
    NOTES_JSON,
    CandidateRef,
    GitStore,
    Identity,
    LedgerEntry,
    Registry,
    ReleaseNotes,
    actor_problem,
    evidence_dir,
    release_tag,
)

IDENTITY = re.compile(r"^\s*(?P<name>[^<>]+?)\s*<(?P<email>[^<>@\s]+@[^<>\s]+)>\s*$")


def parse_rc(name: str) -> tuple[str, int]:
    match = re.fullmatch(r"rc/([a-z][a-z0-9_-]*)/(\d+)", name.strip())
    if not match:
        raise UserError(f"{name!r} is not a release candidate name; expected rc/<agent>/<N>, e.g. rc/coder/3")
    return match.group(1), int(match.group(2))


def resolve_actor(workspace: Path, actor: str | None) -> Identity:
    """The person deciding: `--actor "Name <email>"`, else git's user.name / user.email; never Ratchet's own
    identity (`verify` would fail on the decision forever: releases.ledger.actor_problem)."""
    if actor:
        match = IDENTITY.match(actor)
        if not match:
            raise UserError(f"--actor {actor!r}: expected 'Name <email>'")
        return _person(Identity(name=match.group("name"), email=match.group("email")), "--actor")
    with Repo(workspace) as repo:  # `git config` honours GIT_CONFIG_GLOBAL and friends; GitPython's reader does not
        name = repo.git.config("--get", "user.name", with_exceptions=False).strip()
        email = repo.git.config("--get", "user.email", with_exceptions=False).strip()
    if not name or not email:
        raise UserError("who is deciding? pass --actor 'Name <email>' or set git config user.name and user.email")
    return _person(Identity(name=str(name), email=str(email)), "git config user.name / user.email")


def _person(who: Identity, source: str) -> Identity:
    problem = actor_problem(str(who))
    if problem is not None:
        raise UserError(f"{source}: {problem}; pass --actor 'Your Name <you@example.com>'")
    return who


# what a manual decision carries over from the gate's entry: the evidence it decides on
CARRIED_FIELDS = {
    "base_release",
    "intent",
    "remediation",
    "fixes",
    "regressions",
    "gate_pass_rate",
    "baseline_gate_pass_rate",
    "holdout_pass_rate",
    "policy_hash",
    "evidence",
    "stage",
    "flip_counts",
    "outcome_hashes",
}


def decide_manually(
    workspace: Path,
    rc_name: str,
    decision: Literal["promote", "reject"],
    reason: str,
    actor: Identity,
    override: bool = False,
) -> tuple[LedgerEntry, str | None]:
    """Promote or reject an RC on hold or found inconclusive by the gate, recording who and why; with `override`,
    promote an RC the gate rejected (the ledger marks it). Returns the entry and the new tag."""
    if not reason.strip():
        raise UserError("--reason is required: say why, it goes into the ledger")
    agent, number = parse_rc(rc_name)
    registry = Registry(workspace)
    registry.require_consistent()
    rc = registry.candidate(agent, number)
    held, overriding = _decidable(rc, _last_entry(registry.ledger(agent), rc.branch), decision, override)
    notes = _held_notes(workspace, rc.branch, agent, number)
    fields = held.model_dump(include=CARRIED_FIELDS)
    who = f"{actor} (manual)"
    if decision == "promote":
        tag = release_tag(agent, registry.current_release(agent).number + 1)
        how = "promoted against the gate's reject verdict" if overriding else "promoted"
        text = notes.model_copy(
            update={
                "title": tag,
                "decision": "promote",
                "actor": who,
                "reasons": [*notes.reasons, f"{how} by {actor}: {reason}"],
            }
        ).markdown()
        return registry.promote(
            rc, text, who=actor, decision="manual_promote", reason=reason, override=overriding, **fields
        ), tag
    text = notes.model_copy(
        update={
            "title": f"{rc.branch} (rejected)",
            "decision": "reject",
            "actor": who,
            "reasons": [*notes.reasons, f"rejected by {actor}: {reason}"],
        }
    ).markdown()
    return registry.reject(rc, text, who=actor, decision="manual_reject", reason=reason, **fields), None


def _decidable(
    rc: CandidateRef, held: LedgerEntry | None, decision: Literal["promote", "reject"], override: bool
) -> tuple[LedgerEntry, bool]:
    """The gate's entry the decision is made on, and whether it overrides a gate rejection; StateError when
    the candidate cannot take it: neither on hold nor inconclusive (nor rejected, with `override`), or moved since
    the gate decided."""
    overriding = override and decision == "promote" and held is not None and held.decision == "reject"
    if override and not overriding:
        state = _state(held)
        hint = "; it waits for a person: promote it without --override" if state in AWAITING_PERSON else ""
        raise StateError(f"--override promotes a candidate the gate rejected; {rc.branch} is not one ({state}){hint}")
    if held is None or (not overriding and held.decision not in AWAITING_PERSON):  # overriding needs a gate entry
        state = _state(held)
        hint = "; to promote it against the gate's verdict add --override" if state == "reject" else ""
        raise StateError(
            f"{rc.branch} is not on hold or inconclusive ({state}); only candidates the gate left to a person "
            f"take a manual decision{hint}"
        )
    if rc.commit != held.rc_commit:
        raise StateError(
            f"{rc.branch} moved to {rc.commit[:10]} after the gate decided on {str(held.rc_commit)[:10]}; "
            f"a person decides on what the gate saw: run a new cycle for the new commit"
        )
    return held, overriding


def _state(entry: LedgerEntry | None) -> str:
    return entry.decision if entry else "no decision recorded"


def _last_entry(entries: list[LedgerEntry], branch: str) -> LedgerEntry | None:
    return next((e for e in reversed(entries) if e.rc == branch), None)


def _held_notes(workspace: Path, branch: str, agent: str, number: int) -> ReleaseNotes:
    with GitStore(workspace) as git:
        data = git.read(f"refs/heads/{branch}", f"{evidence_dir(agent, number)}/{NOTES_JSON}")
    if data is None:
        raise StateError(f"{branch}: evidence notes.json missing; the candidate was not recorded by a cycle")
    return ReleaseNotes.model_validate_json(data)


def roll_back(workspace: Path, agent: str, to: str, reason: str, actor: Identity) -> LedgerEntry:
    """A new release of `agent` whose artifact equals release `to` (e.g. coder/v1 or just v1)."""
    if not reason.strip():
        raise UserError("--reason is required: say why, it goes into the ledger")
    target = to if "/" in to else f"{agent}/{to if to.startswith('v') else 'v' + to}"
    registry = Registry(workspace)
    registry.require_consistent()
    return registry.rollback(agent, target, reason, actor)
