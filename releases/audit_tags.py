"""`ratchet verify`'s tag checks (releases.audit): every release and rejected tag against its ledger entry,
and every such entry against its tag."""

from __future__ import annotations

from ratchet.releases.audit_git import TagRef
from ratchet.releases.audit_model import LedgerLine, Problem, line_where
from ratchet.releases.consistency import agent_tags, expected_tags, tag_problems
from ratchet.releases.ledger import LedgerEntry, parse_trailers


def check_tags(
    agent: str, lines: list[LedgerLine], added_by: dict[int, str], tags: list[TagRef], main_line: set[str]
) -> tuple[int, list[Problem]]:
    """Every release and rejected tag against its ledger entry, and every such entry against its tag: the
    write commands' check (releases.consistency.tag_problems), then each tag's form, target and trailers."""
    by_name = {t.name: t for t in tags}
    numbered = [(line.number, line.entry) for line in lines]
    problems = [
        Problem(agent=agent, kind="tag", where=p.where, message=p.message)
        for p in tag_problems(agent, numbered, by_name, main_line)
    ]
    for name, (number, entry) in expected_tags(agent, numbered).items():
        tag = by_name.get(name)
        if tag is not None:
            commit = added_by.get(number) if entry.release else entry.rc_commit
            moved = commit is not None and tag.commit != commit and (tag.commit in main_line or not entry.release)
            problems += _tag_problems(
                agent, name, tag, LedgerLine(number=number, entry=entry), commit if moved else None
            )
    return len(agent_tags(agent, by_name)), problems


def _tag_problems(agent: str, name: str, tag: TagRef, line: LedgerLine, moved_from: str | None) -> list[Problem]:
    """A present tag: annotated, where the ledger line put it (`moved_from`: the commit it should point at, when
    it was moved), and carrying the entry's facts."""
    entry = line.entry
    messages = []
    if not tag.annotated:
        messages.append(
            "is a lightweight tag; Ratchet's tags are annotated and carry the ledger entry's facts as trailers"
        )
    if moved_from:
        made = "was added by commit" if entry.release else "rejects the RC commit"
        messages.append(
            f"points at {tag.commit[:10]}, but {line_where(agent, line.number)} "
            f"{made} {moved_from[:10]}; the tag was moved (Ratchet never moves tags)"
        )
    if tag.annotated and (differ := _trailer_differences(parse_trailers(tag.message), entry)):
        messages.append(f"its trailers disagree with {line_where(agent, line.number)}: {differ}")
    return [Problem(agent=agent, kind="tag", where=f"tag {name}", message=m) for m in messages]


def _trailer_differences(carried: dict[str, str], entry: LedgerEntry) -> str:
    """What the tag's `Ratchet-*` trailers say differently from the ledger entry ('' when they agree)."""
    if not carried:
        return "the tag carries no Ratchet-* trailers"
    recorded = {key: " ".join(value.split()) for key, value in entry.trailers().items()}
    return "; ".join(
        f"{key} is {carried.get(key)!r}, the ledger says {recorded.get(key)!r}"
        for key in sorted(set(carried) | set(recorded))
        if carried.get(key) != recorded.get(key)
    )
