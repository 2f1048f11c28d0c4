"""From classified tasks to a verdict: the policy's rules, three values.

* **reject** when a rule is broken: more confirmed regressions than `max_regressions` (gate split,
  and the holdout with `holdout: gate`), fewer confirmed fixes than `min_fixes`, the negative flip
  rate above `max_nfr`, intent coverage below `min_intent_coverage`, the suite-level paired test
  (gates.suite_test) at `suite_alpha`, or missing candidate tasks when `missing_tasks: reject`;
* **inconclusive** when nothing is broken but some task leans towards a regression that is neither
  confirmed nor cleared (gates.statistics), or the candidate lacks tasks of the baseline: it is
  never promoted, and the verdict names each such task with the trials per side that would settle it;
* **promote** otherwise (**hold** when the policy wants a person's approval).

Verdicts of version 1 and 2 (`ratchet verify` re-derives them) had two values: undecided tasks and
the suite test did not exist, missing tasks were not looked at.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ratchet.gates.clearing import more_trials_needed, z_for
from ratchet.gates.policy import LISTED, Decision, GatePolicy, UndecidedTask, Verdict
from ratchet.gates.statistics import FLAKY_DIVISOR, RULE_VERSION, ClassifiedTasks, TaskClass, wilson_interval
from ratchet.gates.suite_test import SuiteChange, suite_change


def decide_on_trials(
    classified: ClassifiedTasks,
    policy: GatePolicy,
    targeted_fixes: int | None = None,
    holdout: ClassifiedTasks | None = None,
    version: int = RULE_VERSION,
    missing: Sequence[str] = (),
    suite_counts: pd.DataFrame | None = None,
) -> Verdict:
    """Apply the policy to per-task classes (gates.statistics.classify); call it through gates.judge,
    which classifies and confirms first.

    `targeted_fixes`: how many confirmed fixes failed, on the baseline, with a symptom the RC said it
    targets (for `min_intent_coverage`). `holdout`: the holdout split classified the same way (for
    `holdout: gate`); its confirmed regressions count against `max_regressions` too, its undecided
    tasks make the verdict inconclusive. `missing`: baseline tasks the candidate lacks. `suite_counts`:
    the paired counts the suite test runs on (default: the classified counts).
    """
    fixes, regressions = classified.count("fix"), classified.count("regression")
    coverage = (targeted_fixes / fixes) if targeted_fixes is not None and fixes else None
    gated_holdout = holdout if policy.holdout == "gate" and holdout is not None else None
    suite = None
    if version >= RULE_VERSION and policy.suite_alpha is not None:
        suite = suite_change(classified.frame if suite_counts is None else suite_counts)
    missing = list(missing) if version >= RULE_VERSION else []
    reasons = _reasons(classified, policy, targeted_fixes, coverage, gated_holdout, suite, missing)
    undecided = _undecided(classified, gated_holdout, policy) if version >= RULE_VERSION else []
    decision: Decision = "reject" if reasons else "promote"
    if not reasons and (undecided or missing):
        decision = "inconclusive"
        reasons = _open_questions(undecided, missing, policy)
    elif not reasons:
        decision = "hold" if policy.require_manual_approval else "promote"
        reasons.append(
            f"{fixes} confirmed fix(es), {regressions} confirmed regression(s) within policy"
            + (", every task that leaned towards a regression cleared" if version >= RULE_VERSION else "")
            + ("; policy requires a person's approval" if decision == "hold" else "")
        )
    nfr, relative = classified.negative_flip_rate()
    _, _, c_pass, c_runs = classified.runs()
    b_rate, c_rate = _rate(classified)
    return Verdict(
        version=version,
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
        baseline_pass_rate=b_rate,
        candidate_pass_rate=c_rate,
        candidate_pass_interval=wilson_interval(c_pass, c_runs) if c_runs else None,
        intent_coverage=None if coverage is None else round(coverage, 4),
        holdout_regressions=gated_holdout.count("regression") if gated_holdout is not None else None,
        explanation=_explanation(decision, classified, policy, reasons, len(undecided), suite),
        undecided_count=len(undecided),
        undecided=[_undecided_task(row, policy) for row in undecided[:LISTED]],
        suite_change=None if suite is None else round(suite.mean_change, 6),
        suite_p=None if suite is None else float(f"{suite.p_value:.6g}"),
        missing_count=len(missing),
        missing_tasks=missing[:LISTED],
    )


def _rate(classified: ClassifiedTasks) -> tuple[float | None, float | None]:
    b_pass, b_runs, c_pass, c_runs = classified.runs()
    return (b_pass / b_runs if b_runs else None), (c_pass / c_runs if c_runs else None)


def _undecided(classified: ClassifiedTasks, holdout: ClassifiedTasks | None, policy: GatePolicy) -> list[TaskClass]:
    return classified.undecided() + (holdout.undecided() if holdout is not None else [])


def _undecided_task(row: TaskClass, policy: GatePolicy) -> UndecidedTask:
    more = more_trials_needed(
        row.b_pass, row.b_n, row.c_pass, row.c_n, row.level, row.margin, z_for(policy.clearing_level)
    )
    return UndecidedTask(
        task_id=row.task_id,
        baseline=f"{row.b_pass}/{row.b_n}",
        candidate=f"{row.c_pass}/{row.c_n}",
        p_regression=float(f"{row.p_regression:.6g}"),
        drop_bound=round(row.upper_drop, 4),
        margin=row.margin,
        more_trials=more,
    )


def _open_questions(undecided: list[TaskClass], missing: list[str], policy: GatePolicy) -> list[str]:
    """Why the verdict is inconclusive: the undecided tasks (first five, with the trials that would
    settle them) and the missing ones."""
    questions = []
    if undecided:
        shown = "; ".join(_settle(row, policy) for row in undecided[:5])
        more = f" and {len(undecided) - 5} more" if len(undecided) > 5 else ""
        questions.append(
            f"{len(undecided)} task(s) lean towards a regression that is neither confirmed nor cleared: {shown}{more}"
        )
    if missing:
        questions.append(_missing_reason(missing))
    return questions


def _settle(row: TaskClass, policy: GatePolicy) -> str:
    task = _undecided_task(row, policy)
    trials = (
        f"~{task.more_trials} more trial(s) a side would settle it"
        if task.more_trials is not None
        else "more than 100 trials a side would be needed"
    )
    return f"{row.task_id} {task.baseline} -> {task.candidate} ({trials})"


def _missing_reason(missing: list[str]) -> str:
    names = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return f"the candidate has no result for {len(missing)} task(s) the baseline ran: {names}"


def _reasons(
    classified: ClassifiedTasks,
    policy: GatePolicy,
    targeted_fixes: int | None,
    coverage: float | None,
    holdout: ClassifiedTasks | None,
    suite: SuiteChange | None,
    missing: list[str],
) -> list[str]:
    """Why the policy rejects, one reason per broken rule; none when it does not."""
    fixes, regressions = classified.count("fix"), classified.count("regression")
    nfr, _ = classified.negative_flip_rate()
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
    if suite is not None and policy.suite_alpha is not None and suite.p_value <= policy.suite_alpha:
        reasons.append(
            f"the suite regressed as a whole: per-task pass rates fell by {-suite.mean_change:.2%} on average over "
            f"{suite.tasks} tasks (paired t-test p = {suite.p_value:.3g} <= suite_alpha {policy.suite_alpha})"
        )
    if missing and policy.missing_tasks == "reject":
        reasons.append(_missing_reason(missing) + " (policy: missing_tasks: reject)")
    return reasons


def _explanation(
    decision: Decision,
    classified: ClassifiedTasks,
    policy: GatePolicy,
    reasons: list[str],
    undecided: int,
    suite: SuiteChange | None,
) -> str:
    fixes, regressions = classified.count("fix"), classified.count("regression")
    nfr, relative = classified.negative_flip_rate()
    _, b_runs, _, c_runs = classified.runs()
    b_rate, c_rate = _rate(classified)
    return (
        f"{decision.upper()}: over {len(classified)} tasks ({b_runs} baseline and {c_runs} candidate runs), "
        f"{regressions} task(s) regressed and {fixes} were fixed, each confirmed by a one-sided Fisher test "
        f"at false discovery rate {policy.alpha} ({_family_note(classified)}); "
        f"{undecided} leaned towards a regression without being confirmed or cleared; "
        f"{classified.count('unconfirmed_fix')} more looked fixed without enough evidence. "
        f"Negative flip rate {nfr:.1%}"
        + (f" ({relative:.2f}x the baseline's error rate)" if relative is not None else "")
        + (f"; pass rate {b_rate:.1%} -> {c_rate:.1%}" if b_rate is not None and c_rate is not None else "")
        + (
            f"; mean per-task change {suite.mean_change:+.2%} (paired t-test p = {suite.p_value:.3g})"
            if suite is not None
            else ""
        )
        + ". "
        + " ".join(reasons)
        + "."
    )


def _family_note(classified: ClassifiedTasks) -> str:
    """Who leaned either way (the family the tests are judged in), flaky ones at 1 / FLAKY_DIVISOR weight."""
    stable, flaky = classified.family()
    if not stable and not flaky:
        return "no task leaned either way"
    return f"{stable} task(s) leaned either way" + (
        f" and {flaky} flaky one(s) at 1/{FLAKY_DIVISOR} weight" if flaky else ""
    )
