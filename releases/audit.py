"""`ratchet verify`: check that a workspace's release history is exactly what Ratchet recorded.

Per agent: the ledger's hash chain and fields; that main's history only ever appended one ledger
line per commit and changed `agents/<agent>/` only in the commit that recorded a release, holding the
artifact that release claims; that tags and ledger agree and main still holds every recorded release
(releases.consistency, the check every write command makes first), and that each tag carries its
ledger entry's facts (releases.audit_tags); that every decision follows a state that allows it and every manual decision
names a person and a reason (releases.audit_decisions); and that every automatic gate verdict
re-derives from its stored outcome tables and policy (releases.rederive), or is provably legacy.

Git is read in bulk, whatever the number of releases: one `git log --raw` over main's first-parent
history (paths and blob ids of every change), one `git for-each-ref` for the tags with their
messages, and `git cat-file --batch` for file contents (releases.audit_git). Ledger blobs of past
commits are recognised by hashing the prefixes of the current ledger, so an honest history needs
no old blob read at all.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import ValidationError

from ratchet.agents import StateError, UserError
from ratchet.releases.audit_decisions import (
    check_decision_states,
    check_manual_decisions,
    legacy_lines,
    released_artifacts,
)
from ratchet.releases.audit_git import MainCommit, TagRef, blob_id, read_main_history, read_objects, read_tags
from ratchet.releases.audit_model import AgentAudit, AuditReport, LedgerLine, Problem, line_where
from ratchet.releases.audit_tags import check_tags
from ratchet.releases.evidence import REDERIVATION_FILES, OutcomeCache, evidence_dir
from ratchet.releases.gitstore import GitStore
from ratchet.releases.ledger import GENESIS, MAIN, RELEASING, LedgerEntry, ledger_path, rc_branch
from ratchet.releases.rederive import is_gate_decision, rederive

__all__ = ["AgentAudit", "AuditReport", "Problem", "read_ledger", "verify_workspace"]


def verify_workspace(workspace: Path, agent: str | None = None) -> AuditReport:
    """Run every check on the workspace's main branch, for one agent or all of them."""
    with GitStore(workspace) as git:
        main = git.resolve(f"refs/heads/{MAIN}")
        if main is None:
            raise StateError(f"{git.path}: no branch {MAIN}; is this a Ratchet workspace?")
        path = git.path
    commits = read_main_history(path, main)
    tags = read_tags(path)
    names = _agents(commits, tags)
    if agent is not None:
        if agent not in names:
            raise UserError(f"{path}: no agent {agent!r}; agents: {', '.join(names) or 'none'}")
        names = [agent]
    cache: OutcomeCache = {}
    audits = [_audit_agent(path, main, name, commits, tags, cache) for name in names]
    return AuditReport(workspace=str(path), main=main, agents=audits)


def _agents(commits: list[MainCommit], tags: list[TagRef]) -> list[str]:
    """Every agent with a ledger, an artifact folder or a release tag, now or ever on main."""
    found = {m.group(1) for t in tags if (m := re.fullmatch(r"(.+)/(?:v\d+|rc\d+-rejected)", t.name))}
    for commit in commits:
        for change in commit.changes:
            if m := re.match(r"(?:agents/([^/]+)/|releases/([^/]+)/ledger\.jsonl$)", change.path):
                found.add(m.group(1) or m.group(2))
    return sorted(found)


def _audit_agent(
    path: Path, main: str, agent: str, commits: list[MainCommit], tags: list[TagRef], cache: OutcomeCache
) -> AgentAudit:
    ledger = ledger_path(agent)
    text = read_objects(path, [f"{main}:{ledger}"])[f"{main}:{ledger}"]
    problems: list[Problem] = []
    if text is None:
        problems.append(
            Problem(
                agent=agent,
                kind="ledger",
                where=ledger,
                message=f"missing on {MAIN}; every agent's decisions are recorded there",
            )
        )
    lines, found = read_ledger(agent, text or b"")
    problems += found
    added_by, found = ledger_commits(path, agent, commits, text or b"")
    problems += found
    problems += artifact_commits(agent, commits, added_by, lines)
    problems += promotion_merges(agent, commits, added_by, lines)
    problems += released_artifacts(path, agent, lines, added_by)
    checked_tags, found = check_tags(agent, lines, added_by, tags, {c.sha for c in commits})
    problems += found
    problems += check_decision_states(agent, lines)
    problems += check_manual_decisions(agent, lines)
    gate = [line for line in lines if is_gate_decision(line.entry)]
    rederived, found, warnings = check_verdicts(path, agent, gate, cache, legacy_lines(lines))
    problems += found
    return AgentAudit(
        agent=agent,
        entries=len(lines),
        tags=checked_tags,
        gate_decisions=len(gate),
        rederived=rederived,
        problems=problems,
        warnings=warnings,
    )


