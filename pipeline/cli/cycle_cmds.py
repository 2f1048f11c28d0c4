"""`ratchet cycle` and `ratchet eval`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from ratchet.agents import UserError
from ratchet.pipeline.cli.options import AgentOption, ApiBaseOption, ModelOption, WorkspaceOption
from ratchet.pipeline.cli.output import RichReporter, console, model_label, pct, print_cycle, progress_bars
from ratchet.pipeline.cli.runner import run_cycle
from ratchet.pipeline.progress import use_reporter

if TYPE_CHECKING:  # pandas only for `ratchet flaky`
    import pandas as pd


def register(app: typer.Typer) -> None:
    app.command("cycle")(cycle)
    app.command("eval")(eval_release)
    app.command("flaky")(flaky_tasks)


def cycle(
    workspace: Path = WorkspaceOption,
    agent: str = AgentOption,
    model: str = ModelOption,
    api_base: str = ApiBaseOption,
) -> None:
    """Run one improvement cycle for an agent (Prefect flow `improve-cycle`)."""
    result = run_cycle(workspace, agent, model, api_base)
    print_cycle(1, result)


def eval_release(
    release: str = typer.Argument(..., help="A release such as coder/v1, or an RC branch such as rc/coder/2."),
    split: str = typer.Option("gate", "--split", help="dev, gate or holdout."),
    trials: int = typer.Option(1, "--trials", min=1, max=20),
    model: str = ModelOption,
    api_base: str = ApiBaseOption,
    workspace: Path = WorkspaceOption,
) -> None:
    """Run a release on one split of its suite and print the pass rate."""
    from ratchet.pipeline import context, stages

    agent = _agent_of(release)
    ctx = context.open_context(workspace, agent, model_override=model, api_base=api_base)
    rev = release if release.startswith("rc/") else f"refs/tags/{release}"
    state = context.checkout_artifact(ctx, rev, release)
    with progress_bars() as bars, use_reporter(RichReporter(bars)):
        evaluation = stages.run_split(ctx, state, split, trials)
    summary = evaluation.summary
    console.print(
        f"{release} on {ctx.suite.name}/{split}: {summary.passed}/{summary.runs} passed "
        f"({pct(summary.pass_rate)}); model {model_label(summary.model, summary.simulated)}"
        f"; {summary.reused} run(s) reused from the run store"
    )
    errors = evaluation.outcome_table().query("not passed")["error_type"].value_counts()
    if len(errors):
        table = Table("error type", "runs", title="Failures")
        for name, count in errors.items():
            table.add_row(str(name), str(count))
        console.print(table)


def flaky_tasks(
    agent: str = AgentOption,
    split: str = typer.Option("gate", "--split", help="dev, gate or holdout."),
    model: str = ModelOption,
    api_base: str = ApiBaseOption,
    workspace: Path = WorkspaceOption,
) -> None:
    """Tasks whose stored runs look like noise rather than stable outcomes (gates.flakiness), most likely first."""
    from ratchet.gates import FLAKY_DIVISOR, flaky
    from ratchet.pipeline import context, stages

    ctx = context.open_context(workspace, agent, model_override=model, api_base=api_base)
    _, base = stages.resolve_release(ctx)
    table = stages.flakiness_history(ctx, base, ctx.suite.split(split))
    found = flaky(table)
    if table.empty:
        console.print(
            f"no stored runs of {ctx.suite.name}/{split} for {agent}'s model yet; run a cycle or "
            f"`ratchet eval {base.label} --split {split} --trials 2` first"
        )
        return
    repeated = int((table["versions"] > 0).sum())
    console.print(
        f"{ctx.suite.name}/{split}: {len(found)} flaky task(s) among {len(table)} with stored runs "
        f"({repeated} run more than once by one version); a flaky task weighs 1/{FLAKY_DIVISOR} of a stable one in the gate's exact tests "
        "and is cleared against the flaky margin"
    )
    if found:
        console.print(_flaky_table(table, found))


def _flaky_table(table: pd.DataFrame, found: set[str]) -> Table:
    """The flaky tasks' rows of a flakiness table (gates.flakiness), most likely first."""
    rows = Table(
        "task",
        "p(flaky)",
        "versions mixed / repeated",
        "swings across versions",
        "runs",
        "pass rate",
        title="Flaky tasks",
    )
    shown = table.loc[
        table["task_id"].isin(found),
        ["task_id", "p_flaky", "mixed_versions", "versions", "swings", "runs", "pass_rate"],
    ]
    for task_id, p_flaky, mixed_versions, versions, swings, runs, pass_rate in shown.itertuples(index=False, name=None):
        rows.add_row(
            str(task_id), f"{p_flaky:.2f}", f"{mixed_versions} / {versions}", str(swings), str(runs), pct(pass_rate)
        )
    return rows


def _agent_of(release: str) -> str:
    match = re.fullmatch(r"(?:rc/)?([a-z][a-z0-9_-]*)/v?\d+", release)
    if not match:
        raise UserError(f"{release!r}: expected a release like coder/v1 or a candidate like rc/coder/2")
    return match.group(1)
