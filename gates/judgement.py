"""The judge: paired outcomes in, a verdict out. The one place where pairing, classification,
confirmation and the policy meet; the cycle (pipeline.stages), `ratchet gate` on result files and
`ratchet verify`'s re-derivation (releases.rederive) all call `judge`.

A side of the judgement is a `JudgedSplit`: the paired pass counts of one split (gates.statistics
.paired_counts), the tasks known to be flaky there, the baseline tasks the candidate lacks, and, in
the cycle, a sampler that runs one more trial of some tasks on one side (gates.confirmation). With
a sampler, tasks in doubt get confirmation trials before the policy decides; without one (results
files, re-derivation) the counts are classified as they are, and what they cannot settle makes the
verdict inconclusive (gates.verdicts). The verdict is a function of the final counts alone, so
`ratchet verify` re-derives it from the stored outcome tables, with the rule of the verdict's version.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import pandas as pd

from ratchet.gates.confirmation import Sampler, confirm
from ratchet.gates.policy import GatePolicy, Verdict
from ratchet.gates.statistics import RULE_VERSION, ClassifiedTasks, classify
from ratchet.gates.verdicts import decide_on_trials

# the number of confirmed fixes whose baseline failure shows a symptom the RC targeted, from those fixes
TargetedFixes = Callable[[list[str]], int]


@dataclass(frozen=True)
class JudgedSplit:
    """One split's evidence for the judge."""

    pairs: pd.DataFrame
    flaky: Collection[str] = ()
    sample: Sampler | None = None
    missing: Sequence[str] = ()  # baseline tasks the candidate has no result for
    # paired counts of the runs every task got, before confirmation chose some to run again: the suite
    # test's sample (adaptive trials would bias it); None: `pairs` as given
    first: pd.DataFrame | None = None


@dataclass(frozen=True)
class Judgement:
    """The verdict with the classified tables it was decided on and what confirming them cost."""

    verdict: Verdict
    gate: ClassifiedTasks
    holdout: ClassifiedTasks | None = None
    confirmation_runs: int = 0
    rounds: int = 0
    extra_runs: dict[str, int] = field(default_factory=dict)


def judge(
    policy: GatePolicy,
    gate: JudgedSplit,
    holdout: JudgedSplit | None = None,
    targeted_fixes: int | TargetedFixes | None = None,
    version: int = RULE_VERSION,
    sequential: bool | None = None,
) -> Judgement:
    """Classify (and, with a sampler, confirm) each split, then apply the policy.

    `holdout` counts only when the policy says `holdout: gate`. `targeted_fixes` is the recorded number
    (re-derivation) or a function of the confirmed fixes (the cycle). `version` is the rule's version
    (gates.policy.Verdict.version): older ones only to re-derive verdicts made under them. `sequential`:
    the counts come from the confirmation loop (default: when the gate split has a sampler;
    re-derivation passes the recorded value).
    """
    if sequential is None:
        sequential = gate.sample is not None
    gate_tasks, gate_cost = _classified(policy, gate, version, sequential)
    holdout_tasks, holdout_cost = None, {"rounds": 0, "baseline": 0, "candidate": 0}
    if holdout is not None and policy.holdout == "gate":
        holdout_tasks, holdout_cost = _classified(policy, holdout, version, sequential)
    if callable(targeted_fixes):
        targeted_fixes = targeted_fixes(gate_tasks.tasks("fix"))
    verdict = decide_on_trials(
        gate_tasks,
        policy,
        targeted_fixes=targeted_fixes,
        holdout=holdout_tasks,
        version=version,
        missing=gate.missing,
        suite_counts=gate.first if gate.first is not None else gate.pairs,
    )
    # what the verdict was decided on besides the outcome tables: `ratchet verify` re-derives it from these
    verdict = verdict.model_copy(
        update={
            "flaky_tasks": gate_tasks.flaky_tasks(),
            "targeted_fixes": targeted_fixes,
            "holdout_flaky_tasks": holdout_tasks.flaky_tasks() if holdout_tasks is not None else [],
            "sequential": sequential,
        }
    )
    extra = {side: gate_cost[side] + holdout_cost[side] for side in ("baseline", "candidate")}
    return Judgement(
        verdict=verdict,
        gate=gate_tasks,
        holdout=holdout_tasks,
        confirmation_runs=sum(extra.values()),
        rounds=gate_cost["rounds"] + holdout_cost["rounds"],
        extra_runs=extra,
    )


def _classified(
    policy: GatePolicy, split: JudgedSplit, version: int, sequential: bool
) -> tuple[ClassifiedTasks, dict[str, int]]:
    rule = policy.task_rule(version, sequential)
    if split.sample is None:
        return ClassifiedTasks(classify(split.pairs, rule, split.flaky)), {
            "rounds": 0,
            "baseline": 0,
            "candidate": 0,
        }
    confirmation = confirm(
        split.pairs,
        split.sample,
        rule,
        policy.confirmation_cap,
        split.flaky,
        policy.flaky_confirmation_cap,
        wants_fixes=policy.min_fixes > 0 or policy.min_intent_coverage is not None,
    )
    return ClassifiedTasks(confirmation.classified), {"rounds": confirmation.rounds, **confirmation.extra_runs}
