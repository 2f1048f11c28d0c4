"""The ledger: `releases/<agent>/ledger.jsonl` on main, one hash-chained line per decision."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ratchet.agents import StateError
from ratchet.releases.gitstore import BOT

DecisionKind = Literal[
    "release", "promote", "reject", "hold", "inconclusive", "manual_promote", "manual_reject", "rollback"
]
GENESIS = "0" * 64
# The schema version Ratchet writes (docs/formats.md). 1: the first ledgers; `stage` and `outcome_hashes` were
# added within version 1, so a version-1 gate decision without outcome hashes is legacy only while no earlier line
# records them (releases.audit_decisions.legacy_lines). 2: every automatic gate decision records its outcome hashes, so it
# always re-derives. Versions never go down along the chain.
LEDGER_VERSION = 2
RELEASING = ("release", "promote", "manual_promote", "rollback")  # the decisions that make a release tag
# The gate's verdicts that leave a candidate waiting for a person (`ratchet promote|reject`): `hold`, the policy
# asks for one; `inconclusive`, the gate could neither clear nor confirm a task that leans toward regression.
AWAITING_PERSON = ("hold", "inconclusive")
GATE_VERDICTS = ("promote", "reject", *AWAITING_PERSON)  # the gate decides each candidate once, with one of these
# Fields added after the first ledgers were written: left out of the hash while at their default,
# so that every older line keeps its hash and the chain stays valid.
_LATER_FIELDS: dict[str, object] = {
    "stage": None,
    "flip_counts": {},
    "outcome_hashes": {},
    "override": False,
    "rollback_to": None,
}
TRAILER_PREFIX = "Ratchet-"
PERSON = re.compile(r"^(?P<name>[^<>]*\S[^<>]*)<(?P<email>[^<>@\s]+@[^<>\s]+)>$")


def ledger_path(agent: str) -> str:
    return f"releases/{agent}/ledger.jsonl"


def release_tag(agent: str, number: int) -> str:
    return f"{agent}/v{number}"


MAIN = "main"  # the branch that holds the ledger and the live release


def rc_branch(agent: str, number: int) -> str:
    return f"rc/{agent}/{number}"


def rejected_tag(agent: str, number: int) -> str:
    return f"{agent}/rc{number}-rejected"


class LedgerEntry(BaseModel):
    """One decision about one agent's version line."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = Field(default=1, ge=1, description="Schema version (LEDGER_VERSION when Ratchet wrote it).")
    seq: int = Field(ge=1)
    agent: str
    decision: DecisionKind
    release: str | None = Field(default=None, description="The tag made by this decision, e.g. coder/v2.")
    base_release: str | None = Field(default=None, description="The release the RC was built on.")
    rc: str | None = Field(default=None, description="RC branch, e.g. rc/coder/1.")
    rc_commit: str | None = None
    intent: str = ""
    remediation: str | None = Field(
        default=None, description="Identifier of the RC's change (playbook remediation id)."
    )
    fixes: int = 0
    regressions: int = 0
    gate_pass_rate: float | None = Field(default=None, description="Candidate's pass rate on the gate split.")
    baseline_gate_pass_rate: float | None = None
    holdout_pass_rate: float | None = None
    policy_hash: str | None = None
    evidence: str | None = Field(default=None, description="Folder on the RC branch holding the evidence.")
    stage: str | None = Field(default=None, description="Where the verdict was reached: validate, smoke or gate.")
    flip_counts: dict[str, int] = Field(default_factory=dict, description="Tasks per flip kind (majority outcomes).")
    outcome_hashes: dict[str, str] = Field(
        default_factory=dict, description="sha256 of each outcome table in the evidence, by file name."
    )
    override: bool = Field(default=False, description="A person promoted against the gate's reject verdict.")
    rollback_to: str | None = Field(default=None, description="For a rollback: the release whose artifact it restores.")
    actor: str
    reason: str
    timestamp: str
    prev_hash: str
    hash: str = ""

    def compute_hash(self) -> str:
        body = self.model_dump(mode="json", exclude={"hash"})
        for name, default in _LATER_FIELDS.items():
            if body.get(name) == default:
                del body[name]
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def trailers(self) -> dict[str, str]:
        """The facts a release or rejected tag carries as git trailers (`Ratchet-Decision: promote`, ...)."""
        facts = {
            "Agent": self.agent,
            "Decision": self.decision,
            "Release": self.release,
            "RC": self.rc,
            "Base-Release": self.base_release,
            "Ledger-Seq": str(self.seq),
            "Ledger-Hash": self.hash,
            "Policy-Hash": self.policy_hash,
            "Fixes": str(self.fixes),
            "Regressions": str(self.regressions),
            "Actor": self.actor,
            "Override": "true" if self.override else None,
            "Rollback-To": self.rollback_to,
        }
        return {f"{TRAILER_PREFIX}{key}": value for key, value in facts.items() if value}


def trailer_block(entry: LedgerEntry) -> str:
    """The trailers as the last paragraph of a tag message."""
    return "\n".join(f"{key}: {' '.join(value.split())}" for key, value in entry.trailers().items()) + "\n"


def parse_trailers(message: str) -> dict[str, str]:
    """`Ratchet-*` trailers from a tag message's last paragraph."""
    last = message.rstrip().rsplit("\n\n", 1)[-1]
    found = {}
    for line in last.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key.startswith(TRAILER_PREFIX):
            found[key] = value.strip()
    return found


def parse_ledger(text: str, source: str) -> list[LedgerEntry]:
    """All entries; StateError naming the line for anything unreadable or off-chain."""
    entries: list[LedgerEntry] = []
    prev = GENESIS
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): U+2028 may sit inside a reason
        if not line.strip():
            continue
        try:
            entry = LedgerEntry.model_validate_json(line)
        except ValidationError as exc:
            raise StateError(f"{source} line {number}: unreadable ledger entry: {exc.errors()[0]['msg']}") from exc
        if entry.prev_hash != prev or entry.hash != entry.compute_hash():
            raise StateError(
                f"{source} line {number}: ledger hash chain broken; the ledger was edited by hand: run `ratchet verify`"
            )
        entries.append(entry)
        prev = entry.hash
    return entries


def new_entry(previous: list[LedgerEntry], **fields: Any) -> LedgerEntry:
    """The next entry of the chain, with version, seq, timestamp, prev_hash and hash filled in.
    `fields` are LedgerEntry's other fields, of any type: the model validates them."""
    draft = LedgerEntry(
        version=fields.pop("version", LEDGER_VERSION),
        seq=len(previous) + 1,
        prev_hash=previous[-1].hash if previous else GENESIS,
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        **fields,
    )
    return draft.model_copy(update={"hash": draft.compute_hash()})


def append_line(text: str, entry: LedgerEntry) -> str:
    if text and not text.endswith("\n"):
        text += "\n"
    return text + entry.model_dump_json() + "\n"


def actor_problem(actor: str) -> str | None:
    """What is wrong with `actor` as the person behind a manual decision ('Name <email>', not Ratchet's own
    identity); None when it names a person. `verify` and the CLI's --actor apply this same rule."""
    match = PERSON.match(actor)
    if match is None:
        return f"{actor!r} is not 'Name <email>'"
    name, email = match.group("name").strip(), match.group("email")
    if name.casefold().startswith(BOT.name.casefold()) or email.casefold() == BOT.email.casefold():
        return f"{actor!r} is Ratchet's own identity; a person's decision must name that person"
    return None
