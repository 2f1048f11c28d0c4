"""The stages of one improvement cycle, as plain functions (flows.py wraps them in Prefect tasks)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pandas as pd

from ratchet.agents import ModelClient, ModelParams, resolve_model
from ratchet.critics import BlindView, EngineeringSpec, SymptomReport, blind_view, detect, diagnose, llm_critique
from ratchet.gates import (
    Evaluation,
    FlipTable,
    JudgedSplit,
    SmokeCheck,
    Task,
    Verdict,
    evaluate,
    flakiness_table,
    flaky,
    flips_from_classified,
    history,
    judge,
    load_suite,
    natural_key,
    paired_counts,
    run_key,
    smoke_check,
    stored_evaluation,
)
from ratchet.pipeline.confirmation_start import ConfirmationStart, load_or_record, start_path
from ratchet.pipeline.context import CycleContext, ReleaseState, checkout_artifact, client_for
from ratchet.pipeline.progress import reporter
from ratchet.pipeline.synthesis import Proposal, synthesize
from ratchet.pipeline.validate import validate_proposal
from ratchet.releases import CandidateRef, LedgerEntry, ReleaseRef

CRITIC_PARAMS = ModelParams(temperature=0.0, max_tokens=1024, timeout_s=120.0)


def resolve_release(ctx: CycleContext) -> tuple[ReleaseRef, ReleaseState]:
    ctx.registry.require_clean()
    for repaired in ctx.registry.recovered:
        reporter().stage("recover", repaired)
    release = ctx.registry.current_release(ctx.agent)
    return release, checkout_artifact(ctx, release.tag, release.tag)


def run_split(ctx: CycleContext, state: ReleaseState, split: str, trials: int = 1) -> Evaluation:
    """Evaluate one version on one split, resuming from the run store."""
    return run_tasks(ctx, state, split, ctx.suite.split(split), trials, f"{state.label} on {split}")


def run_tasks(
    ctx: CycleContext, state: ReleaseState, split: str, tasks: list[Task], trials: int, label: str
) -> Evaluation:
    """Evaluate one version on some tasks of a split, `trials` runs each, resuming from the run store."""
    reporter().stage("run", label)
    if ctx.settings.execution.runner == "dask":  # shards on a Dask cluster ([execution] in ratchet.toml)
        from ratchet.pipeline.execution import run_sharded

        return run_sharded(ctx, state, split, tasks, trials, label)

    def progress(done: int, total: int) -> None:
        reporter().progress(label, done, total)

    client = client_for(ctx, state.artifact)

    async def run_and_close() -> Evaluation:
        try:
            return await evaluate(
                state.artifact,
                client,
                ctx.suite,
                tasks,
                ctx.store,
                split=split,
                trials=trials,
                concurrency=ctx.settings.run.concurrency,
                on_progress=progress,
            )
        finally:
            await client.aclose()

    return asyncio.run(run_and_close())


def smoke(ctx: CycleContext, base: ReleaseState, candidate: ReleaseState) -> SmokeCheck | None:
    """Run the agent's smoke suite (all its tasks, one run each) on both sides; None when none is set.
    The baseline's runs come from the run store when an earlier cycle ran them."""
    settings = ctx.settings.agent(ctx.agent)
    if settings.smoke_suite is None:
        return None
    suite = load_suite(ctx.workspace, settings.smoke_suite)
    tasks = sorted(suite.tasks.values(), key=lambda task: natural_key(task.id))
    model = settings.smoke_model

    def run(state: ReleaseState) -> Evaluation:
        label = f"{state.label} on smoke suite {suite.name}"
        reporter().stage("smoke", label)
        client = (
            ModelClient(resolve_model(model, ctx.settings.models, ctx.api_base), state.artifact.spec.model_params)
            if model
            else client_for(ctx, state.artifact)
        )

        async def run_and_close() -> Evaluation:
            try:
                return await evaluate(
                    state.artifact,
                    client,
                    suite,
                    tasks,
                    ctx.store,
                    split="smoke",
                    concurrency=ctx.settings.run.concurrency,
                    on_progress=lambda done, total: reporter().progress(label, done, total),
                )
            finally:
                await client.aclose()

        return asyncio.run(run_and_close())

    return smoke_check(suite.name, run(base), run(candidate), ctx.policy.smoke_max_drop)


