"""Evaluation and the regression gate: suites and tasks, verifiers and the sandbox, the run store,
evaluations, flip statistics, confirmation, the judge, policies and verdicts.

This face is the package's public surface: other packages import these names from `ratchet.gates`
(tests/test_architecture.py enforces it). Each name is imported from its module on first use, so
importing the face costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ratchet.agents import lazy_exports

if TYPE_CHECKING:
    from ratchet.gates.evaluation import Evaluation, evaluate, run_key, run_one, stored_evaluation
    from ratchet.gates.flakiness import flakiness_table, flaky
    from ratchet.gates.flips import KINDS, Flip, FlipKind, FlipTable, flips_from_classified
    from ratchet.gates.judgement import JudgedSplit, Judgement, judge
    from ratchet.gates.junit import write_junit
    from ratchet.gates.outcome import Outcome
    from ratchet.gates.policy import (
        GatePolicy,
        UndecidedTask,
        Verdict,
        load_policy,
        load_policy_file,
        reject_before_evaluation,
    )
    from ratchet.gates.results_file import LoadedResults, load_results, read_results
    from ratchet.gates.run_store import RunKey, RunRecord, RunStore, history
    from ratchet.gates.smoke import SmokeCheck, smoke_check
    from ratchet.gates.statistics import FLAKY_DIVISOR, ClassifiedTasks, TaskClass, paired_counts, paired_from_counts
    from ratchet.gates.suite import Suite, assign_splits, builtin_humaneval_tasks, builtin_tqbpp_tasks, load_suite
    from ratchet.gates.task import Task, natural_key

__all__ = [
    "ClassifiedTasks",
    "Evaluation",
    "FLAKY_DIVISOR",
    "Flip",
    "FlipKind",
    "FlipTable",
    "GatePolicy",
    "JudgedSplit",
    "Judgement",
    "KINDS",
    "LoadedResults",
    "Outcome",
    "RunKey",
    "RunRecord",
    "RunStore",
    "SmokeCheck",
    "Suite",
    "Task",
    "TaskClass",
    "UndecidedTask",
    "Verdict",
    "assign_splits",
    "builtin_humaneval_tasks",
    "builtin_tqbpp_tasks",
    "evaluate",
    "flakiness_table",
    "flaky",
    "flips_from_classified",
    "history",
    "judge",
    "load_policy",
    "load_policy_file",
    "load_results",
    "load_suite",
    "natural_key",
    "paired_counts",
    "paired_from_counts",
    "read_results",
    "reject_before_evaluation",
    "run_key",
    "run_one",
    "smoke_check",
    "stored_evaluation",
    "write_junit",
]
__getattr__ = lazy_exports(
    __name__,
    {
        "evaluation": ["Evaluation", "evaluate", "run_key", "run_one", "stored_evaluation"],
        "flakiness": ["flakiness_table", "flaky"],
        "flips": ["Flip", "FlipKind", "FlipTable", "KINDS", "flips_from_classified"],
        "judgement": ["JudgedSplit", "Judgement", "judge"],
        "junit": ["write_junit"],
        "outcome": ["Outcome"],
        "policy": [
            "GatePolicy",
            "UndecidedTask",
            "Verdict",
            "load_policy",
            "load_policy_file",
            "reject_before_evaluation",
        ],
        "results_file": ["LoadedResults", "load_results", "read_results"],
        "run_store": ["RunKey", "RunRecord", "RunStore", "history"],
        "smoke": ["SmokeCheck", "smoke_check"],
        "statistics": ["ClassifiedTasks", "FLAKY_DIVISOR", "TaskClass", "paired_counts", "paired_from_counts"],
        "suite": ["Suite", "assign_splits", "builtin_humaneval_tasks", "builtin_tqbpp_tasks", "load_suite"],
        "task": ["Task", "natural_key"],
    },
)
