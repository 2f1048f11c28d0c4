"""Gate policies (`gates/<name>.yaml` in a workspace) and the verdicts they give."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ratchet.agents import UserError, validation_message
from ratchet.gates.statistics import FLAKY_DIVISOR, ClassifiedTasks, wilson_interval

Decision = Literal["promote", "reject", "hold"]


FLAKY_CAP_DEFAULT = 7


class GatePolicy(BaseModel):
    """What a release candidate must show to be promoted."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = "default"
    description: str = ""
    trials: int = Field(
        default=2, ge=1, le=20, description="Runs per task and side on the gate split before confirmation."
    )
    max_regressions: int = Field(default=0, ge=0, description="Confirmed P->F flips allowed.")
    min_fixes: int = Field(default=1, ge=0, description="Confirmed F->P flips required.")
    require_manual_approval: bool = Field(default=False, description="Hold every passing RC for a person.")
    alpha: float = Field(
        default=0.05,
        gt=0,
        lt=0.5,
        description="Chance of calling any false flip in one gate, shared among the tasks that lean "
        "either way; each task's one-sided Fisher exact test runs at its share "
        "(gates.statistics).",
    )
    confirmation_cap: int = Field(
        default=11, ge=1, le=50, description="Most trials per side for a task that looks flipped."
    )
    flaky_confirmation_cap: int = Field(
        default=FLAKY_CAP_DEFAULT,
        ge=1,
        le=50,
        description="Most trials per side for a task known to be flaky (at most confirmation_cap).",
    )
    max_nfr: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Highest negative flip rate (share of tasks P->F) allowed; none: no limit.",
    )
    min_intent_coverage: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Share of confirmed fixes whose baseline failure shows a symptom the RC targeted; none: no rule.",
    )
    holdout: Literal["report", "gate"] = Field(
        default="report",
        description="report: holdout pass rates are shown only; gate: its confirmed regressions "
        "count against max_regressions too.",
    )
    smoke_max_drop: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="Largest fall of the smoke suite's pass rate (candidate below baseline) before the gate runs; "
        "more rejects the RC without a gate evaluation (gates.smoke).",
    )

    def content_hash(self) -> str:
        # flaky_confirmation_cap came later: at its default it stays out, so older policies keep their hash
        later = {"flaky_confirmation_cap"} if self.flaky_confirmation_cap == FLAKY_CAP_DEFAULT else None
        return hashlib.sha256(self.model_dump_json(exclude=later).encode()).hexdigest()