def critique(ctx: CycleContext, evaluation: Evaluation) -> list[SymptomReport]:
    """Symptoms from each run's blind view (the critic never sees the artifact): the LLM critic when
    the agent's settings name a `critic_model`, else the deterministic detectors."""
    views = [blind_view(r.trace, ctx.suite.tasks[r.task_id], r.outcome) for r in evaluation.records]
    critic_model = ctx.settings.agent(ctx.agent).critic_model
    if critic_model is None:
        reporter().stage("critique", f"{len(views)} traces, detectors")
        return [detect(view) for view in views]
    reporter().stage("critique", f"{len(views)} traces, LLM critic {critic_model}")
    client = ModelClient(resolve_model(critic_model, ctx.settings.models), CRITIC_PARAMS)

    async def all_reports() -> list[SymptomReport]:
        gate = asyncio.Semaphore(ctx.settings.run.concurrency)

        async def one(view: BlindView) -> SymptomReport:
            async with gate:
                return (await llm_critique(client, view))[0]

        try:
            return list(await asyncio.gather(*(one(view) for view in views)))
        finally:
            await client.aclose()

    return asyncio.run(all_reports())


def diagnose_reports(ctx: CycleContext, reports: list[SymptomReport], release: str, split: str) -> EngineeringSpec:
    reporter().stage("diagnose", release)
    return diagnose(reports, agent=ctx.agent, release=release, split=split)


def propose(ctx: CycleContext, spec: EngineeringSpec, state: ReleaseState) -> Proposal | None:
    """Run the release's own improvement procedure; remediations the gate rejected are skipped, and so are
    those it found inconclusive unless a person promoted that candidate since."""
    reporter().stage("synthesize", state.label)
    ledger = ctx.registry.ledger(ctx.agent)
    rejected = tried_remediations(ledger)
    history = [
        f"{e.rc} `{e.remediation}`: {e.decision} (fixes {e.fixes}, regressions {e.regressions})"
        for e in ledger
        if e.rc and e.remediation
    ]

    def client_for(model: str, params: ModelParams) -> ModelClient:
        return ModelClient(resolve_model(model, ctx.settings.models), params)

    def validate(changes: dict[str, str | None]) -> str | None:
        return validate_proposal(ctx.agent, state.files, changes, ctx.settings.models)

    return synthesize(spec, state.files, rejected, client_for=client_for, validate=validate, history=history)


def tried_remediations(ledger: list[LedgerEntry]) -> set[str]:
    """The remediations a cycle should not propose again: every one rejected (by the gate or a person), and every
    one whose candidate's last decision is still `inconclusive` (the gate could not clear it; a person's
    `manual_promote` afterwards takes it off the list, a `manual_reject` keeps it there)."""
    last = {e.rc: e.decision for e in ledger if e.rc}
    rejected = {e.remediation for e in ledger if e.remediation and e.decision in ("reject", "manual_reject")}
    undecided = {e.remediation for e in ledger if e.remediation and e.rc and last[e.rc] == "inconclusive"}
    return rejected | undecided


