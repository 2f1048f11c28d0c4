"""`ratchet history`, `show`, `report`, `promote`, `reject`, `rollback`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

import typer
from rich.markdown import Markdown

from ratchet.agents import UserError
from ratchet.pipeline.cli.ledger_cmds import print_rows
from ratchet.pipeline.cli.options import AgentOption, WorkspaceOption
from ratchet.pipeline.cli.output import console, pct
from ratchet.releases import SPEC_MD, DecisionKind, GitStore, LedgerEntry, Registry

DECISIONS: tuple[str, ...] = get_args(DecisionKind)
DECISIONS_HELP = f"Only these decisions ({', '.join(DECISIONS)}); repeat the option or separate with commas."


def register(app: typer.Typer) -> None:
    app.command("history")(history)
    app.command("show")(show)
    app.command("report")(report)
    app.command("promote")(promote)
    app.command("rollback")(rollback)
    app.command("reject")(reject)


def history(
    workspace: Path = WorkspaceOption,
    agent: str = AgentOption,
    since: str = typer.Option(
        None,
        "--since",
        help="Only entries at or after this ISO date or datetime (UTC unless "
        "it names a zone), e.g. 2025-06-01 or 2025-06-01T12:00.",
    ),
    decisions: list[str] = typer.Option(
        None,
        "--decision",
        "--verdict",
        help=DECISIONS_HELP,
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the entries as a JSON list instead of a table."),
) -> None:
    """Every decision on the agent's version line, from the ledger on main."""
    entries = Registry(workspace).ledger(agent)
    if not entries:
        raise UserError(f"{workspace}: agent {agent!r} has no ledger; is it an agent of this workspace?")
    entries = filter_entries(entries, parse_since(since) if since else None, parse_decisions(decisions or []))
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json") for e in entries], indent=2))
        return
    if not entries:
        console.print(f"no ledger entry of {agent} matches the filters")
        return
    rows = [
        [
            str(e.seq),
            e.timestamp[5:16].replace("T", " "),
            e.decision,
            e.release or e.rc or "",
            e.remediation or "",
            str(e.fixes),
            str(e.regressions),
            f"{pct(e.baseline_gate_pass_rate)} -> {pct(e.gate_pass_rate)}" if e.gate_pass_rate is not None else "",
            pct(e.holdout_pass_rate) if e.holdout_pass_rate is not None else "",
            _who(e.actor),
        ]
        for e in entries
    ]
    print_rows(
        f"{agent}: release history",
        ["#", "when (UTC)", "decision", "version", "change", "fixes", "regr.", "gate pass rate", "holdout", "by"],
        rows,
        shrink=4,
    )