class Verdict(BaseModel):
    """The gate's decision with every number that decided it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = Field(
        default=2,
        description="2: alpha shared among the tasks that lean (gates.statistics); "
        "1: every task tested at alpha (verdicts made before that).",
    )
    decision: Decision
    stage: Literal["validate", "smoke", "gate"] = "gate"
    reasons: list[str]
    fixes: int = 0
    regressions: int = 0
    policy: GatePolicy
    policy_hash: str
    unconfirmed_fixes: int = 0
    unconfirmed_regressions: int = 0
    nfr: float | None = None
    relative_nfr: float | None = None
    baseline_pass_rate: float | None = None
    candidate_pass_rate: float | None = None
    candidate_pass_interval: tuple[float, float] | None = None
    intent_coverage: float | None = None
    holdout_regressions: int | None = None
    explanation: str = ""
    flaky_tasks: list[str] = Field(
        default_factory=list, description="Gate tasks known to be flaky: a 1 / FLAKY_DIVISOR share of alpha."
    )
    holdout_flaky_tasks: list[str] = Field(default_factory=list, description="The same for the holdout split.")
    targeted_fixes: int | None = Field(default=None, description="Input of min_intent_coverage (see decide_on_trials).")


def load_policy(workspace: Path, name: str = "default") -> GatePolicy:
    """Read and validate `gates/<name>.yaml`; UserError naming file and field."""
    path = workspace / "gates" / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"{path}: no gate policy named {name!r}; create gates/{name}.yaml or pass another --policy")
    return load_policy_file(path, name)


def load_policy_file(path: Path, name: str | None = None) -> GatePolicy:
    """Read and validate one policy file (named after the file unless `name` is given)."""
    name = name or path.stem
    if not path.is_file():
        raise UserError(f"{path}: no such policy file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}): save the file as UTF-8") from exc
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from exc
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of policy fields")
    try:
        return GatePolicy.model_validate({"name": name, **raw})
    except ValidationError as exc:
        raise UserError(f"{path}: {validation_message(exc)}") from exc


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What the YAML parser objected to and on which line, in one line."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    return f"{problem} (line {mark.line + 1})" if mark is not None else problem


def decide_on_trials(
    classified: ClassifiedTasks,
    policy: GatePolicy,
    targeted_fixes: int | None = None,
    holdout: ClassifiedTasks | None = None,
) -> Verdict:
    """Apply the policy to per-task flip classes (gates.statistics.classify): only confirmed flips count
    against `max_regressions` and towards `min_fixes`; `max_nfr` bounds the negative flip rate.
    Call it through gates.judge, which classifies and confirms first.

    `targeted_fixes`: how many confirmed fixes failed, on the baseline, with a symptom the RC said it
    targets (for `min_intent_coverage`). `holdout`: the holdout split classified the same way (for
    `holdout: gate`); its confirmed regressions count against `max_regressions` too.
    """
    fixes, regressions = classified.count("fix"), classified.count("regression")
    nfr, relative = classified.negative_flip_rate()
    coverage = (targeted_fixes / fixes) if targeted_fixes is not None and fixes else None
    holdout_regressions = holdout.count("regression") if policy.holdout == "gate" and holdout is not None else None
    reasons = _reasons(classified, policy, nfr, targeted_fixes, coverage, holdout if holdout_regressions else None)
    decision: Decision = "reject" if reasons else ("hold" if policy.require_manual_approval else "promote")
    if not reasons:
        reasons.append(
            f"{fixes} confirmed fix(es), {regressions} confirmed regression(s) within policy"
            + ("; policy requires a person's approval" if decision == "hold" else "")
        )
    _, b_runs, c_pass, c_runs = classified.runs()
    return Verdict(
        decision=decision,
        reasons=reasons,
        fixes=fixes,
        regressions=regressions,
        policy=policy,
        policy_hash=policy.content_hash(),
        unconfirmed_fixes=classified.count("unconfirmed_fix"),
        unconfirmed_regressions=classified.count("unconfirmed_regression"),
        nfr=round(nfr, 6),
        relative_nfr=None if relative is None else round(relative, 6),
        baseline_pass_rate=_rate(classified)[0],
        candidate_pass_rate=_rate(classified)[1],
        candidate_pass_interval=wilson_interval(c_pass, c_runs) if c_runs else None,
        intent_coverage=None if coverage is None else round(coverage, 4),
        holdout_regressions=holdout_regressions,
        explanation=_explanation(decision, classified, policy, reasons),
    )


def _rate(classified: ClassifiedTasks) -> tuple[float | None, float | None]:
    b_pass, b_runs, c_pass, c_runs = classified.runs()
    return (b_pass / b_runs if b_runs else None), (c_pass / c_runs if c_runs else None)


def _reasons(
    classified: ClassifiedTasks,
    policy: GatePolicy,
    nfr: float,
    targeted_fixes: int | None,
    coverage: float | None,
    holdout: ClassifiedTasks | None,
) -> list[str]:
    """Why the policy rejects, one reason per broken rule; none when it does not."""
    fixes, regressions = classified.count("fix"), classified.count("regression")
    reasons = []
    if regressions > policy.max_regressions:
        names = ", ".join(classified.tasks("regression")[:5])
        reasons.append(f"{regressions} confirmed regression(s), policy allows {policy.max_regressions}: {names}")
    if fixes < policy.min_fixes:
        reasons.append(f"{fixes} confirmed fix(es), policy requires at least {policy.min_fixes}")
    if policy.max_nfr is not None and nfr > policy.max_nfr:
        reasons.append(f"negative flip rate {nfr:.1%} above the policy's {policy.max_nfr:.1%}")
    if policy.min_intent_coverage is not None and coverage is not None and coverage < policy.min_intent_coverage:
        reasons.append(
            f"only {targeted_fixes} of {fixes} confirmed fixes show a targeted symptom ({coverage:.0%}); "
            f"policy requires {policy.min_intent_coverage:.0%}: the RC's intent does not explain its fixes"
        )
    if holdout is not None and holdout.count("regression") > policy.max_regressions:
        names = ", ".join(holdout.tasks("regression")[:5])
        reasons.append(
            f"holdout: {holdout.count('regression')} confirmed regression(s), policy allows "
            f"{policy.max_regressions}: {names}"
        )
    return reasons


def _explanation(decision: Decision, classified: ClassifiedTasks, policy: GatePolicy, reasons: list[str]) -> str:
    fixes, regressions = classified.count("fix"), classified.count("regression")
    nfr, relative = classified.negative_flip_rate()
    _, b_runs, _, c_runs = classified.runs()
    b_rate, c_rate = _rate(classified)
    return (
        f"{decision.upper()}: over {len(classified)} tasks ({b_runs} baseline and {c_runs} candidate runs), "
        f"{regressions} task(s) regressed and {fixes} were fixed, each with a one-sided Fisher p within its share "
        f"of alpha {policy.alpha} ({_family_note(classified)}); "
        f"{classified.count('unconfirmed_regression')} more looked regressed and "
        f"{classified.count('unconfirmed_fix')} looked fixed without enough "
        f"evidence. Negative flip rate {nfr:.1%}"
        + (f" ({relative:.2f}x the baseline's error rate)" if relative is not None else "")
        + (f"; pass rate {b_rate:.1%} -> {c_rate:.1%}" if b_rate is not None and c_rate is not None else "")
        + ". "
        + " ".join(reasons)
        + "."
    )


def _family_note(classified: ClassifiedTasks) -> str:
    """Who shared alpha (gates.statistics): the tasks that leaned either way, flaky ones at 1 / FLAKY_DIVISOR."""
    stable, flaky = classified.family()
    if not stable and not flaky:
        return "no task leaned either way"
    return f"shared by {stable} task(s) that leaned either way" + (
        f" and {flaky} flaky one(s) at 1/{FLAKY_DIVISOR} weight" if flaky else ""
    )


def reject_before_evaluation(
    reason: str, policy: GatePolicy, stage: Literal["validate", "smoke"] = "validate"
) -> Verdict:
    """The verdict for an RC that failed validation (or the smoke check) and never reached the gate."""
    explanation = (
        {
            "validate": "The candidate was rejected before any evaluation: ",
            "smoke": "The candidate was rejected before the gate, by the smoke check: ",
        }[stage]
        + reason
        + "."
    )
    return Verdict(
        decision="reject",
        stage=stage,
        reasons=[reason],
        policy=policy,
        policy_hash=policy.content_hash(),
        explanation=explanation,
    )