def create_candidate(ctx: CycleContext, proposal: Proposal, base_files: dict[str, str]) -> CandidateRef:
    """Commit the proposal on a new RC branch (or reuse the same RC an interrupted cycle made).

    A proposal that validation refuses (it edits outside `agents/<agent>/`, writes through a symlink,
    names `.git`, holds a NUL...) is committed as an RC with no change: git never holds the attack's
    paths, some of which it could not even store, and the cycle goes on to record the rejection. The
    proposal itself is kept in the evidence (`intent.json`)."""
    refused = validate_proposal(ctx.agent, base_files, proposal.changes, ctx.settings.models) is not None
    changes = (
        {}
        if refused
        else {path: (text.encode() if text is not None else None) for path, text in proposal.changes.items()}
    )
    resumed = ctx.registry.pending_candidate(ctx.agent, changes)
    if resumed is not None:
        reporter().stage("synthesize", f"resuming {resumed.branch}, left undecided by an interrupted cycle")
        return resumed
    return ctx.registry.create_candidate(ctx.agent, changes, proposal.commit_message())


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict, its flip table, and both sides' gate runs including confirmation trials."""

    flips: FlipTable
    verdict: Verdict
    baseline: Evaluation
    candidate: Evaluation
    confirmation_runs: int
    in_doubt: int
    baseline_holdout: Evaluation | None = None
    candidate_holdout: Evaluation | None = None


def gate(
    ctx: CycleContext,
    base: ReleaseState,
    candidate: ReleaseState,
    targets: list[str] | None = None,
) -> GateResult:
    """Confirmed flips decide: both sides' stored gate runs (the baseline's are reused when the
    previous cycle made them), adaptive confirmation trials for tasks in doubt, then the policy
    (with the holdout split gated the same way when the policy says `holdout: gate`): gates.judge."""
    policy = ctx.policy
    reporter().stage(
        "gate",
        f"{policy.name}: exact tests at false discovery rate {policy.alpha}, clearing at margin "
        f"{policy.regression_margin}, up to {policy.confirmation_cap} trials",
    )
    states = {"baseline": base, "candidate": candidate}
    asked: set[str] = set()
    gate_split = _judged_split(ctx, states, "gate", asked)
    holdout_split = None
    if policy.holdout == "gate":
        run_split(ctx, base, "holdout", policy.trials)
        run_split(ctx, candidate, "holdout", policy.trials)
        holdout_split = _judged_split(ctx, states, "holdout", asked)

    def targeted(fixed: list[str]) -> int:
        return _targeted_fixes(ctx, _stored(ctx, base, ctx.suite.split("gate"), "gate"), set(fixed), targets or [])

    judged = judge(policy, gate_split, holdout_split, targeted_fixes=targeted if targets is not None else None)
    final = {side: _stored(ctx, state, ctx.suite.split("gate"), "gate") for side, state in states.items()}
    holdout = (
        {side: _stored(ctx, state, ctx.suite.split("holdout"), "holdout") for side, state in states.items()}
        if holdout_split is not None
        else {}
    )
    outcomes = {side: [r.outcome for r in evaluation.records] for side, evaluation in final.items()}
    return GateResult(
        flips=flips_from_classified(judged.gate, outcomes["baseline"], outcomes["candidate"]),
        verdict=judged.verdict,
        baseline=final["baseline"],
        candidate=final["candidate"],
        confirmation_runs=judged.confirmation_runs,
        in_doubt=len(asked),
        baseline_holdout=holdout.get("baseline"),
        candidate_holdout=holdout.get("candidate"),
    )


def _judged_split(ctx: CycleContext, states: dict[str, ReleaseState], split: str, asked: set[str]) -> JudgedSplit:
    """One split's evidence for the judge: paired counts of the stored runs as the confirmation started,
    the flaky tasks, and a sampler that runs confirmation trials through the run store (noting the
    tasks it was asked for in `asked`)."""
    tasks = ctx.suite.split(split)
    evaluations = {side: _stored(ctx, state, tasks, split) for side, state in states.items()}
    start = _confirmation_start(ctx, states, tasks, split, evaluations)
    tables = {side: _first_trials(evaluations[side].outcome_table(), getattr(start, side)) for side in states}
    pairs = paired_counts(tables["baseline"], tables["candidate"])
    # the runs every task got before any confirmation: the suite test's sample (releases.rederive reads the same)
    first = paired_counts(
        *(tables[side][tables[side]["trial"] < ctx.policy.trials] for side in ("baseline", "candidate"))
    )
    runs = {side: dict(getattr(start, side)) for side in states}

    def sample(task_ids: list[str], side: str) -> dict[str, bool]:
        answers: dict[str, bool] = {}
        asked.update(task_ids)
        by_trials: dict[int, list[str]] = {}
        for task_id in task_ids:
            by_trials.setdefault(runs[side].get(task_id, 0), []).append(task_id)
        for done, group in sorted(by_trials.items()):
            label = f"{states[side].label} on {split}: confirmation trial {done + 1} of {len(group)} task(s)"
            more = run_tasks(ctx, states[side], split, [ctx.suite.tasks[t] for t in group], done + 1, label)
            answers.update({r.task_id: r.outcome.passed for r in more.records if r.trial == done})
        for task_id in answers:
            runs[side][task_id] = runs[side].get(task_id, 0) + 1
        return answers

    return JudgedSplit(pairs, flaky=set(start.flaky), sample=sample, first=first)


