"""The improvement cycle as a Prefect flow: one task per stage, per-item work inside with asyncio.

`improve_cycle(workspace, agent)` runs on Prefect's local engine (a temporary local
server starts on first use when no PREFECT_API_URL is set).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from prefect import Flow, Task, task
from prefect.cache_policies import NO_CACHE

from ratchet.agents import MASK, UserError, redact, redact_strings, secret_values
from ratchet.critics import EngineeringSpec, SymptomReport
from ratchet.gates import Evaluation, reject_before_evaluation
from ratchet.pipeline import context, stages
from ratchet.pipeline.context import CycleContext, ReleaseState
from ratchet.pipeline.cycle_result import CycleResult
from ratchet.pipeline.locking import cycle_lock
from ratchet.pipeline.process_setup import setup
from ratchet.pipeline.publish import publish
from ratchet.pipeline.record import Evidence, rate, record
from ratchet.pipeline.synthesis import Proposal
from ratchet.pipeline.validate import validate_proposal
from ratchet.releases import CandidateRef, rejected_tag

RUN_LOGGERS = ("prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.extra")
P = ParamSpec("P")
R = TypeVar("R")


def _task(fn: Callable[P, R], name: str) -> Task[P, R]:
    """A Prefect task for one stage: no input hashing (stage inputs are live objects), no result storage."""
    return task(name=name, cache_policy=NO_CACHE, persist_result=False)(fn)


resolve_task = _task(stages.resolve_release, name="resolve")
run_task = task(name="evaluate", task_run_name="evaluate/{split}", cache_policy=NO_CACHE, persist_result=False)(
    stages.run_split
)
critique_task = _task(stages.critique, name="critique")
diagnose_task = _task(stages.diagnose_reports, name="diagnose")
synthesize_task = _task(stages.propose, name="synthesize")
candidate_task = _task(stages.create_candidate, name="create-candidate")
validate_task = _task(validate_proposal, name="validate")
smoke_task = _task(stages.smoke, name="smoke")
gate_task = _task(stages.gate, name="gate")
record_task = _task(record, name="record")
publish_task = _task(publish, name="publish")


class RedactedParametersFlow(Flow[P, R]):
    """A Prefect flow whose parameters reach Prefect (its API, database and UI) with every secret masked:
    credentials in an `api_base` URL, key values, secret-shaped tokens. The flow function still gets
    them as passed, in this process. (`with_options` returns a plain Flow: wrap again if you use it.)"""

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        return redact_strings(super().serialize_parameters(parameters), secret_values())


def redacted_flow(**options: Any) -> Callable[[Callable[P, R]], RedactedParametersFlow[P, R]]:
    """`@flow(...)` for a RedactedParametersFlow."""
    return lambda fn: RedactedParametersFlow(fn, **options)


class SecretsLogFilter(logging.Filter):
    """Masks secrets (URL credentials, key values, key-shaped tokens) in a log record's message and
    traceback before a handler formats it: Prefect's API handler (its database) and the console alike."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = secret_values()
        record.msg, record.args = redact(record.getMessage(), secrets), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        return True


def mask_secrets_in_run_logs() -> None:
    """Put a SecretsLogFilter on every handler of Prefect's run loggers (once each; call again after
    Prefect reconfigures logging)."""
    for name in RUN_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, SecretsLogFilter) for f in handler.filters):
                handler.addFilter(SecretsLogFilter())


