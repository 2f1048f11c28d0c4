"""The stages of one improvement cycle, as plain functions (flows.py wraps them in Prefect tasks)."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from agents.artifact import Artifact, ModelParams, load_artifact
from agents.model_config import resolve_model
from agents.models import ModelClient
from critics.detectors import detect
from critics.diagnosis import EngineeringSpec, diagnose
from critics.llm_critic import llm_critique
from critics.symptoms import SymptomReport
from critics.view import BlindView, blind_view
from gates.confirmation import confirm
from gates.evaluation import Evaluation, evaluate, run_key, stored_evaluation
from gates.flakiness import flakiness_table, flaky
from gates.flips import FlipTable, flips_from_classified
from gates.policy import GatePolicy, Verdict, decide_on_trials, load_policy
from gates.run_store import RunStore, history
from gates.statistics import paired_counts
from gates.smoke import SmokeCheck, smoke_check
from gates.suite import Suite, load_suite
from gates.task import Task, natural_key
from pipeline.confirmation_start import ConfirmationStart, load_or_record, start_path
from pipeline.progress import reporter
from pipeline.settings import Settings, load_settings
from pipeline.synthesis import Proposal, synthesize
from pipeline.validate import validate_proposal
from releases.gitstore import GitStore
from releases.registry import CandidateRef, Registry, ReleaseRef

CRITIC_PARAMS = ModelParams(temperature=0.0, max_tokens=1024, timeout_s=120.0)


@dataclass(frozen=True)
class CycleContext:
    """Everything a stage needs that is fixed for the whole cycle."""

    workspace: Path
    agent: str
    settings: Settings
    suite: Suite
    policy: GatePolicy
    store: RunStore
    registry: Registry
    model_override: str | None = None
    api_base: str | None = None

    @property
    def scratch(self) -> Path:
        return self.workspace / ".ratchet"


@dataclass(frozen=True)
class ReleaseState:
    """A release (or candidate) checked out of git into the scratch area, loaded."""

    label: str
    artifact: Artifact
    files: dict[str, str]


def open_context(workspace: Path, agent: str, model_override: str | None = None,
                 api_base: str | None = None) -> CycleContext:
    settings = load_settings(workspace)
    agent_settings = settings.agent(agent)
    if agent_settings.smoke_suite is not None:
        load_suite(workspace, agent_settings.smoke_suite)  # a broken smoke suite fails before any work, not after
    return CycleContext(
        workspace=workspace, agent=agent, settings=settings,
        suite=load_suite(workspace, agent_settings.suite), policy=load_policy(workspace, agent_settings.policy),
        store=RunStore(workspace / ".ratchet"), registry=Registry(workspace), model_override=model_override,
        api_base=api_base,
    )


def checkout_artifact(ctx: CycleContext, rev: str, label: str) -> ReleaseState:
    """Write `agents/<agent>/` as of `rev` to `.ratchet/checkouts/<label>/` and load it."""
    with GitStore(ctx.workspace) as git:
        raw = git.list_files(rev, f"agents/{ctx.agent}")
    dest = ctx.scratch / "checkouts" / label.replace("/", "-") / ctx.agent
    shutil.rmtree(dest, ignore_errors=True)
    for rel, data in raw.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
    files = {rel: data.decode("utf-8", errors="replace") for rel, data in raw.items()}
    return ReleaseState(label=label, artifact=load_artifact(dest), files=files)


def resolve_release(ctx: CycleContext) -> tuple[ReleaseRef, ReleaseState]:
    ctx.registry.require_clean()
    for repaired in ctx.registry.recovered:
        reporter().stage("recover", repaired)
    release = ctx.registry.current_release(ctx.agent)
    return release, checkout_artifact(ctx, release.tag, release.tag)


def client_for(ctx: CycleContext, artifact: Artifact) -> ModelClient:
    """The agent's model (or the override), resolved through ratchet.toml's [models.<alias>] tables."""
    name = ctx.model_override or artifact.spec.model
    return ModelClient(resolve_model(name, ctx.settings.models, ctx.api_base), artifact.spec.model_params)


def run_split(ctx: CycleContext, state: ReleaseState, split: str, trials: int = 1) -> Evaluation:
    """Evaluate one version on one split, resuming from the run store."""
    return run_tasks(ctx, state, split, ctx.suite.split(split), trials, f"{state.label} on {split}")


def run_tasks(ctx: CycleContext, state: ReleaseState, split: str, tasks: list[Task], trials: int,
              label: str) -> Evaluation:
    """Evaluate one version on some tasks of a split, `trials` runs each, resuming from the run store."""
    reporter().stage("run", label)
    if ctx.settings.execution.runner == "dask":  # shards on a Dask cluster ([execution] in ratchet.toml)
        from pipeline.execution import run_sharded

        return run_sharded(ctx, state, split, tasks, trials, label)
    progress = lambda done, total: reporter().progress(label, done, total)  # noqa: E731
    client = client_for(ctx, state.artifact)

    async def run_and_close() -> Evaluation:
        try:
            return await evaluate(
                state.artifact, client, ctx.suite, tasks, ctx.store,
                split=split, trials=trials, concurrency=ctx.settings.run.concurrency, on_progress=progress,
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
        client = (ModelClient(resolve_model(model, ctx.settings.models, ctx.api_base), state.artifact.spec.model_params)
                  if model else client_for(ctx, state.artifact))

        async def run_and_close() -> Evaluation:
            try:
                return await evaluate(state.artifact, client, suite, tasks, ctx.store, split="smoke",
                                      concurrency=ctx.settings.run.concurrency,
                                      on_progress=lambda done, total: reporter().progress(label, done, total))
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
    """Run the release's own improvement procedure; remediations the gate rejected are skipped."""
    reporter().stage("synthesize", state.label)
    ledger = ctx.registry.ledger(ctx.agent)
    rejected = {e.remediation for e in ledger if e.decision in ("reject", "manual_reject") and e.remediation}
    history = [f"{e.rc} `{e.remediation}`: {e.decision} (fixes {e.fixes}, regressions {e.regressions})"
               for e in ledger if e.rc and e.remediation]

    def client_for(model: str, params: ModelParams) -> ModelClient:
        return ModelClient(resolve_model(model, ctx.settings.models), params)

    def validate(changes: dict[str, str | None]) -> str | None:
        return validate_proposal(ctx.agent, state.files, changes, ctx.settings.models)

    return synthesize(spec, state.files, rejected, client_for=client_for, validate=validate, history=history)


