"""The release registry: decisions are ledger lines, releases are the tags they make, candidates are branches.

Names: release `<agent>/v<N>` (annotated tag on main), RC branch `rc/<agent>/<N>`,
rejected RC tag `<agent>/rc<N>-rejected`. The ledger on main defines the live release; a tag alone
never does. Writers hold one file lock per workspace, finish an interrupted decision, and stop
unless the ledger, the tags and main agree (releases.consistency).
Every decision moves main in one commit (merge and/or ledger line together) with a
compare-and-swap ref update, then tags; the working tree follows main if it is checked out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict

from ratchet.agents import StateError, UserError
from ratchet.releases.consistency import live_release, require_consistent
from ratchet.releases.crashpoints import crash_point
from ratchet.releases.evidence import evidence_dir
from ratchet.releases.gitstore import BOT, GitStore, Identity
from ratchet.releases.ledger import (
    AWAITING_PERSON,
    MAIN,
    RELEASING,
    LedgerEntry,
    append_line,
    ledger_path,
    new_entry,
    parse_ledger,
    rc_branch,
    rejected_tag,
    release_tag,
    trailer_block,
)
from ratchet.releases.recovery import complete_interrupted

__all__ = [
    "MAIN",
    "CandidateRef",
    "Registry",
    "ReleaseRef",
    "evidence_dir",
    "initialize",
    "rc_branch",
    "rejected_tag",
    "release_tag",
]


class ReleaseRef(BaseModel):
    """A release on the canonical line."""

    model_config = ConfigDict(frozen=True)
    agent: str
    number: int
    tag: str
    commit: str


class CandidateRef(BaseModel):
    """A release candidate branch."""

    model_config = ConfigDict(frozen=True)
    agent: str
    number: int
    branch: str
    base_commit: str
    change_commit: str
    commit: str


class Registry:
    """Reads and writes one workspace's version lines."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self._lock = FileLock(str(workspace / ".ratchet" / "locks" / "registry.lock"))
        self.recovered: list[str] = []  # what complete_interrupted repaired in this process

    def store(self) -> GitStore:
        return GitStore(self.workspace)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the workspace's writer lock (readers never take it), finish an interrupted decision, then
        StateError unless the ledger, the tags and main agree (releases.consistency)."""
        (self.workspace / ".ratchet" / "locks").mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=30)
        except Timeout as exc:
            raise StateError(f"{self._lock.lock_file}: another Ratchet process is writing this workspace") from exc
        try:
            with self.store() as git:
                self.recovered.extend(complete_interrupted(git))
                require_consistent(git.path)
            yield
        finally:
            self._lock.release()

    def require_consistent(self) -> None:
        """Finish any interrupted decision, then fail before any work when the ledger, the tags and main
        disagree (a tag without a ledger entry, a release main no longer holds): every write command's first step."""
        with self._writing():
            pass

    def require_clean(self) -> None:
        """Finish any interrupted decision, then fail before any work when the checked-out main has
        uncommitted changes."""
        with self._writing(), self.store() as git:
            git.require_clean_checkout(MAIN)

    def current_release(self, agent: str) -> ReleaseRef:
        """The live release: the ledger's last release on main (a tag alone never makes one)."""
        live = live_release(self.ledger(agent))
        if live is None or live.release is None:
            raise StateError(
                f"agent {agent!r} has no release {agent}/v1 in {ledger_path(agent)}; is this a Ratchet workspace?"
            )
        with self.store() as git:
            commit = git.resolve(f"refs/tags/{live.release}") or ""
        return ReleaseRef(agent=agent, number=_release_number(live.release), tag=live.release, commit=commit)

    def ledger(self, agent: str, rev: str = MAIN) -> list[LedgerEntry]:
        with self.store() as git:
            data = git.read(rev, ledger_path(agent))
        return parse_ledger(data.decode() if data else "", f"{rev}:{ledger_path(agent)}")

    def candidate(self, agent: str, number: int) -> CandidateRef:
        branch = rc_branch(agent, number)
        with self.store() as git:
            tip = git.resolve(f"refs/heads/{branch}")
            if tip is None:
                raise StateError(f"no release candidate {branch}; `ratchet history` lists them")
            base = git.repo.commit(tip)
            while base.parents and _is_evidence_commit(base.message):
                base = base.parents[0]
            return CandidateRef(
                agent=agent,
                number=number,
                branch=branch,
                base_commit=base.parents[0].hexsha,
                change_commit=base.hexsha,
                commit=tip,
            )

    def pending_candidate(self, agent: str, changes: dict[str, bytes | None]) -> CandidateRef | None:
        """The newest RC of `agent` if it has no decision yet, is built on the current main and holds
        exactly `changes`: what a cycle killed after making it left behind. None otherwise."""
        number = self.next_rc_number(agent) - 1
        if number < 1 or any(e.rc == rc_branch(agent, number) for e in self.ledger(agent)):
            return None
        rc = self.candidate(agent, number)
        with self.store() as git:
            if rc.base_commit != git.resolve(MAIN):
                return None
            changed = set(git.repo.git.diff("--name-only", rc.base_commit, rc.change_commit).splitlines())
            if changed != set(changes) or any(git.read(rc.change_commit, p) != d for p, d in changes.items()):
                return None
        return rc

    def next_rc_number(self, agent: str) -> int:
        with self.store() as git:
            numbers = [
                int(b.rsplit("/", 1)[1]) for b in git.branch_names(f"rc/{agent}/*") if b.rsplit("/", 1)[1].isdigit()
            ]
        return max(numbers, default=0) + 1

    def create_candidate(self, agent: str, changes: dict[str, bytes | None], message: str) -> CandidateRef:
        """Commit one proposed change on a new branch `rc/<agent>/<N>` from main."""
        with self._writing(), self.store() as git:
            number = self.next_rc_number(agent)
            base = _require(git, MAIN)
            commit = git.commit([base], changes, message)
            crash_point("candidate:after-commit")
            branch = rc_branch(agent, number)
            git.update_ref(f"refs/heads/{branch}", commit, None, f"ratchet: create {branch}")
        return CandidateRef(
            agent=agent, number=number, branch=branch, base_commit=base, change_commit=commit, commit=commit
        )

    def add_evidence(self, rc: CandidateRef, files: dict[str, bytes], message: str) -> CandidateRef:
        """Commit evidence files under `releases/<agent>/rc-<N>/` on the RC branch."""
        folder = evidence_dir(rc.agent, rc.number)
        changes: dict[str, bytes | None] = {f"{folder}/{name}": data for name, data in files.items()}
        with self._writing(), self.store() as git:
            tip = _require(git, f"refs/heads/{rc.branch}")
            commit = git.commit([tip], changes, f"{EVIDENCE_PREFIX}{message}")
            crash_point("evidence:after-commit")
            git.update_ref(f"refs/heads/{rc.branch}", commit, tip, f"ratchet: evidence for {rc.branch}")
        crash_point("evidence:after-branch")
        return rc.model_copy(update={"commit": commit})

    def promote(self, rc: CandidateRef, notes: str, who: Identity = BOT, **entry: object) -> LedgerEntry:
        """Merge the RC into main with its ledger line, then tag the next release."""
        with self._writing(), self.store() as git:
            main = _require(git, MAIN)
            git.require_clean_checkout(MAIN)
            folder = f"agents/{rc.agent}"
            if git.tree_id(rc.base_commit, folder) != git.tree_id(main, folder):
                raise StateError(
                    f"{rc.branch} was built on an older {folder} than main has now; "
                    f"run a new cycle instead of promoting a stale candidate"
                )
            number = self.current_release(rc.agent).number + 1
            tag = release_tag(rc.agent, number)
            line = self._ledger_change(
                git, rc.agent, main, release=tag, rc=rc.branch, rc_commit=rc.commit, actor=str(who), **entry
            )
            merged = git.merge_trees(main, rc.commit)
            merge = git.commit(
                [main, rc.commit],
                line[0],
                f"Release {tag}: merge {rc.branch}\n\n{entry.get('intent', '')}",
                who=who,
                base=merged,
            )
            _move_main(git, main, merge, f"ratchet: promote {rc.branch} as {tag}")
            git.tag(tag, merge, _with_trailers(notes, line[1]), who=who)
        return line[1]

    def rollback(self, agent: str, to: str, reason: str, who: Identity) -> LedgerEntry:
        """A new release whose `agents/<agent>/` equals release `to`'s: history only moves forward."""
        with self._writing(), self.store() as git:
            main = _require(git, MAIN)
            git.require_clean_checkout(MAIN)
            recorded = [e.release for e in self.ledger(agent) if e.release and e.decision in RELEASING]
            target = git.resolve(f"refs/tags/{to}") if to in recorded else None
            if target is None:
                known = ", ".join(sorted(recorded, key=_release_number)) or "none"
                raise UserError(f"--to {to!r}: no release of {agent!r} with that name; releases: {known}")
            current = self.current_release(agent)
            folder = f"agents/{agent}"
            if git.tree_id(target, folder) == git.tree_id(main, folder):
                raise UserError(f"{agent}'s artifact on main already equals {to}'s; nothing to roll back")
            old, new = git.list_files(main, folder), git.list_files(target, folder)
            changes: dict[str, bytes | None] = {f"{folder}/{rel}": None for rel in old if rel not in new}
            changes.update({f"{folder}/{rel}": data for rel, data in new.items()})
            tag = release_tag(agent, current.number + 1)
            ledger_changes, entry = self._ledger_change(
                git,
                agent,
                main,
                decision="rollback",
                release=tag,
                base_release=current.tag,
                rollback_to=to,
                intent=f"Restore {to}'s artifact",
                actor=str(who),
                reason=reason,
            )
            changes.update(ledger_changes)
            commit = git.commit([main], changes, f"Release {tag}: roll back to {to}\n\n{reason}", who=who)
            _move_main(git, main, commit, f"ratchet: roll back {agent} to {to} as {tag}")
            notes = f"# {tag}\n\nRollback of {agent} to the artifact of {to} by {who}: {reason}\n"
            git.tag(tag, commit, _with_trailers(notes, entry), who=who)
        return entry

    def reject(self, rc: CandidateRef, message: str, who: Identity = BOT, **entry: object) -> LedgerEntry:
        """Record the rejection on main and tag the RC commit as rejected."""
        return self._record_only(rc, message, who, tag=rejected_tag(rc.agent, rc.number), **entry)

    def hold(self, rc: CandidateRef, who: Identity = BOT, **entry: object) -> LedgerEntry:
        """Record that the RC waits for a person's decision: `decision` is `hold` (the policy asks for a person) or
        `inconclusive` (the gate could not decide). Main gets the ledger line; no tag is made."""
        if entry.get("decision") not in AWAITING_PERSON:
            raise ValueError(f"hold records one of {AWAITING_PERSON}, not {entry.get('decision')!r}")
        return self._record_only(rc, "", who, tag=None, **entry)

    def _record_only(
        self, rc: CandidateRef, message: str, who: Identity, tag: str | None, **entry: object
    ) -> LedgerEntry:
        with self._writing(), self.store() as git:
            main = _require(git, MAIN)
            git.require_clean_checkout(MAIN)
            changes, written = self._ledger_change(
                git, rc.agent, main, rc=rc.branch, rc_commit=rc.commit, actor=str(who), **entry
            )
            commit = git.commit([main], changes, f"Ledger: {written.decision} {rc.branch}\n\n{written.reason}", who=who)
            _move_main(git, main, commit, f"ratchet: {written.decision} {rc.branch}")
            if tag:
                git.tag(tag, rc.commit, _with_trailers(message, written), who=who)
        return written

    def _ledger_change(
        self, git: GitStore, agent: str, main: str, **fields: object
    ) -> tuple[dict[str, bytes | None], LedgerEntry]:
        path = ledger_path(agent)
        text = (git.read(main, path) or b"").decode()
        entry = new_entry(parse_ledger(text, f"main:{path}"), agent=agent, **fields)
        return {path: append_line(text, entry).encode()}, entry


