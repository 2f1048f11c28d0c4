"""`ratchet gate`: the regression gate as a standalone CI tool over two result files.

Exit codes: 0 promote, 1 reject, 2 hold, 3 error (bad input, unreadable files).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from agents.errors import RatchetError
from gates.junit import write_junit
from gates.policy import GatePolicy, decide_on_trials, load_policy_file
from gates.results_file import read_results
from gates.statistics import classify, paired_counts
from pipeline.cli.output import console

EXIT_CODES = {"promote": 0, "reject": 1, "hold": 2}
EXIT_ERROR = 3


def register(app: typer.Typer) -> None:
    app.command("gate")(gate)


def gate(
    baseline: Path = typer.Option(..., "--baseline", help="Results of the current release (JSONL, docs/formats.md)."),
    candidate: Path = typer.Option(..., "--candidate", help="Results of the candidate (JSONL)."),
    policy: Path | None = typer.Option(None, "--policy", help="Gate policy YAML (gates/<name>.yaml); default: "
                                                               "0 confirmed regressions, 0 fixes required, alpha 0.05."),
    junit: Path | None = typer.Option(None, "--junit", help="Also write JUnit XML: one testcase per regression."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict and the flips as JSON instead of a table."),
) -> None:
    """Compare two evaluations task by task and decide: exit 0 promote, 1 reject, 2 hold, 3 error."""
    try:
        chosen = load_policy_file(policy) if policy else GatePolicy(name="ci", min_fixes=0)
        pairs = paired_counts(read_results(baseline), read_results(candidate))
        if pairs.empty:
            raise RatchetError(f"{baseline} and {candidate} share no task id; nothing to compare")
        classified = classify(pairs, chosen.alpha)
        verdict = decide_on_trials(classified, chosen)
        if junit is not None:
            write_junit(junit, classified, verdict)
    except RatchetError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(EXIT_ERROR)
    flipped = classified[~classified["flip"].isin(["stable_pass", "stable_fail"])]
    if as_json:
        payload = {"verdict": verdict.model_dump(mode="json"),
                   "flips": flipped.drop(columns=["b_rate", "c_rate"]).to_dict(orient="records")}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        _print(classified, flipped, verdict.explanation)
    sys.exit(EXIT_CODES[verdict.decision])


def _print(classified, flipped, explanation: str) -> None:  # noqa: ANN001
    table = Table("task", "flip", "baseline", "candidate", "p (regression)", "p (fix)",
                  title=f"{len(classified)} tasks compared; {len(flipped)} changed majority outcome",
                  box=box.SIMPLE_HEAD)
    order = {"regression": 0, "unconfirmed_regression": 1, "fix": 2, "unconfirmed_fix": 3}
    for row in sorted(flipped.itertuples(), key=lambda r: (order[r.flip], str(r.task_id))):
        table.add_row(str(row.task_id), row.flip.replace("_", " "), f"{row.b_pass}/{row.b_n}",
                      f"{row.c_pass}/{row.c_n}", f"{row.p_regression:.3g}", f"{row.p_fix:.3g}")
    if len(flipped):
        console.print(table)
    console.print(explanation, soft_wrap=True, highlight=False)