@redacted_flow(name="improve-cycle", flow_run_name="improve-cycle/{agent}", persist_result=False, log_prints=False)
def improve_cycle(
    workspace: str, agent: str = "coder", model: str | None = None, api_base: str | None = None
) -> CycleResult:
    """Run the current release, critique, diagnose, synthesize one RC, gate it and record the decision.

    Prefect stores the parameters with secrets masked (`api_base` shows `http://[REDACTED]@host/v1`);
    a run started again from the stored parameters refuses a masked api_base rather than calling it."""
    setup()
    mask_secrets_in_run_logs()
    if api_base is not None and MASK in api_base:
        raise UserError(
            f"api_base {api_base!r} holds masked credentials (Prefect never stores them): "
            "start the cycle with the real URL (--api-base or $RATCHET_API_BASE)"
        )
    root = Path(workspace).resolve()
    with cycle_lock(root, agent):
        ctx = context.open_context(root, agent, model_override=model, api_base=api_base)
        release, base = resolve_task(ctx)
        dev = run_task(ctx, base, "dev")
        reports = critique_task(ctx, dev)
        spec = diagnose_task(ctx, reports, release.tag, "dev")
        summary: dict[str, Any] = dict(
            agent=agent,
            base_release=release.tag,
            model=dev.summary.model,
            simulated=dev.summary.simulated,
            dev_runs=dev.summary.runs,
            dev_pass_rate=round(dev.summary.pass_rate, 4),
            patterns=[(p.label, p.count) for p in spec.patterns[:5]],
        )
        if spec.failed == 0:
            return CycleResult(status="nothing_to_fix", **summary)
        proposal = synthesize_task(ctx, spec, base)
        if proposal is None:
            return CycleResult(status="no_proposal", **summary)
        rc = candidate_task(ctx, proposal, base.files)
        evidence = _judge(ctx, rc, base, proposal, spec, reports, release.tag, dev)
        _, new_tag = record_task(ctx, rc, evidence)
        publish_task(ctx, rc, evidence, new_tag)
        return _decided(ctx, rc, proposal, evidence, new_tag, summary)


def _decided(
    ctx: CycleContext,
    rc: CandidateRef,
    proposal: Proposal,
    evidence: Evidence,
    new_tag: str | None,
    summary: dict[str, Any],
) -> CycleResult:
    """What a cycle that reached a decision reports."""
    flips, verdict = evidence.flips, evidence.verdict
    return CycleResult(
        status="decided",
        rc=rc.branch,
        remediation=proposal.remediation,
        intent=proposal.intent,
        counts=flips.counts() if flips else {},
        confirmed=flips.confirmed_counts() if flips else {},
        trials=ctx.policy.trials,
        confirmation_runs=evidence.confirmation_runs,
        in_doubt=evidence.in_doubt,
        decision=verdict.decision,
        stage=verdict.stage,
        reasons=verdict.reasons,
        new_tag=new_tag,
        rejected_tag=rejected_tag(ctx.agent, rc.number) if verdict.decision == "reject" else None,
        baseline_gate_pass_rate=rate(evidence.baseline_gate),
        gate_pass_rate=rate(evidence.candidate_gate),
        baseline_holdout_pass_rate=rate(evidence.baseline_holdout),
        holdout_pass_rate=rate(evidence.candidate_holdout),
        smoke=evidence.smoke.summary() if evidence.smoke else None,
        **summary,
    )


def _judge(
    ctx: CycleContext,
    rc: CandidateRef,
    base: ReleaseState,
    proposal: Proposal,
    spec: EngineeringSpec,
    reports: list[SymptomReport],
    base_tag: str,
    dev: Evaluation,
) -> Evidence:
    """Validate the RC, then evaluate baseline and RC on gate (and holdout, for the report) and gate it."""
    common: dict[str, Any] = dict(
        base_release=base_tag,
        model=dev.summary.model,
        simulated=dev.summary.simulated,
        spec=spec,
        reports=reports,
        proposal=proposal,
    )
    problem = validate_task(ctx.agent, base.files, proposal.changes, ctx.settings.models)
    if problem is not None:
        return Evidence(verdict=reject_before_evaluation(problem, ctx.policy), **common)
    candidate = context.checkout_artifact(ctx, rc.commit, rc.branch)
    smoke = smoke_task(ctx, base, candidate)
    if smoke is not None and not smoke.passed:
        return Evidence(
            verdict=reject_before_evaluation(smoke.summary(), ctx.policy, stage="smoke"), smoke=smoke, **common
        )
    trials = ctx.policy.trials
    run_task(ctx, base, "gate", trials)  # reused from the run store when the previous cycle ran it
    run_task(ctx, candidate, "gate", trials)
    baseline_holdout = run_task(ctx, base, "holdout")
    candidate_holdout = run_task(ctx, candidate, "holdout")
    judged = gate_task(ctx, base, candidate, proposal.targets)
    return Evidence(
        verdict=judged.verdict,
        flips=judged.flips,
        baseline_gate=judged.baseline,
        candidate_gate=judged.candidate,
        baseline_holdout=judged.baseline_holdout or baseline_holdout,
        candidate_holdout=judged.candidate_holdout or candidate_holdout,
        **common,
        confirmation_runs=judged.confirmation_runs,
        in_doubt=judged.in_doubt,
        smoke=smoke,
    )
