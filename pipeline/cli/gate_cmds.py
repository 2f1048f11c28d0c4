"""`ratchet gate`: the regression gate as a standalone CI tool over two evaluations.

Each side is a results file (JSONL, gates/results_file.py) or a version of a workspace's agent
(`coder/v2`, `rc/coder/3`) whose stored runs on `--split` are read from the run store. No trial
can be added here, so what the counts cannot settle is inconclusive, with the trials per side that
would settle each open task. Nothing is dropped silently: baseline tasks the candidate lacks make
the verdict inconclusive (or reject, by policy), tasks only the candidate has and what the reader
noticed in the files (number ids, NaN scores) are named.
Exit codes: 0 promote, 1 reject, 2 inconclusive or hold (a person or more trials must decide),
3 error (bad input, unreadable files, no stored runs).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from ratchet.agents import RatchetError, UserError
from ratchet.pipeline.cli.options import WorkspaceOption
from ratchet.pipeline.cli.output import console

if TYPE_CHECKING:
    import pandas as pd

    from ratchet.gates import ClassifiedTasks, Judgement, TaskClass, Verdict


EXIT_CODES = {"promote": 0, "reject": 1, "hold": 2, "inconclusive": 2}
SHOWN = 20  # rows of the flip table by default
VERSION = re.compile(r"(?:rc/)?([a-z][a-z0-9_-]*)/v?\d+")
EXIT_ERROR = 3


def register(app: typer.Typer) -> None:
    app.command("gate")(gate)


def gate(
    baseline: str = typer.Option(
        ...,
        "--baseline",
        help="Results of the current release: a JSONL file (docs/formats.md) or a version such as coder/v2.",
    ),
    candidate: str = typer.Option(
        ..., "--candidate", help="Results of the candidate: a JSONL file or a version such as rc/coder/3."
    ),
    policy: Path | None = typer.Option(
        None,
        "--policy",
        help="Gate policy YAML (gates/<name>.yaml); default: 0 confirmed regressions, 0 fixes required, alpha 0.05.",
    ),
    junit: Path | None = typer.Option(None, "--junit", help="Also write JUnit XML: one testcase per regression."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict and the flips as JSON instead of a table."),
    split: str = typer.Option("gate", "--split", help="For versions: which split's stored runs to compare."),
    top: int = typer.Option(SHOWN, "--top", min=0, help="Rows of the flip table: the worst tasks first."),
    workspace: Path = WorkspaceOption,
) -> None:
    """Compare two evaluations task by task and decide: exit 0 promote, 1 reject, 2 inconclusive or hold, 3 error."""
    try:
        judged = _judge(baseline, candidate, policy, workspace, split)
        if junit is not None:
            from ratchet.gates import write_junit

            write_junit(junit, judged.gate, judged.verdict)
    except RatchetError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(EXIT_ERROR)
    if as_json:
        verdict = judged.verdict.model_dump(mode="json")
        sys.stdout.write(json.dumps({"verdict": verdict, "flips": _changed_rows(judged.gate)}, indent=2) + "\n")
    else:
        _print(judged.gate, judged.verdict, top)
    sys.exit(EXIT_CODES[judged.verdict.decision])


def _judge(baseline: str, candidate: str, policy: Path | None, workspace: Path, split: str) -> Judgement:
    """Read both sides, pair them by task id (naming what does not pair) and judge."""
    # imported here: pandas and the statistics are for this command only, not every `ratchet` start-up
    from ratchet.gates import GatePolicy, JudgedSplit, judge, load_policy_file, natural_key, paired_counts

    chosen = load_policy_file(policy) if policy else GatePolicy(name="ci", min_fixes=0)
    (base, base_notes), (cand, cand_notes) = (_results(side, workspace, split) for side in (baseline, candidate))
    pairs = paired_counts(base, cand)
    if pairs.empty:
        raise RatchetError(f"{baseline} and {candidate} share no task id; nothing to compare")
    base_ids, cand_ids = set(base["task_id"].unique()), set(cand["task_id"].unique())
    missing = sorted(base_ids - cand_ids, key=natural_key)
    only_candidate = sorted(cand_ids - base_ids, key=natural_key)
    judged = judge(chosen, JudgedSplit(pairs, missing=missing))
    notes = [f"baseline {baseline}: {note}" for note in base_notes] + [
        f"candidate {candidate}: {note}" for note in cand_notes
    ]
    if only_candidate:
        shown = ", ".join(only_candidate[:5]) + (
            f" and {len(only_candidate) - 5} more" if len(only_candidate) > 5 else ""
        )
        notes.append(f"{len(only_candidate)} task(s) only in the candidate, not judged (no baseline): {shown}")
    if not notes:
        return judged
    return replace(judged, verdict=judged.verdict.model_copy(update={"notes": notes}))


def _changed_rows(classified: ClassifiedTasks) -> list[dict[str, object]]:
    """Every task that changed, was confirmed or is undecided, as JSON records."""
    from ratchet.gates import TaskClass

    f = classified.frame
    chosen = f[~f["flip"].isin(["stable_pass", "stable_fail"]) | f["undecided"]]
    columns = [c for c in TaskClass._fields if c not in ("b_rate", "c_rate")]
    records = chosen[columns].astype({"task_id": str}).to_dict(orient="records")
    return [{str(name): value for name, value in record.items()} for record in records]


def _results(source: str, workspace: Path, split: str) -> tuple[pd.DataFrame, list[str]]:
    """A results file, or the stored runs of a version (`coder/v2`, `rc/coder/3`) on one split, with
    what the reader noticed in the data."""
    from ratchet.gates import load_results

    path = Path(source)
    version = VERSION.fullmatch(source)
    if path.is_file() or not version:
        loaded = load_results(path)
        return loaded.outcomes, loaded.notes
    from ratchet.gates import stored_evaluation
    from ratchet.pipeline import context

    agent = version.group(1)
    ctx = context.open_context(workspace, agent)
    rev = source if source.startswith("rc/") else f"refs/tags/{source}"
    state = context.checkout_artifact(ctx, rev, source)
    client = context.client_for(ctx, state.artifact)
    evaluation = stored_evaluation(state.artifact, client, ctx.suite, ctx.suite.split(split), ctx.store, split)
    if not evaluation.records:
        raise UserError(
            f"{source}: no stored runs on {ctx.suite.name}/{split}; run "
            f"`ratchet eval {source} --split {split} --trials 2` first"
        )
    return evaluation.outcome_table()[["task_id", "trial", "passed", "score"]], []


def _print(classified: ClassifiedTasks, verdict: Verdict, top: int) -> None:
    """The worst `top` tasks (confirmed regressions, then undecided, then the other changes), the
    counts per class, the notes and the explanation."""
    changed = classified.changed()
    worst = sorted(changed, key=_severity)[:top]
    table = Table(
        "task",
        "class",
        "baseline",
        "candidate",
        "p (regression)",
        "fall bound",
        title=f"{len(classified)} tasks compared; {len(changed)} changed or undecided"
        + (f" (the worst {len(worst)} shown; --top N for more)" if len(worst) < len(changed) else ""),
        box=box.SIMPLE_HEAD,
    )
    for row in worst:
        table.add_row(
            escape(row.task_id),
            "undecided" if row.undecided else row.flip.replace("_", " "),
            f"{row.b_pass}/{row.b_n}",
            f"{row.c_pass}/{row.c_n}",
            f"{row.p_regression:.3g}",
            "" if row.upper_drop != row.upper_drop else f"{row.upper_drop:.2f} (margin {row.margin:.2f})",
        )
    if worst:
        console.print(table)
    counts = {
        "confirmed regressions": classified.count("regression"),
        "undecided": classified.count_undecided(),
        "confirmed fixes": classified.count("fix"),
        "unconfirmed fixes": classified.count("unconfirmed_fix"),
    }
    console.print(" · ".join(f"{name} {count}" for name, count in counts.items()), highlight=False)
    for note in verdict.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True, highlight=False)
    console.print(escape(verdict.explanation), soft_wrap=True, highlight=False)


def _severity(row: TaskClass) -> tuple[int, float, str]:
    rank = 0 if row.flip == "regression" else 1 if row.undecided else 2 if row.flip == "unconfirmed_regression" else 3
    return rank, row.p_regression, row.task_id
