"""The record stage: commit the evidence on the RC branch, then apply the decision to the ledger."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ratchet.critics import EngineeringSpec, SymptomReport, symptom_frame
from ratchet.gates import Evaluation, Flip, FlipTable, SmokeCheck, Verdict
from ratchet.pipeline.context import CycleContext
from ratchet.pipeline.synthesis import Proposal
from ratchet.releases import (
    BOT,
    CRITIC_CALLS,
    FLIPS,
    INTENT,
    NOTES_JSON,
    NOTES_MD,
    SMOKE,
    SPEC_JSON,
    SPEC_MD,
    SYMPTOMS,
    VERDICT,
    CandidateRef,
    FlipRow,
    LedgerEntry,
    ReleaseNotes,
    Side,
    evidence_dir,
    is_outcome_file,
    outcome_csv,
    outcome_file,
    release_tag,
)


@dataclass(frozen=True)
class Evidence:
    """Everything that justifies a decision about one RC."""

    base_release: str
    model: str
    simulated: bool
    spec: EngineeringSpec
    reports: list[SymptomReport]
    proposal: Proposal
    verdict: Verdict
    flips: FlipTable | None = None
    baseline_gate: Evaluation | None = None
    candidate_gate: Evaluation | None = None
    baseline_holdout: Evaluation | None = None
    candidate_holdout: Evaluation | None = None
    confirmation_runs: int = 0
    in_doubt: int = 0
    smoke: SmokeCheck | None = None


def _runs(flip: Flip) -> str:
    if flip.baseline_runs is None or flip.candidate_runs is None:
        return ""
    passes = (
        round(flip.baseline_pass_rate * flip.baseline_runs),
        round(flip.candidate_pass_rate * flip.candidate_runs),
    )
    return f"{passes[0]}/{flip.baseline_runs} -> {passes[1]}/{flip.candidate_runs}"


def rate(evaluation: Evaluation | None) -> float | None:
    """Mean of per-task pass rates: confirmation trials on a few tasks do not tilt it."""
    if not evaluation or not evaluation.records:
        return None
    return round(float(evaluation.outcome_table().groupby("task_id")["passed"].mean().mean()), 4)


def build_notes(ctx: CycleContext, rc: CandidateRef, ev: Evidence, title: str, actor: str) -> ReleaseNotes:
    flips = ev.flips.flips if ev.flips else []
    return ReleaseNotes(
        agent=ctx.agent,
        title=title,
        base_release=ev.base_release,
        rc=rc.branch,
        decision=ev.verdict.decision,
        actor=actor,
        reasons=ev.verdict.reasons,
        intent=ev.proposal.intent,
        targets=ev.proposal.targets,
        remediation=ev.proposal.remediation,
        model=ev.model,
        simulated=ev.simulated,
        strategy=ev.proposal.strategy,
        meta_edits=ev.proposal.meta_edits,
        counts=ev.flips.counts() if ev.flips else {},
        flips=[
            FlipRow(
                **f.model_dump(
                    include={"task_id", "kind", "baseline_error", "candidate_error", "confirmed", "p_value"}
                ),
                runs=_runs(f),
            )
            for f in flips
            if f.kind in ("P->F", "F->P")
        ],
        baseline_gate_pass_rate=rate(ev.baseline_gate),
        gate_pass_rate=rate(ev.candidate_gate),
        baseline_holdout_pass_rate=rate(ev.baseline_holdout),
        holdout_pass_rate=rate(ev.candidate_holdout),
        top_patterns=[(p.label, p.count) for p in ev.spec.patterns[:5]],
        smoke=ev.smoke.summary() if ev.smoke else None,
    )


def evidence_files(ev: Evidence, notes: ReleaseNotes) -> dict[str, bytes]:
    files = {
        INTENT: ev.proposal.model_dump_json(indent=2).encode(),
        SPEC_JSON: ev.spec.model_dump_json(indent=2).encode(),
        SPEC_MD: ev.spec.markdown().encode(),
        SYMPTOMS: symptom_frame(ev.reports).to_csv(index=False).encode(),
        VERDICT: ev.verdict.model_dump_json(indent=2).encode(),
        NOTES_JSON: notes.model_dump_json(indent=2).encode(),
        NOTES_MD: notes.markdown().encode(),
    }
    calls = [(r, r.critic_call) for r in ev.reports if r.critic_call is not None]
    if calls:  # what the LLM critic's guarded calls did, run by run
        files[CRITIC_CALLS] = b"".join(
            json.dumps({"task_id": r.task_id, "trial": r.trial, **call.model_dump(mode="json")}).encode() + b"\n"
            for r, call in calls
        )
    if ev.smoke is not None:
        files[SMOKE] = ev.smoke.model_dump_json(indent=2).encode()
    if ev.flips is not None:
        files[FLIPS] = ev.flips.to_frame().to_csv(index=False).encode()
    tables: tuple[tuple[Side, str, Evaluation | None], ...] = (
        ("baseline", "gate", ev.baseline_gate),
        ("candidate", "gate", ev.candidate_gate),
        ("baseline", "holdout", ev.baseline_holdout),
        ("candidate", "holdout", ev.candidate_holdout),
    )
    for side, split, evaluation in tables:
        if evaluation is not None:
            files[outcome_file(side, split)] = outcome_csv(evaluation)
    return files


def record(ctx: CycleContext, rc: CandidateRef, ev: Evidence) -> tuple[LedgerEntry, str | None]:
    """Commit evidence, then promote / reject / hold. An inconclusive verdict is recorded as a hold is (the RC
    waits for a person), with its own decision. Returns the ledger entry and the new tag."""
    decision = ev.verdict.decision
    registry = ctx.registry
    next_tag = release_tag(ctx.agent, registry.current_release(ctx.agent).number + 1)
    title = {
        "promote": next_tag,
        "reject": f"{rc.branch} (rejected)",
        "hold": f"{rc.branch} (on hold)",
        "inconclusive": f"{rc.branch} (inconclusive)",
    }[decision]
    notes = build_notes(ctx, rc, ev, title, actor=str(BOT))
    files = evidence_files(ev, notes)
    rc = registry.add_evidence(rc, files, f"{rc.branch} {decision}: {ev.proposal.remediation}")
    entry = dict(
        decision=decision,
        base_release=ev.base_release,
        intent=ev.proposal.intent,
        remediation=ev.proposal.remediation,
        fixes=ev.verdict.fixes,
        regressions=ev.verdict.regressions,
        gate_pass_rate=rate(ev.candidate_gate),
        baseline_gate_pass_rate=rate(ev.baseline_gate),
        holdout_pass_rate=rate(ev.candidate_holdout),
        policy_hash=ev.verdict.policy_hash,
        evidence=evidence_dir(ctx.agent, rc.number),
        reason="; ".join(ev.verdict.reasons),
        stage=ev.verdict.stage,
        flip_counts=ev.flips.counts() if ev.flips else {},
        outcome_hashes={
            name: hashlib.sha256(data).hexdigest() for name, data in files.items() if is_outcome_file(name)
        },
    )
    if decision == "promote":
        return registry.promote(rc, notes.markdown(), BOT, **entry), next_tag
    if decision == "reject":
        return registry.reject(rc, notes.markdown(), BOT, **entry), None
    return registry.hold(rc, BOT, **entry), None  # hold or inconclusive: `decision` says which
