"""Re-derive a recorded gate verdict from the evidence it was decided on.

An automatic decision's evidence (written by pipeline/record.py, laid out by releases/evidence.py) holds `verdict.json` (the policy and every
input of the decision besides the outcomes: flaky tasks, targeted fixes) and one outcome table per
split and side (`outcomes-<side>-<split>.csv`, one row per run, confirmation trials included). The
ledger entry records the sha256 of each table. Re-deriving means: check those hashes, rebuild the
paired pass counts and hand them to the same judge as the cycle (gates.judge) with the recorded
policy, flaky tasks and targeted fixes, and compare decision, fixes and regressions with both
`verdict.json` and the ledger entry. Pure: the caller reads the files from git.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, ValidationError

from ratchet.gates import JudgedSplit, Verdict, judge, paired_from_counts
from ratchet.releases.evidence import (
    GATE_TABLES,
    HOLDOUT_TABLES,
    VERDICT,
    OutcomeCache,
    TaskCounts,
    outcome_counts,
    outcome_tables,
)
from ratchet.releases.ledger import AWAITING_PERSON, LedgerEntry

FLIP_KINDS = ("P->F", "F->P", "P->P", "F->F")


class Rederivation(BaseModel):
    """What re-deriving one ledger entry's verdict found."""

    model_config = ConfigDict(frozen=True)
    rederived: bool = False
    problems: list[str] = []
    warning: str | None = None


def is_gate_decision(entry: LedgerEntry) -> bool:
    """An automatic verdict of the gate: promote, hold or inconclusive (only the gate reaches them, whatever `stage`
    says), or reject at the gate stage (entries older than the `stage` field count too)."""
    return entry.decision in ("promote", *AWAITING_PERSON) or (
        entry.decision == "reject" and entry.stage in (None, "gate")
    )


def rederive(
    entry: LedgerEntry, files: Mapping[str, bytes | None], cache: OutcomeCache | None = None, legacy: bool = False
) -> Rederivation:
    """Re-derive `entry`'s verdict from its evidence `files` (by name: verdict.json, outcomes-*.csv). Only a
    `legacy` entry (written before outcome hashes existed: releases.audit_decisions.legacy_lines) may lack them."""
    if not entry.outcome_hashes and legacy:
        return Rederivation(
            warning=f"not re-derivable (ledger version {entry.version}, recorded before outcome hashes)"
        )
    if not entry.outcome_hashes:
        return Rederivation(
            problems=[
                f"records no outcome hashes, so its verdict cannot be re-derived, and it is not provably legacy (ledger "
                f"version {entry.version}; only version-1 lines before the first line with outcome hashes are): Ratchet "
                f"did not write it"
            ]
        )
    verdict, problems = _stored_verdict(entry, files.get(VERDICT))
    if verdict is None:
        return Rederivation(problems=problems)
    needed = GATE_TABLES + (HOLDOUT_TABLES if verdict.policy.holdout == "gate" else ())
    problems += _hash_problems(entry, files, needed)
    if problems:
        return Rederivation(problems=problems)
    cache = {} if cache is None else cache
    try:
        tables = {name: outcome_counts(files[name] or b"", cache) for name in needed}
        first = (  # the suite test's sample (verdicts of version 3 on)
            {name: outcome_counts(files[name] or b"", cache, verdict.policy.trials) for name in GATE_TABLES}
            if verdict.version >= 3
            else {}
        )
    except (ValueError, csv.Error) as exc:
        return Rederivation(problems=[f"cannot read the outcome tables: {' '.join(str(exc).split())[:200]}"])
    derived, counts = _decide(verdict, tables, first)
    problems = _disagreements(entry, verdict, derived, counts)
    return Rederivation(rederived=not problems, problems=problems)


def _stored_verdict(entry: LedgerEntry, data: bytes | None) -> tuple[Verdict | None, list[str]]:
    where = f"{entry.evidence}/verdict.json at {(entry.rc_commit or '?')[:10]}"
    if data is None:
        return None, [f"{where} is missing; the decision's evidence is gone"]
    try:
        verdict = Verdict.model_validate_json(data)
    except ValidationError as exc:
        return None, [f"{where} is not a readable verdict: {exc.errors()[0]['msg']}"]
    problems = []
    if verdict.policy.content_hash() != verdict.policy_hash:
        problems.append(
            f"{where}: the policy in it hashes to {verdict.policy.content_hash()[:12]}, not to its "
            f"policy_hash {verdict.policy_hash[:12]}; the policy was edited after the decision"
        )
    if entry.policy_hash != verdict.policy_hash:
        problems.append(
            f"the ledger records policy {str(entry.policy_hash)[:12]}, but {where} was decided with "
            f"policy {verdict.policy_hash[:12]}"
        )
    return verdict, problems


