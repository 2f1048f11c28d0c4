"""`ratchet schedule` (nightly cycles on a Prefect server) and `ratchet status`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer
from rich import box
from rich.table import Table

from ratchet.agents import RatchetError, UserError
from ratchet.pipeline.cli.options import WorkspaceOption
from ratchet.pipeline.cli.output import console


def register(app: typer.Typer) -> None:
    app.command("schedule")(schedule)
    app.command("status")(status)


def schedule(
    agent: str = typer.Argument(None, help="The agent to schedule, e.g. coder."),
    cron: str = typer.Option(None, "--cron", help="When, as cron: '0 2 * * *' is 02:00 every day."),
    timezone: str = typer.Option(
        None, "--timezone", help="IANA time zone of --cron, e.g. Europe/Berlin (default UTC)."
    ),
    list_: bool = typer.Option(False, "--list", help="List the scheduled cycles on the server."),
    remove: str = typer.Option(None, "--remove", help="Delete a scheduled cycle by name (from --list)."),
    workspace: Path = WorkspaceOption,
) -> None:
    """Run the agent's improvement cycle on a cron schedule: registers it with the Prefect server and serves it here
    until interrupted (needs PREFECT_API_URL)."""
    from ratchet.pipeline import schedules

    if list_:
        _print_schedules(schedules.scheduled_cycles())
        return
    if remove:
        schedules.remove_schedule(remove)
        console.print(f"removed {remove}")
        return
    if not agent or not cron:
        raise UserError(
            "say which agent and when: `ratchet schedule coder --cron '0 2 * * *'` (or --list / --remove NAME)"
        )
    _require_agent(workspace, agent)
    schedules.check_cron(cron, timezone)
    schedules.require_server()
    name = schedules.deployment_name(agent, workspace)
    console.print(
        f"serving {schedules.FLOW_NAME}/{name}: agent {agent} in {workspace}, cron {cron}"
        f" ({timezone or 'UTC'}); at most one cycle at a time; Ctrl-C stops serving (the schedule pauses)"
    )
    schedules.serve_schedule(workspace, agent, cron, timezone)


def _require_agent(workspace: Path, agent: str) -> None:
    from ratchet.releases import Registry

    Registry(workspace).current_release(agent)  # StateError naming the problem for a wrong agent or workspace


def _print_schedules(cycles: list) -> None:
    if not cycles:
        console.print("no scheduled cycles on this server; add one with `ratchet schedule <agent> --cron ...`")
        return
    table = Table(
        "name",
        "agent",
        "schedule",
        "next run (UTC)",
        "last run (UTC)",
        "last state",
        "workspace",
        title="Scheduled cycles",
        box=box.SIMPLE_HEAD,
    )
    for c in cycles:
        table.add_row(
            c.name,
            c.agent,
            ", ".join(c.schedules) + (" (paused)" if c.paused else ""),
            _when(c.next_run),
            _when(c.last_run),
            c.last_state or "",
            c.workspace,
        )
    console.print(table)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else ""


def status(workspace: Path = WorkspaceOption) -> None:
    """Per agent: the live release, the last decision, and (with a Prefect server) the last and next scheduled run."""
    from ratchet.pipeline import schedules
    from ratchet.pipeline.settings import load_settings
    from ratchet.releases import Registry

    settings = load_settings(workspace)
    registry = Registry(workspace)
    try:
        cycles = schedules.scheduled_cycles(workspace=workspace)
        server_note = None
    except RatchetError as exc:
        cycles, server_note = [], str(exc)
    table = Table(
        "agent",
        "live release",
        "last decision",
        "when (UTC)",
        "last scheduled run",
        "state",
        "next run",
        title=f"Ratchet status: {workspace}",
        box=box.SIMPLE_HEAD,
    )
    for agent in sorted(settings.agents) or ["coder"]:
        release = registry.current_release(agent)
        last = registry.ledger(agent)[-1]
        mine = [c for c in cycles if c.agent == agent]
        table.add_row(
            agent,
            release.tag,
            f"{last.decision} {last.release or last.rc or ''}".strip(),
            last.timestamp[:16].replace("T", " "),
            _when(mine[0].last_run) if mine else "",
            (mine[0].last_state or "") if mine else "",
            _when(mine[0].next_run) if mine else "not scheduled",
        )
    console.print(table)
    if server_note:
        console.print(f"[yellow]schedules unknown:[/] {server_note}", soft_wrap=True)