def create_candidate(ctx: CycleContext, proposal: Proposal, base_files: dict[str, str]) -> CandidateRef:
    """Commit the proposal on a new RC branch (or reuse the same RC an interrupted cycle made).

    A proposal that validation refuses (it edits outside `agents/<agent>/`, writes through a symlink,
    names `.git`, holds a NUL...) is committed as an RC with no change: git never holds the attack's
    paths, some of which it could not even store, and the cycle goes on to record the rejection. The
    proposal itself is kept in the evidence (`intent.json`)."""
    refused = validate_proposal(ctx.agent, base_files, proposal.changes, ctx.settings.models) is not None
    changes = {} if refused else {
        path: (text.encode() if text is not None else None) for path, text in proposal.changes.items()
    }
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


def gate(ctx: CycleContext, base: ReleaseState, candidate: ReleaseState, targets: list[str] | None = None,
         ) -> GateResult:
    """Confirmed flips decide: both sides' stored gate runs (the baseline's are reused when the
    previous cycle made them), adaptive confirmation trials for tasks in doubt, then the policy
    (with the holdout split gated the same way when the policy says `holdout: gate`)."""
    policy = ctx.policy
    reporter().stage("gate", f"{policy.name}: exact tests sharing alpha {policy.alpha}, up to {policy.confirmation_cap} trials")
    judged = _confirmed(ctx, base, candidate, "gate")
    classified, final, extra, asked = judged
    holdout, holdout_final = None, {}
    if policy.holdout == "gate":
        run_split(ctx, base, "holdout", policy.trials)
        run_split(ctx, candidate, "holdout", policy.trials)
        holdout, holdout_final, holdout_extra, holdout_asked = _confirmed(ctx, base, candidate, "holdout")
        extra, asked = extra + holdout_extra, asked | holdout_asked
    outcomes = {side: [r.outcome for r in evaluation.records] for side, evaluation in final.items()}
    flips = flips_from_classified(classified, outcomes["baseline"], outcomes["candidate"])
    fixed = set(classified.loc[classified["flip"] == "fix", "task_id"])
    targeted = _targeted_fixes(ctx, final["baseline"], fixed, targets) if targets is not None else None
    verdict = decide_on_trials(classified, policy, targeted_fixes=targeted, holdout=holdout).model_copy(update={
        # what the verdict was decided on besides the outcome tables: `ratchet verify` re-derives it from these
        "flaky_tasks": _weighed_as_flaky(classified), "targeted_fixes": targeted,
        "holdout_flaky_tasks": _weighed_as_flaky(holdout) if holdout is not None else []})
    return GateResult(flips=flips, verdict=verdict, baseline=final["baseline"], candidate=final["candidate"],
                      confirmation_runs=extra, in_doubt=len(asked), baseline_holdout=holdout_final.get("baseline"),
                      candidate_holdout=holdout_final.get("candidate"))


