"""The ledger's hash chain: any edit, deletion or reordering is caught and the line named."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pydantic
import pytest

from ratchet.agents.errors import StateError
from ratchet.releases.ledger import (
    GENESIS,
    LEDGER_VERSION,
    LedgerEntry,
    append_line,
    ledger_path,
    new_entry,
    parse_ledger,
)

SOURCE = "main:releases/coder/ledger.jsonl"


def _chain(length: int = 4) -> tuple[str, list[LedgerEntry]]:
    text, entries = "", []
    kinds = ["release", "promote", "reject", "hold", "manual_promote", "manual_reject"]
    for index in range(length):
        entry = new_entry(
            entries,
            agent="coder",
            decision=kinds[index % len(kinds)],
            release=f"coder/v{index + 1}",
            rc=f"rc/coder/{index}" if index else None,
            actor="Ratchet Bot <ratchet-bot@localhost>",
            reason=f"decision {index + 1}",
            fixes=index,
            gate_pass_rate=0.5,
        )
        entries.append(entry)
        text = append_line(text, entry)
    return text, entries


def _broken_at(text: str) -> int:
    with pytest.raises(StateError) as info:
        parse_ledger(text, SOURCE)
    message = str(info.value)
    assert message.startswith(f"{SOURCE} line ") and "\n" not in message
    return int(message.removeprefix(f"{SOURCE} line ").split(":")[0])


def _changed(value: Any, field: str) -> Any:
    """A different value of the same JSON type (so the line still validates)."""
    if field == "decision":
        return "reject" if value != "reject" else "promote"
    if field in ("hash", "prev_hash"):
        return ("f" if value[0] != "f" else "0") + value[1:]
    if isinstance(value, dict):
        return {**value, "P->F": 7} if field == "flip_counts" else {**value, "outcomes-x.csv": "0" * 64}
    if isinstance(value, bool):
        return not value
    if value is None:
        return "x" if field not in ("gate_pass_rate", "baseline_gate_pass_rate", "holdout_pass_rate") else 0.25
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.125
    return value + "x"


def test_chain_builds_and_parses_back() -> None:
    text, entries = _chain()
    parsed = parse_ledger(text, SOURCE)
    assert parsed == entries
    assert [e.seq for e in parsed] == [1, 2, 3, 4]
    assert parsed[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(parsed))
    assert all(e.hash == e.compute_hash() and len(e.hash) == 64 for e in parsed)
    assert text.endswith("\n") and len(text.splitlines()) == 4


def test_empty_ledger_and_blank_lines() -> None:
    assert parse_ledger("", SOURCE) == []
    text, entries = _chain(2)
    first, second = text.splitlines()
    assert parse_ledger(f"{first}\n\n{second}\n\n", SOURCE) == entries


def test_append_line_adds_a_missing_newline() -> None:
    text, entries = _chain(1)
    entry = new_entry(entries, agent="coder", decision="hold", actor="a", reason="b")
    assert parse_ledger(append_line(text.rstrip("\n"), entry), SOURCE) == [*entries, entry]


def test_ledger_path() -> None:
    assert ledger_path("coder") == "releases/coder/ledger.jsonl"


@pytest.mark.parametrize("field", [f for f in LedgerEntry.model_fields])
@pytest.mark.parametrize("line", [1, 3, 4])
def test_editing_any_field_breaks_the_chain_at_that_line(field: str, line: int) -> None:
    text, _ = _chain()
    lines = text.splitlines()
    record = json.loads(lines[line - 1])
    record[field] = _changed(record[field], field)
    lines[line - 1] = json.dumps(record)
    assert _broken_at("\n".join(lines) + "\n") == line


def test_edit_with_a_recomputed_hash_breaks_the_next_line() -> None:
    text, entries = _chain()
    forged = entries[1].model_copy(update={"reason": "forged"})
    forged = forged.model_copy(update={"hash": forged.compute_hash()})
    lines = text.splitlines()
    lines[1] = forged.model_dump_json()
    assert _broken_at("\n".join(lines) + "\n") == 3


def test_unreadable_line_is_named() -> None:
    text, _ = _chain(3)
    lines = text.splitlines()
    lines[1] = lines[1][: len(lines[1]) // 2]
    assert _broken_at("\n".join(lines)) == 2
    lines[1] = json.dumps({**json.loads(text.splitlines()[1]), "colour": "red"})
    assert _broken_at("\n".join(lines)) == 2


@pytest.mark.parametrize(("deleted", "named"), [(1, 1), (2, 2), (3, 3)])
def test_deleting_a_line_breaks_the_chain(deleted: int, named: int) -> None:
    text, _ = _chain()
    lines = text.splitlines()
    del lines[deleted - 1]
    assert _broken_at("\n".join(lines) + "\n") == named


@pytest.mark.parametrize(("a", "b"), [(1, 2), (2, 3), (3, 4), (1, 4)])
def test_reordering_lines_breaks_the_chain(a: int, b: int) -> None:
    text, _ = _chain()
    lines = text.splitlines()
    lines[a - 1], lines[b - 1] = lines[b - 1], lines[a - 1]
    assert _broken_at("\n".join(lines) + "\n") == a


def test_entries_are_frozen_records() -> None:
    _, entries = _chain(1)
    with pytest.raises(pydantic.ValidationError):
        entries[0].reason = "changed"  # type: ignore[misc]
    assert entries[0].version == LEDGER_VERSION == 2


def test_a_reason_with_a_unicode_line_separator_keeps_the_ledger_readable() -> None:
    first = new_entry([], agent="coder", decision="release", release="coder/v1", actor="bot", reason="init")
    second = new_entry(
        [first],
        agent="coder",
        decision="manual_reject",
        rc="rc/coder/1",
        actor="Ada <a@b.c>",
        reason="bad\u2028idea\u0085really",
    )
    text = append_line(append_line("", first), second)
    assert [e.reason for e in parse_ledger(text, "ledger")] == ["init", "bad\u2028idea\u0085really"]