def _hash_problems(entry: LedgerEntry, files: Mapping[str, bytes | None], needed: tuple[str, ...]) -> list[str]:
    problems = []
    for name in needed:
        if name not in entry.outcome_hashes:
            problems.append(
                f"the ledger records no sha256 for {name}, so the verdict cannot be re-derived from "
                f"outcomes it vouches for"
            )
    for name, recorded in sorted(entry.outcome_hashes.items()):
        data = files.get(name)
        if data is None:
            problems.append(f"{entry.evidence}/{name} is missing at {(entry.rc_commit or '?')[:10]}")
        elif (actual := hashlib.sha256(data).hexdigest()) != recorded:
            problems.append(
                f"{entry.evidence}/{name} has sha256 {actual[:12]}, the ledger recorded {recorded[:12]}: "
                f"the outcome table was changed after the decision"
            )
    return problems


def majority_flips(baseline: TaskCounts, candidate: TaskCounts) -> dict[str, int]:
    """Tasks per flip kind of majority outcomes (pass rate >= 0.5 counts as a pass), as the flip table has them."""
    counts = dict.fromkeys(FLIP_KINDS, 0)
    for task, (b_pass, b_n) in baseline.items():
        if task in candidate:
            c_pass, c_n = candidate[task]
            counts[f"{'P' if b_pass / b_n >= 0.5 else 'F'}->{'P' if c_pass / c_n >= 0.5 else 'F'}"] += 1
    return counts


def _decide(
    verdict: Verdict, tables: dict[str, TaskCounts], first: dict[str, TaskCounts]
) -> tuple[Verdict, dict[str, int]]:
    """The verdict the judge gives on these tables (`first`: the gate tables' runs below the policy's
    trial count, the suite test's sample), and the majority flip counts of the gate split."""

    def split(name: str, flaky: list[str]) -> JudgedSplit:
        baseline, candidate = outcome_tables(name)
        pairs = paired_from_counts(tables[baseline], tables[candidate])
        before = paired_from_counts(first[baseline], first[candidate]) if name == "gate" and first else None
        return JudgedSplit(pairs, flaky=set(flaky), first=before)

    holdout = split("holdout", verdict.holdout_flaky_tasks) if verdict.policy.holdout == "gate" else None
    judged = judge(
        verdict.policy,
        split("gate", verdict.flaky_tasks),
        holdout,
        targeted_fixes=verdict.targeted_fixes,
        version=verdict.version,  # each verdict under the rule it was made with
        sequential=verdict.sequential,
    )
    return judged.verdict, majority_flips(tables[GATE_TABLES[0]], tables[GATE_TABLES[1]])


def _summary(decision: str, fixes: int, regressions: int) -> str:
    return f"{decision} ({fixes} confirmed fix(es), {regressions} regression(s))"


def _disagreements(entry: LedgerEntry, verdict: Verdict, derived: Verdict, counts: dict[str, int]) -> list[str]:
    again = _summary(derived.decision, derived.fixes, derived.regressions)
    problems = []
    if (verdict.decision, verdict.fixes, verdict.regressions) != (derived.decision, derived.fixes, derived.regressions):
        problems.append(
            f"verdict.json says {_summary(verdict.decision, verdict.fixes, verdict.regressions)}, but "
            f"its outcome tables and policy give {again}"
        )
    if (entry.decision, entry.fixes, entry.regressions) != (derived.decision, derived.fixes, derived.regressions):
        problems.append(
            f"the ledger records {_summary(entry.decision, entry.fixes, entry.regressions)}, but the "
            f"evidence re-derives to {again}"
        )
    if entry.flip_counts and {k: entry.flip_counts.get(k, 0) for k in FLIP_KINDS} != counts:
        shown = ", ".join(f"{k} {v}" for k, v in counts.items())
        problems.append(f"the ledger records flip counts {entry.flip_counts}, the outcome tables give {shown}")
    return problems