def _confirmation_start(
    ctx: CycleContext,
    states: dict[str, ReleaseState],
    tasks: list[Task],
    split: str,
    evaluations: dict[str, Evaluation],
) -> ConfirmationStart:
    """The counts and flaky set this gate's confirmation starts from: recorded by the first attempt,
    replayed by a restart (pipeline.confirmation_start)."""
    baseline_slug, candidate_slug = (
        run_key(states[side].artifact, ctx.suite, client_for(ctx, states[side].artifact)).slug
        for side in ("baseline", "candidate")
    )

    def now() -> ConfirmationStart:
        trials = {
            side: evaluations[side].outcome_table().groupby("task_id")["trial"].size().to_dict() for side in states
        }
        return ConfirmationStart(
            baseline={str(t): int(n) for t, n in trials["baseline"].items()},
            candidate={str(t): int(n) for t, n in trials["candidate"].items()},
            flaky=sorted(flaky_in_history(ctx, states["baseline"], tasks)),
        )

    return load_or_record(start_path(ctx.workspace / ".ratchet", baseline_slug, candidate_slug, split), now)


def _first_trials(table: pd.DataFrame, trials: dict[str, int]) -> pd.DataFrame:
    """The rows of trials counted at the start (trial numbers run from 0 per task)."""
    limit = table["task_id"].map(trials).fillna(0)
    return table[table["trial"] < limit]


def _targeted_fixes(ctx: CycleContext, baseline: Evaluation, fixed: set[str], targets: list[str]) -> int:
    """Confirmed fixes whose first baseline failure the detectors label with a pattern the RC targeted."""
    labels: dict[str, str | None] = {}
    for record in baseline.records:
        if record.task_id in fixed and record.task_id not in labels and not record.outcome.passed:
            report = detect(blind_view(record.trace, ctx.suite.tasks[record.task_id], record.outcome))
            labels[record.task_id] = report.symptoms[0].label if report.symptoms else None
    return sum(1 for label in labels.values() if label in targets)


def _stored(ctx: CycleContext, state: ReleaseState, tasks: list[Task], split: str) -> Evaluation:
    client = client_for(ctx, state.artifact)
    return stored_evaluation(state.artifact, client, ctx.suite, tasks, ctx.store, split)


def flaky_in_history(ctx: CycleContext, base: ReleaseState, tasks: list[Task]) -> set[str]:
    """Tasks flaky in any stored evaluation of this suite and model (gates.flakiness): they flip on
    their own, so the gate asks for stronger evidence (1 / FLAKY_DIVISOR of a stable task's weight in the false
    discovery rate test) before counting them, and clears them against the wider flaky margin."""
    return flaky(flakiness_history(ctx, base, tasks))


def flakiness_history(ctx: CycleContext, base: ReleaseState, tasks: list[Task]) -> pd.DataFrame:
    key = run_key(base.artifact, ctx.suite, client_for(ctx, base.artifact))
    return flakiness_table(history(ctx.store, key.suite_hash, key.model_config_hash), {task.id for task in tasks})
