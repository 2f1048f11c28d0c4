"""Do the ledger, the tags and main agree? The check every write command makes first, and `verify` reports.

The ledger on main defines the live release (ARCHITECTURE.md): its last releasing entry, not the highest tag.
A release or rejected tag without a ledger entry, a recorded decision whose tag is missing, a release tag that
main's first-parent history no longer holds (main was rewritten), or an agent on main that is not its live
release's artifact stops `cycle`, `promote`, `reject` and `rollback` (Registry._writing) with one line, until
`ratchet verify` is clean. `verify` reports the same tag problems through `tag_problems` (releases.audit).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from ratchet.agents import StateError
from ratchet.releases.audit_git import TagRef, first_parent_line, folder_names, read_objects, read_tags, resolve_commit
from ratchet.releases.ledger import MAIN, RELEASING, LedgerEntry, ledger_path, parse_ledger, rejected_tag

NumberedEntry = tuple[int, LedgerEntry]  # (1-based line number in the ledger, entry)


class LineProblem(BaseModel):
    """One disagreement between the ledger, the tags and main."""

    model_config = ConfigDict(frozen=True)
    agent: str
    where: str
    message: str


def live_release(entries: Sequence[LedgerEntry]) -> LedgerEntry | None:
    """The ledger entry of the live release: the last one that made a release."""
    return next((e for e in reversed(entries) if e.release and e.decision in RELEASING), None)


def expected_tags(agent: str, lines: Sequence[NumberedEntry]) -> dict[str, NumberedEntry]:
    """Every release and rejected tag the ledger says exists, with the line that made it."""
    expected: dict[str, NumberedEntry] = {}
    for number, entry in lines:
        if entry.release and entry.decision in RELEASING:
            expected[entry.release] = (number, entry)
        elif entry.decision in ("reject", "manual_reject") and entry.rc:
            rc_number = entry.rc.rsplit("/", 1)[-1]
            expected[rejected_tag(agent, int(rc_number)) if rc_number.isdigit() else entry.rc] = (number, entry)
    return expected


def agent_tags(agent: str, tags: Collection[str]) -> list[str]:
    """The tags named like `agent`'s releases or rejected candidates."""
    pattern = re.compile(rf"{re.escape(agent)}/(?:v\d+|rc\d+-rejected)")
    return sorted(name for name in tags if pattern.fullmatch(name))


def tag_problems(
    agent: str,
    lines: Sequence[NumberedEntry],
    tags: Mapping[str, TagRef],
    main_line: Collection[str],
) -> list[LineProblem]:
    """Tags without a ledger entry, recorded decisions without their tag, release tags not on main."""
    ledger = ledger_path(agent)
    expected = expected_tags(agent, lines)
    problems = [
        LineProblem(
            agent=agent,
            where=f"tag {name}",
            message=f"has no ledger entry in {ledger}; Ratchet makes this tag only together with its ledger line",
        )
        for name in agent_tags(agent, tags)
        if name not in expected
    ]
    for name, (number, entry) in expected.items():
        tag = tags.get(name)
        if tag is None:
            problems.append(
                LineProblem(
                    agent=agent,
                    where=f"tag {name}",
                    message=f"is missing; {ledger} line {number} records {entry.decision} {entry.release or entry.rc}",
                )
            )
        elif entry.release and tag.commit not in main_line:
            problems.append(
                LineProblem(
                    agent=agent,
                    where=f"tag {name}",
                    message=f"points at {tag.commit[:10]}, which is not on {MAIN}: {MAIN} was "
                    f"rewritten after {ledger} line {number} recorded {entry.release}",
                )
            )
    return problems


def workspace_problems(path: Path) -> list[LineProblem]:
    """Every disagreement between ledgers, tags and main in the workspace at `path` (each agent)."""
    main = resolve_commit(path, f"refs/heads/{MAIN}")
    if main is None:
        return []  # no main: the command's own check names it
    tags = {t.name: t for t in read_tags(path)}
    main_line = first_parent_line(path, main)
    names = sorted(set(folder_names(path, main, "releases")) | {n.rsplit("/", 1)[0] for n in tags if "/" in n})
    ledgers = read_objects(path, [f"{main}:{ledger_path(name)}" for name in names])
    problems: list[LineProblem] = []
    for agent in names:
        data = ledgers.get(f"{main}:{ledger_path(agent)}")
        if data is None and not agent_tags(agent, tags):
            continue  # neither a ledger nor a tag of this name: not an agent
        entries = parse_ledger((data or b"").decode(), f"{MAIN}:{ledger_path(agent)}")
        found = tag_problems(agent, list(enumerate(entries, start=1)), tags, main_line)
        problems += found or _artifact_problems(path, main, agent, entries, tags)
    return problems


def _artifact_problems(
    path: Path, main: str, agent: str, entries: Sequence[LedgerEntry], tags: Mapping[str, TagRef]
) -> list[LineProblem]:
    """Main's `agents/<agent>/` is the live release's: nothing changed it outside a recorded release."""
    live = live_release(entries)
    tag = tags.get(live.release or "") if live else None
    if live is None or tag is None:
        return []
    folder = f"agents/{agent}"
    trees = read_objects(path, [f"{main}:{folder}", f"{tag.commit}:{folder}"])
    if trees.get(f"{main}:{folder}") == trees.get(f"{tag.commit}:{folder}"):
        return []
    return [
        LineProblem(
            agent=agent,
            where=f"{MAIN}:{folder}/",
            message=f"differs from {live.release}, the live release: a commit on {MAIN} changed the agent "
            f"outside a recorded release",
        )
    ]


def require_consistent(path: Path) -> None:
    """StateError naming the first disagreement (and how many more there are); nothing when all agree."""
    problems = workspace_problems(path)
    if not problems:
        return
    first = problems[0]
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    raise StateError(
        f"{first.agent}: {first.where} {first.message}{more}; the ledger, tags and {MAIN} disagree, so "
        f"nothing was written: run `ratchet verify` and repair the workspace first"
    )
