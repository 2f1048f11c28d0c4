"""Gate policies (`gates/<name>.yaml` in a workspace) and the verdicts they give."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ratchet.agents import UserError, validation_message
from ratchet.gates.statistics import RULE_VERSION, TaskRule

Decision = Literal["promote", "reject", "hold", "inconclusive"]

FLAKY_CAP_DEFAULT = 7  # the shipped policy (gates/default.yaml) asks for 11; older verdicts lack the field
LISTED = 100  # undecided and missing tasks a verdict names (it counts them all)
# fields added after policies were first hashed, with the value they had before they existed: at that
# value they stay out of the hash, so a policy (and a verdict) written before them keeps its hash
LATER_FIELDS: dict[str, object] = {
    "flaky_confirmation_cap": 7,
    "regression_margin": 0.4,
    "flaky_regression_margin": 0.8,
    "clearing_level": 0.1,
    "suite_alpha": 0.01,
    "missing_tasks": "inconclusive",
}


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
        default=20, ge=1, le=50, description="Most trials per side for a task that looks flipped."
    )
    flaky_confirmation_cap: int = Field(
        default=FLAKY_CAP_DEFAULT,
        ge=1,
        le=50,
        description="Most trials per side for a task known to be flaky (at most confirmation_cap).",
    )
    regression_margin: float = Field(
        default=0.4,
        gt=0,
        le=1,
        description="Smallest fall of a task's pass probability that counts as a regression: a task that leans "
        "towards one is cleared only when the data exclude a fall this large (gates.clearing).",
    )
    flaky_regression_margin: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="The same for a task known to be flaky, whose baseline rate is itself uncertain.",
    )
    clearing_level: float = Field(
        default=0.1,
        gt=0,
        lt=0.5,
        description="Chance, at each look, of clearing a task whose pass probability really fell by the margin.",
    )
    suite_alpha: float | None = Field(
        default=0.01,
        gt=0,
        lt=0.5,
        description="Level of the suite-level paired test (mean per-task change of pass rate < 0, "
        "gates.suite_test); none: no suite test.",
    )
    missing_tasks: Literal["inconclusive", "reject"] = Field(
        default="inconclusive",
        description="Verdict when the candidate lacks tasks the baseline has (a crashed eval looks like a clean "
        "candidate otherwise): inconclusive or reject. Never promote.",
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
        """sha256 of the policy's fields; a field of LATER_FIELDS at its old value stays out, so older
        policies keep their hash."""
        later = {name for name, old in LATER_FIELDS.items() if getattr(self, name) == old}
        return hashlib.sha256(self.model_dump_json(exclude=later or None).encode()).hexdigest()

    def task_rule(self, version: int = RULE_VERSION, sequential: bool = False) -> TaskRule:
        """The per-task rule of this policy, as verdicts of `version` applied it; `sequential`: the counts
        came from the confirmation loop, up to this policy's caps (gates.statistics.clearing_boundary)."""
        return TaskRule(
            alpha=self.alpha,
            version=version,
            margin=self.regression_margin,
            flaky_margin=self.flaky_regression_margin,
            clearing_level=self.clearing_level,
            cap=self.confirmation_cap if sequential else None,
            flaky_cap=min(self.confirmation_cap, self.flaky_confirmation_cap) if sequential else None,
        )


class UndecidedTask(BaseModel):
    """A task that leans towards a regression that is neither confirmed nor cleared."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    task_id: str
    baseline: str = Field(description="passes/runs")
    candidate: str = Field(description="passes/runs")
    p_regression: float
    drop_bound: float = Field(description="Upper confidence bound of the fall of its pass rate (gates.clearing).")
    margin: float
    more_trials: int | None = Field(
        description="Trials per side that would settle it if the observed rates held; none: more than 100."
    )


class Verdict(BaseModel):
    """The gate's decision with every number that decided it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = Field(
        default=RULE_VERSION,
        description="3: false discovery rate control, clearing and the suite test, three values (docs/gate-statistics.md); "
        "2: alpha shared among the tasks that lean, undecided tasks ignored; 1: every task tested at alpha.",
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
        default_factory=list, description="Gate tasks known to be flaky: 1 / FLAKY_DIVISOR weight, the flaky margin."
    )
    holdout_flaky_tasks: list[str] = Field(default_factory=list, description="The same for the holdout split.")
    targeted_fixes: int | None = Field(default=None, description="Input of min_intent_coverage (see decide_on_trials).")
    undecided_count: int = Field(default=0, description="Gate (and gated holdout) tasks neither confirmed nor cleared.")
    undecided: list[UndecidedTask] = Field(default_factory=list, description=f"The first {LISTED} of them.")
    suite_change: float | None = Field(default=None, description="Mean per-task change of pass rate (suite test).")
    suite_p: float | None = Field(default=None, description="One-sided p-value of the suite test (mean change < 0).")
    missing_count: int = Field(default=0, description="Baseline tasks the candidate lacks.")
    missing_tasks: list[str] = Field(default_factory=list, description=f"The first {LISTED} of them.")
    notes: list[str] = Field(default_factory=list, description="What the input held that the verdict did not use.")
    sequential: bool = Field(
        default=False,
        description="The counts came from the confirmation loop (the cycle): tasks were cleared at the "
        "sequential boundary (gates.statistics.clearing_boundary); an input of re-derivation.",
    )


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
