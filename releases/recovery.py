"""Finish what an interrupted decision left half-done, before the next write.

A decision is written in steps (releases/crashpoints.py names them): RC branch, evidence on the
RC branch, then main moves in one compare-and-swap to a commit that holds the ledger line, then
the checked-out files follow main, then the tag is made. Main's move is the commit point:

- killed before it: the ledger has no entry, main is untouched; what was written is an RC
  branch (or a commit no ref points at, which git's gc collects). The next cycle resumes the
  same RC (Registry.pending_candidate) and records the decision again.
- killed after it: the entry is on main and counts. Recovery makes the rest true: the
  checked-out files are moved from main's parent to main if they still show the parent, and
  every missing release or rejected tag is created from the ledger entry and its evidence.

Runs under the workspace's writer lock, at the start of every write and of every cycle.
"""

from __future__ import annotations

import re
from pathlib import Path

from ratchet.agents import StateError
from ratchet.releases.gitstore import GitStore, Identity
from ratchet.releases.ledger import MAIN, LedgerEntry, ledger_path, parse_ledger, trailer_block
from ratchet.releases.notes import ReleaseNotes

_ACTOR = re.compile(r"^(?P<name>[^<>]+?)\s*<(?P<email>[^<>]+)>")


def complete_interrupted(git: GitStore) -> list[str]:
    """Repair the checkout and tags after an interrupted decision; what was done, one line each."""
    done = _sync_stale_checkout(git)
    tags = set(git.tag_names("*"))  # one listing, whatever the length of the history
    for agent in _agents(git):
        text = (git.read(MAIN, ledger_path(agent)) or b"").decode()
        for entry in parse_ledger(text, f"{MAIN}:{ledger_path(agent)}"):
            made = _make_missing_tag(git, agent, entry, tags)
            if made:
                done.append(made)
    return done


def _sync_stale_checkout(git: GitStore) -> list[str]:
    """main moved but the files did not follow: they still equal main's first parent exactly."""
    if not git.checked_out(MAIN):
        return []
    lock = Path(git.repo.git_dir) / "index.lock"
    if lock.exists():
        raise StateError(
            f"{lock} exists: a git command was interrupted; if no git process is running, remove it "
            f"and re-run (nothing else was changed)"
        )
    git.repo.git.update_index("-q", "--refresh", with_exceptions=False)
    if not git.dirty_paths():
        return []
    main = git.repo.commit(MAIN)
    if not main.parents:
        return []
    parent = main.parents[0].hexsha
    at_parent = (
        git.repo.git.diff("--quiet", parent, "--", with_exceptions=False, with_extended_output=True)[0] == 0
        and git.repo.git.diff("--cached", "--quiet", parent, "--", with_exceptions=False, with_extended_output=True)[0]
        == 0
    )
    if not at_parent:
        return []  # somebody's own edits: require_clean_checkout names them
    git.repo.git.read_tree("-m", "-u", parent, main.hexsha)
    return [
        f"checked-out files moved from {parent[:10]} to main ({main.hexsha[:10]}), which an interrupted "
        f"decision had already moved"
    ]


def _agents(git: GitStore) -> list[str]:
    out = git.repo.git.ls_tree("--name-only", f"{MAIN}:releases", with_exceptions=False)
    return [name for name in out.splitlines() if git.read(MAIN, ledger_path(name)) is not None]


def _make_missing_tag(git: GitStore, agent: str, entry: LedgerEntry, tags: set[str]) -> str | None:
    if entry.release and entry.decision != "release":
        name = entry.release
    elif entry.decision in ("reject", "manual_reject") and entry.rc and entry.rc_commit:
        name = f"{agent}/rc{entry.rc.rsplit('/', 1)[1]}-rejected"
    else:
        return None
    if name in tags:
        return None
    target = _commit_adding(git, agent, entry) if entry.release else str(entry.rc_commit)
    message = _notes(git, entry, name).rstrip("\n") + "\n\n" + trailer_block(entry)
    git.tag(name, target, message, who=_identity(entry.actor))
    return f"tag {name} created: ledger entry {entry.seq} ({entry.decision}) was recorded but not tagged"


def _commit_adding(git: GitStore, agent: str, entry: LedgerEntry) -> str:
    """The commit on main's first-parent line whose ledger first holds `entry`."""
    path = ledger_path(agent)
    for sha in git.repo.git.log("--first-parent", "--format=%H", MAIN, "--", path).splitlines():
        commit = git.repo.commit(sha)
        before = git.read(commit.parents[0].hexsha, path) if commit.parents else None
        now = git.read(sha, path) or b""
        if entry.hash.encode() in now and (before is None or entry.hash.encode() not in before):
            return sha
    raise StateError(f"{MAIN}:{path}: no commit adds ledger entry {entry.seq}; run `ratchet verify`")


def _notes(git: GitStore, entry: LedgerEntry, tag: str) -> str:
    data = git.read(entry.rc_commit, f"{entry.evidence}/notes.json") if entry.rc_commit and entry.evidence else None
    if data is None:
        return f"# {tag}\n\n{entry.decision} by {entry.actor}: {entry.reason}\n"
    notes = ReleaseNotes.model_validate_json(data)
    return notes.model_copy(
        update={
            "title": tag if entry.release else f"{entry.rc} (rejected)",
            "decision": entry.decision,
            "actor": entry.actor,
        }
    ).markdown()


def _identity(actor: str) -> Identity:
    match = _ACTOR.match(actor)
    return (
        Identity(name=match.group("name"), email=match.group("email"))
        if match
        else Identity(name="Ratchet Bot", email="ratchet-bot@localhost")
    )