def _commit_where(commit: MainCommit) -> str:
    subject = commit.subject if len(commit.subject) <= 60 else commit.subject[:57] + "..."
    return f"commit {commit.sha[:10]} ({subject!r})"


def read_ledger(agent: str, data: bytes) -> tuple[list[LedgerLine], list[Problem]]:
    """Every readable line, and a problem for each unreadable, off-chain or out-of-order one."""
    lines: list[LedgerLine] = []
    problems: list[Problem] = []
    prev: str | None = GENESIS
    releases: dict[str, int] = {}

    def problem(number: int, message: str) -> None:
        problems.append(Problem(agent=agent, kind="ledger", where=line_where(agent, number), message=message))

    for number, raw in enumerate(split_lines(data), start=1):
        if not raw.strip():
            continue
        try:
            entry = LedgerEntry.model_validate_json(raw)
        except ValidationError as exc:
            problem(number, f"unreadable ledger entry ({exc.errors()[0]['msg']}); the line was edited by hand")
            prev = None
            continue
        if entry.hash != entry.compute_hash():
            problem(
                number,
                f"the hash does not match the line's content (entry {entry.seq}, {entry.decision}); "
                f"the line was edited after Ratchet wrote it",
            )
        if prev is not None and entry.prev_hash != prev:
            problem(
                number,
                "prev_hash does not match the previous line's hash; a line before it was removed, "
                "reordered or rewritten",
            )
        if entry.seq != len(lines) + 1:
            problem(number, f"seq is {entry.seq}, expected {len(lines) + 1}")
        if entry.agent != agent:
            problem(number, f"the entry is for agent {entry.agent!r}, in {agent}'s ledger")
        if entry.release and entry.release in releases:
            problem(number, f"release {entry.release} was already recorded on line {releases[entry.release]}")
        elif entry.release:
            releases[entry.release] = number
        lines.append(LedgerLine(number=number, entry=entry))
        prev = entry.hash
    return lines, problems


def ledger_commits(
    path: Path,
    agent: str,
    commits: list[MainCommit],
    ledger: bytes,
) -> tuple[dict[int, str], list[Problem]]:
    """Which commit on main added each ledger line (by line number), and a problem for each commit
    that changed the ledger in any other way than appending one line."""
    file = ledger_path(agent)
    ends = [0] + [m.end() for m in re.finditer(b"\n", ledger)]
    if ledger and not ledger.endswith(b"\n"):
        ends.append(len(ledger))
    view = memoryview(ledger)
    size = len(commits[0].sha) if commits else 40
    prefixes = {blob_id(view[:end], size): count for count, end in enumerate(ends)}
    added_by: dict[int, str] = {}
    unknown: list[tuple[MainCommit, str, str]] = []
    for commit in commits:
        change = commit.change(file)
        if change is None:
            continue
        before = 0 if set(change.old) == {"0"} else prefixes.get(change.old)
        after = prefixes.get(change.new)
        if before is not None and after == before + 1:
            added_by[after] = commit.sha
        else:
            unknown.append((commit, change.old, change.new))
    blobs = read_objects(path, sorted({b for _, old, new in unknown for b in (old, new) if set(b) != {"0"}}))
    problems = []
    for commit, old, new in unknown:
        before_lines = split_lines(blobs.get(old) or b"")
        after_lines = split_lines(blobs.get(new) or b"")
        edit = _ledger_edit(before_lines, after_lines, deleted=set(new) == {"0"})
        if edit is None:
            added_by[len(after_lines)] = commit.sha
        else:
            problems.append(
                Problem(
                    agent=agent,
                    kind="main",
                    where=_commit_where(commit),
                    message=f"{edit} {file}; Ratchet only appends one line per decision and never edits the ledger",
                )
            )
    return added_by, problems


def split_lines(data: bytes) -> list[bytes]:
    """The ledger's lines as Ratchet writes them (one JSON object, then a newline)."""
    parts = data.split(b"\n")
    return parts[:-1] if parts and parts[-1] == b"" else parts


def _ledger_edit(old: list[bytes], new: list[bytes], deleted: bool) -> str | None:
    """None when `new` is `old` plus one line; else what the commit did to the ledger."""
    if deleted:
        return "deletes"
    common = len(os.path.commonprefix([old, new]))
    if common == len(old):
        return None if len(new) == len(old) + 1 else f"appends {len(new) - len(old)} lines at once to"
    changed = [str(i + 1) for i in range(min(len(old), len(new))) if old[i] != new[i]]
    if changed:
        return f"changes line(s) {', '.join(changed[:10])} of"
    return f"removes line(s) {len(new) + 1}-{len(old)} of"