def parse_since(value: str) -> datetime:
    """An ISO date or datetime as an aware datetime (naive ones are UTC); UserError otherwise."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise UserError(
            f"--since {value!r}: expected an ISO date or datetime, e.g. 2025-06-01 or 2025-06-01T12:00"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_decisions(values: list[str]) -> set[str]:
    """`--decision promote,reject --decision inconclusive` -> {promote, reject, inconclusive}; UserError for
    unknown kinds."""
    wanted = {part.strip() for value in values for part in value.split(",") if part.strip()}
    unknown = sorted(wanted - set(DECISIONS))
    if unknown:
        raise UserError(f"--decision {', '.join(unknown)}: not a decision; choose from {', '.join(DECISIONS)}")
    return wanted


def filter_entries(entries: list[LedgerEntry], since: datetime | None, decisions: set[str]) -> list[LedgerEntry]:
    return [
        e
        for e in entries
        if (not decisions or e.decision in decisions)
        and (since is None or datetime.fromisoformat(e.timestamp) >= since)
    ]


def _who(actor: str) -> str:
    return "bot" if actor.startswith("Ratchet Bot") else actor.split(" <")[0]


def show(
    release: str = typer.Argument(..., help="A release tag such as coder/v2, or a rejected tag coder/rc3-rejected."),
    workspace: Path = WorkspaceOption,
) -> None:
    """Release notes (with the flip table) and the engineering spec behind a release."""
    with GitStore(workspace) as git:
        notes = git.tag_message(release)
        if notes is None:
            known = ", ".join(git.tag_names("*")) or "none"
            raise UserError(f"no release tag {release!r}; tags: {known}")
        entry = next(
            (
                e
                for e in Registry(workspace).ledger(release.split("/")[0])
                if e.release == release or (e.rc and release.endswith(f"rc{e.rc.rsplit('/', 1)[1]}-rejected"))
            ),
            None,
        )
        spec = git.read(f"refs/tags/{release}", f"{entry.evidence}/{SPEC_MD}") if entry and entry.evidence else None
    console.print(Markdown(notes))
    if spec:
        console.print(Markdown(spec.decode()))


def report(
    agent: str = typer.Argument(..., help="The agent, e.g. coder."),
    html: Path = typer.Option(
        ...,
        "--html",
        help="Where to write the page, e.g. report.html; the PNGs go next to it.",
        dir_okay=False,
        resolve_path=True,
    ),
    workspace: Path = WorkspaceOption,
) -> None:
    """One static HTML page with plots (pass rate per release, fixes and regressions per cycle, flip matrix)."""
    from ratchet.pipeline.report import write_report  # matplotlib is slow to import: only for this command

    for path in write_report(workspace, agent, html):
        console.print(f"wrote {path}", soft_wrap=True)


def promote(
    rc: str = typer.Argument(
        ..., help="A candidate on hold or found inconclusive (or, with --override, one the gate rejected)."
    ),
    reason: str = typer.Option(..., "--reason", help="Why (recorded in the ledger)."),
    override: bool = typer.Option(False, "--override", help="Promote against the gate's reject verdict."),
    actor: str = typer.Option(None, "--actor", help="'Name <email>' (default: git config user.name/email)."),
    workspace: Path = WorkspaceOption,
) -> None:
    """Promote a release candidate that the gate put on hold or found inconclusive, or override its rejection."""
    from ratchet.pipeline.decisions import decide_manually, resolve_actor

    entry, tag = decide_manually(workspace, rc, "promote", reason, resolve_actor(workspace, actor), override=override)
    how = " against the gate's verdict" if entry.override else ""
    console.print(f"promoted {rc} as {tag}{how} (ledger entry {entry.seq}, by {entry.actor})")


def rollback(
    agent: str = typer.Argument(..., help="The agent, e.g. coder."),
    to: str = typer.Option(..., "--to", help="The release whose artifact to restore, e.g. v1 or coder/v1."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded in the ledger)."),
    actor: str = typer.Option(None, "--actor", help="'Name <email>' (default: git config user.name/email)."),
    workspace: Path = WorkspaceOption,
) -> None:
    """Make a new release whose artifact equals an earlier one (nothing is deleted or rewritten)."""
    from ratchet.pipeline.decisions import resolve_actor, roll_back

    entry = roll_back(workspace, agent, to, reason, resolve_actor(workspace, actor))
    console.print(
        f"rolled {agent} back to {entry.rollback_to}: new release {entry.release} "
        f"(ledger entry {entry.seq}, by {entry.actor})"
    )


def reject(
    rc: str = typer.Argument(..., help="A candidate on hold or found inconclusive, e.g. rc/coder/3."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded in the ledger)."),
    actor: str = typer.Option(None, "--actor", help="'Name <email>' (default: git config user.name/email)."),
    workspace: Path = WorkspaceOption,
) -> None:
    """Reject a release candidate that the gate put on hold or found inconclusive."""
    from ratchet.pipeline.decisions import decide_manually, resolve_actor

    entry, _ = decide_manually(workspace, rc, "reject", reason, resolve_actor(workspace, actor))
    console.print(f"rejected {rc} (ledger entry {entry.seq}, by {entry.actor})")