def _weighed_as_flaky(classified: pd.DataFrame) -> list[str]:
    """The tasks the gate weighed as flaky (gates.statistics), which `ratchet verify` needs to re-derive it."""
    return sorted(classified.loc[classified["flaky"], "task_id"])


def _confirmed(ctx: CycleContext, base: ReleaseState, candidate: ReleaseState, split: str,
               ) -> tuple[pd.DataFrame, dict[str, Evaluation], int, set[str]]:
    """Classified flips on one split after adaptive confirmation, both sides' runs, extra runs, tasks asked."""
    policy = ctx.policy
    tasks = ctx.suite.split(split)
    states = {"baseline": base, "candidate": candidate}
    evaluations = {side: _stored(ctx, state, tasks, split) for side, state in states.items()}
    start = _confirmation_start(ctx, states, tasks, split, evaluations)
    tables = {side: _first_trials(evaluations[side].outcome_table(), getattr(start, side)) for side in states}
    counts = paired_counts(tables["baseline"], tables["candidate"])
    runs = {side: dict(zip(counts["task_id"], counts[column], strict=True))
            for side, column in (("baseline", "b_n"), ("candidate", "c_n"))}
    asked: set[str] = set()

    def sample(task_ids: list[str], side: str) -> dict[str, bool]:
        answers: dict[str, bool] = {}
        asked.update(task_ids)
        by_trials: dict[int, list[str]] = {}
        for task_id in task_ids:
            by_trials.setdefault(int(runs[side][task_id]), []).append(task_id)
        for done, group in sorted(by_trials.items()):
            label = f"{states[side].label} on {split}: confirmation trial {done + 1} of {len(group)} task(s)"
            more = run_tasks(ctx, states[side], split, [ctx.suite.tasks[t] for t in group], done + 1, label)
            answers.update({r.task_id: r.outcome.passed for r in more.records if r.trial == done})
        for task_id in answers:
            runs[side][task_id] += 1
        return answers

    confirmation = confirm(counts, sample, policy.alpha, policy.confirmation_cap, set(start.flaky),
                           policy.flaky_confirmation_cap)
    final = {side: _stored(ctx, state, tasks, split) for side, state in states.items()}
    return confirmation.classified, final, sum(confirmation.extra_runs.values()), asked


def _confirmation_start(ctx: CycleContext, states: dict[str, ReleaseState], tasks: list[Task], split: str,
                        evaluations: dict[str, Evaluation]) -> ConfirmationStart:
    """The counts and flaky set this gate's confirmation starts from: recorded by the first attempt,
    replayed by a restart (pipeline.confirmation_start)."""
    slugs = [run_key(states[side].artifact, ctx.suite, client_for(ctx, states[side].artifact)).slug
             for side in ("baseline", "candidate")]

    def now() -> ConfirmationStart:
        trials = {side: evaluations[side].outcome_table().groupby("task_id")["trial"].size().to_dict()
                  for side in states}
        return ConfirmationStart(baseline={t: int(n) for t, n in trials["baseline"].items()},
                                 candidate={t: int(n) for t, n in trials["candidate"].items()},
                                 flaky=sorted(flaky_in_history(ctx, states["baseline"], tasks)))

    return load_or_record(start_path(ctx.workspace / ".ratchet", *slugs, split), now)


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
    their own, so the gate asks for stronger evidence (a 1 / FLAKY_DIVISOR share of alpha) before counting them."""
    return flaky(flakiness_history(ctx, base, tasks))


def flakiness_history(ctx: CycleContext, base: ReleaseState, tasks: list[Task]) -> pd.DataFrame:
    key = run_key(base.artifact, ctx.suite, client_for(ctx, base.artifact))
    return flakiness_table(history(ctx.store, key.suite_hash, key.model_config_hash), {task.id for task in tasks})
