"""`ratchet verify`: audit the workspace's release history (releases.audit).

Exit codes: 0 when everything agrees, 1 when problems were found, 2 for bad input (an unknown
agent), 4 when the folder is no workspace.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from ratchet.pipeline.cli.options import WorkspaceOption
from ratchet.pipeline.cli.output import console

if TYPE_CHECKING:  # the audit pulls in pandas: imported only when `verify` runs, not for every command
    from ratchet.releases import AuditReport, Problem

EXIT_PROBLEMS = 1


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)


def verify(
    agent: str | None = typer.Option(None, "--agent", "-a", help="Only this agent (default: every agent)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of a table."),
    workspace: Path = WorkspaceOption,
) -> None:
    """Check the ledger's hash chain, tags against ledger entries, that every automatic verdict re-derives
    from its stored outcomes and policy, that manual decisions name a person and a reason, and that no
    commit on main changes an agent without a release: exit 0 when all agree, 1 with the list of problems."""
    started = time.perf_counter()
    from ratchet.releases import verify_workspace

    report = verify_workspace(workspace, agent)
    elapsed = time.perf_counter() - started
    if as_json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        _print(report, elapsed)
    if not report.ok:
        raise typer.Exit(EXIT_PROBLEMS)


def _print(report: AuditReport, elapsed: float) -> None:
    table = Table(
        "agent",
        "ledger entries",
        "tags",
        "gate verdicts re-derived",
        "problems",
        "warnings",
        title=f"ratchet verify · {report.workspace} (main {report.main[:10]})",
        box=box.SIMPLE_HEAD,
    )
    for audit in report.agents:
        problem_count = f"[bold red]{len(audit.problems)}[/]" if audit.problems else "0"
        table.add_row(
            audit.agent,
            str(audit.entries),
            str(audit.tags),
            f"{audit.rederived}/{audit.gate_decisions}",
            problem_count,
            str(len(audit.warnings)),
        )
    console.print(table)
    problems = [p for a in report.agents for p in a.problems]
    warnings = [p for a in report.agents for p in a.warnings]
    for heading, found in ((f"{len(problems)} problem(s):", problems), (f"{len(warnings)} warning(s):", warnings)):
        if found:
            console.print(f"[bold]{heading}[/]")
            for problem in found:
                console.print(_line(problem), soft_wrap=True)
    if report.ok:
        console.print(
            f"[bold green]OK[/]: hash chain, tags, gate verdicts, manual decisions and main's history "
            f"agree ({elapsed:.2f} s)"
        )
    else:
        console.print(f"[bold red]FAILED[/]: {len(problems)} problem(s) ({elapsed:.2f} s)")


def _line(problem: Problem) -> str:
    return escape(f"  [{problem.agent}] {problem.kind}: {problem.where}: {problem.message}")
