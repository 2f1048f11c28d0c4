"""`ratchet gate`: the regression gate as a standalone CI tool over two evaluations.

Each side is a results file (JSONL, gates/results_file.py) or a version of a workspace's agent
(`coder/v2`, `rc/coder/3`) whose stored runs on `--split` are read from the run store.
Exit codes: 0 promote, 1 reject, 2 hold, 3 error (bad input, unreadable files, no stored runs).
"""

from __future__ import annotations

import json
import re
import sys
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

    from ratchet.gates import TaskClass

EXIT_CODES = {"promote": 0, "reject": 1, "hold": 2}
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
    workspace: Path = WorkspaceOption,
) -> None:
    """Compare two evaluations task by task and decide: exit 0 promote, 1 reject, 2 hold, 3 error."""
    # imported here: pandas and the statistics are for this command only, not every `ratchet` start-up
    from ratchet.gates import GatePolicy, JudgedSplit, judge, load_policy_file, paired_counts, write_junit

    try:
        chosen = load_policy_file(policy) if policy else GatePolicy(name="ci", min_fixes=0)
        pairs = paired_counts(_results(baseline, workspace, split), _results(candidate, workspace, split))
        if pairs.empty:
            raise RatchetError(f"{baseline} and {candidate} share no task id; nothing to compare")
        judged = judge(chosen, JudgedSplit(pairs))
        if junit is not None:
            write_junit(junit, judged.gate, judged.verdict)
    except RatchetError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(EXIT_ERROR)
    flipped = judged.gate.changed()
    if as_json:
        rows = [{k: v for k, v in row._asdict().items() if k not in ("b_rate", "c_rate")} for row in flipped]
        sys.stdout.write(
            json.dumps({"verdict": judged.verdict.model_dump(mode="json"), "flips": rows}, indent=2) + "\n"
        )
    else:
        _print(len(judged.gate), flipped, judged.verdict.explanation)
    sys.exit(EXIT_CODES[judged.verdict.decision])


def _results(source: str, workspace: Path, split: str) -> pd.DataFrame:
    """A results file, or the stored runs of a version (`coder/v2`, `rc/coder/3`) on one split."""
    from ratchet.gates import read_results

    path = Path(source)
    version = VERSION.fullmatch(source)
    if path.is_file() or not version:
        return read_results(path)
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
    return evaluation.outcome_table()[["task_id", "trial", "passed", "score"]]


def _print(compared: int, flipped: list[TaskClass], explanation: str) -> None:
    table = Table(
        "task",
        "flip",
        "baseline",
        "candidate",
        "p (regression)",
        "p (fix)",
        title=f"{compared} tasks compared; {len(flipped)} changed majority outcome",
        box=box.SIMPLE_HEAD,
    )
    order = {"regression": 0, "unconfirmed_regression": 1, "fix": 2, "unconfirmed_fix": 3}
    for row in sorted(flipped, key=lambda r: (order[r.flip], r.task_id)):
        table.add_row(
            row.task_id,
            row.flip.replace("_", " "),
            f"{row.b_pass}/{row.b_n}",
            f"{row.c_pass}/{row.c_n}",
            f"{row.p_regression:.3g}",
            f"{row.p_fix:.3g}",
        )
    if len(flipped):
        console.print(table)
    console.print(explanation, soft_wrap=True, highlight=False)