EVIDENCE_PREFIX = "Evidence: "


def _move_main(git: GitStore, old: str, new: str, reason: str) -> None:
    """The commit point of a decision: main moves to `new` (compare-and-swap), then the checkout follows."""
    crash_point("decision:after-commit")
    git.update_ref(f"refs/heads/{MAIN}", new, old, reason)
    crash_point("decision:after-main")
    git.sync_checkout(MAIN, old, new)
    crash_point("decision:after-checkout")


def _with_trailers(message: str, entry: LedgerEntry) -> str:
    """A tag message ending in the ledger entry's facts as git trailers."""
    return message.rstrip("\n") + "\n\n" + trailer_block(entry)


def _release_number(tag: str) -> int:
    return int(tag.rsplit("/v", 1)[1]) if re.search(r"/v\d+$", tag) else 0


def _is_evidence_commit(message: str | bytes) -> bool:
    text = message.decode() if isinstance(message, bytes) else message
    return text.startswith(EVIDENCE_PREFIX)


def _require(git: GitStore, rev: str) -> str:
    sha = git.resolve(rev)
    if sha is None:
        raise StateError(f"{git.path}: {rev} does not exist; is this a Ratchet workspace?")
    return sha


def initialize(workspace: Path, files: dict[str, bytes], agents: list[str], message: str) -> list[ReleaseRef]:
    """Create the workspace repository: one commit with `files` and each agent's first ledger
    line, checked out on `main`, and the first release tag `<agent>/v1` for each agent."""
    from git import Repo

    repo = Repo.init(workspace, initial_branch=MAIN)
    repo.close()
    changes: dict[str, bytes | None] = dict(files)
    entries = {}
    for agent in agents:
        entry = new_entry(
            [],
            agent=agent,
            decision="release",
            release=release_tag(agent, 1),
            actor=str(BOT),
            reason="initial release created by `ratchet init`",
        )
        changes[ledger_path(agent)] = append_line("", entry).encode()
        entries[agent] = entry
    with GitStore(workspace) as git:
        commit = git.commit([], changes, message)
        git.update_ref(f"refs/heads/{MAIN}", commit, None, "ratchet: init")
        git.repo.git.reset("--hard", "HEAD")
        refs = []
        for agent in agents:
            tag = release_tag(agent, 1)
            initial = f"# {tag}\n\nInitial release, created by `ratchet init`.\n"
            git.tag(tag, commit, _with_trailers(initial, entries[agent]))
            refs.append(ReleaseRef(agent=agent, number=1, tag=tag, commit=commit))
    return refs