def artifact_commits(
    agent: str,
    commits: list[MainCommit],
    added_by: dict[int, str],
    lines: list[LedgerLine],
) -> list[Problem]:
    """Commits on main that change `agents/<agent>/` without appending a release to the ledger."""
    entry_added = {sha: number for number, sha in added_by.items()}
    by_number = {line.number: line.entry for line in lines}
    folder = f"agents/{agent}/"
    problems = []
    for commit in commits:
        touched = [c.path for c in commit.changes if c.path.startswith(folder)]
        if not touched:
            continue
        entry = by_number.get(entry_added.get(commit.sha, 0))
        if entry is not None and entry.decision in RELEASING:
            continue
        what = f"records a {entry.decision}, not a release" if entry else "adds no ledger entry"
        shown = ", ".join(touched[:3]) + (f" and {len(touched) - 3} more" if len(touched) > 3 else "")
        problems.append(
            Problem(
                agent=agent,
                kind="main",
                where=_commit_where(commit),
                message=f"changes {shown} on {MAIN} but {what}; the agent artifact only changes through a "
                f"recorded release (`ratchet cycle`, `promote`, `rollback`)",
            )
        )
    return problems


def promotion_merges(
    agent: str,
    commits: list[MainCommit],
    added_by: dict[int, str],
    lines: list[LedgerLine],
) -> list[Problem]:
    """A promotion's commit on main merges the very RC commit its ledger entry names."""
    by_sha = {c.sha: c for c in commits}
    problems = []
    for line in lines:
        entry, commit = line.entry, by_sha.get(added_by.get(line.number, ""))
        if entry.decision not in ("promote", "manual_promote") or commit is None:
            continue
        if entry.rc_commit in commit.parents[1:]:
            continue
        merged = ", ".join(p[:10] for p in commit.parents[1:]) or "nothing"
        problems.append(
            Problem(
                agent=agent,
                kind="main",
                where=_commit_where(commit),
                message=f"records {entry.release} ({line_where(agent, line.number)}) but merges "
                f"{merged}, not the RC commit {str(entry.rc_commit)[:10]} the ledger names",
            )
        )
    return problems


def _evidence_files(agent: str, entry: LedgerEntry) -> dict[str, str] | None:
    """`<rc_commit>:<evidence>/<file>` for each evidence file, or None when the entry names no RC's evidence."""
    number = (entry.rc or "").rsplit("/", 1)[-1]
    if (
        not number.isdigit()
        or entry.rc != rc_branch(agent, int(number))
        or entry.evidence != evidence_dir(agent, int(number))
        or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", entry.rc_commit or "")
    ):
        return None
    names = set(REDERIVATION_FILES) | {n for n in entry.outcome_hashes if re.fullmatch(r"[\w.-]+", n)}
    return {n: f"{entry.rc_commit}:{entry.evidence}/{n}" for n in sorted(names)}


def check_verdicts(
    path: Path,
    agent: str,
    gate: list[LedgerLine],
    cache: OutcomeCache,
    legacy: set[int],
) -> tuple[int, list[Problem], list[Problem]]:
    """Re-derive every automatic gate verdict from its evidence on the RC branch: (re-derived, problems,
    warnings); only a `legacy` line (by number) may lack outcome hashes. All evidence files are read in one
    `git cat-file --batch`."""
    requests = {line.number: _evidence_files(agent, line.entry) or {} for line in gate}
    contents = read_objects(path, [name for files in requests.values() for name in files.values()])
    rederived, problems, warnings = 0, [], []
    for line in gate:
        entry, where = line.entry, line_where(agent, line.number)
        subject = f"{entry.decision} of {entry.rc}"
        if entry.outcome_hashes and not requests[line.number]:
            problems.append(
                Problem(
                    agent=agent,
                    kind="verdict",
                    where=where,
                    message=f"{subject}: rc, rc_commit {entry.rc_commit!r} and evidence "
                    f"{entry.evidence!r} do not name an RC's evidence folder",
                )
            )
            continue
        result = rederive(
            entry,
            {n: contents.get(name) for n, name in requests[line.number].items()},
            cache,
            legacy=line.number in legacy,
        )
        rederived += result.rederived
        problems += [
            Problem(agent=agent, kind="verdict", where=where, message=f"{subject}: {m}") for m in result.problems
        ]
        if result.warning:
            warnings.append(Problem(agent=agent, kind="verdict", where=where, message=f"{subject}: {result.warning}"))
    return rederived, problems, warnings
