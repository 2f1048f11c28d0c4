"""`ratchet diff` (two releases: artifact diff and flip table) and `ratchet why` (one task across releases)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ratchet.agents import UserError
from ratchet.pipeline.cli.options import WorkspaceOption
from ratchet.pipeline.cli.output import console
from ratchet.releases import GitStore

if TYPE_CHECKING:  # these pull in pandas: imported when `diff` or `why` runs, not at every `ratchet` start-up
    from ratchet.gates import Flip
    from ratchet.pipeline.release_diff import ReleaseDiff
    from ratchet.pipeline.release_outcomes import ReleaseLine, TaskHistory

JsonOption = typer.Option(False, "--json", help="Print one JSON object instead of tables.")
COLLAPSE_AFTER = 8  # `ratchet why` shows longer runs of unchanged outcomes as one line (all of them with --all)
PATCH_STYLES = (("diff --git", "bold"), ("+++", "bold"), ("---", "bold"), ("@@", "cyan"), ("+", "green"), ("-", "red"))


def register(app: typer.Typer) -> None:
    app.command("diff")(diff)
    app.command("why")(why)


@contextmanager
def release_line(workspace: Path, agent: str) -> Iterator[ReleaseLine]:
    """The agent's ledger (read once) and evidence reader over one open repository."""
    from ratchet.pipeline.release_outcomes import ReleaseLine
    from ratchet.releases import EvidenceReader

    with GitStore(workspace) as git:
        reader = EvidenceReader(git)
        entries = reader.ledger(agent)
        if not entries:
            known = sorted({t.split("/")[0] for t in git.tag_names("*/v*")})
            raise UserError(f"{workspace}: no agent {agent!r}; agents here: {', '.join(known) or 'none'}")
        yield ReleaseLine(agent, entries, reader)


def diff(
    old: str = typer.Argument(..., help="The earlier release, e.g. coder/v1."),
    new: str = typer.Argument(..., help="The later release, e.g. coder/v3."),
    workspace: Path = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """The artifact diff between two releases, then the flips between their stored gate outcomes."""
    from ratchet.pipeline.release_diff import release_diff
    from ratchet.pipeline.release_outcomes import parse_release

    (agent, _), (other, _) = parse_release(old), parse_release(new)
    if agent != other:
        raise UserError(f"{old} and {new} are releases of different agents; diff two releases of one agent")
    with release_line(workspace, agent) as line:
        result = release_diff(line, old, new)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    print_patch(result)
    print_flips(result)


def print_patch(result: ReleaseDiff) -> None:
    if not result.patch:
        console.print(f"agents/{result.agent}/ is the same in {result.old} and {result.new}")
        return
    text = Text()
    for line in result.patch.splitlines():
        style = next((s for prefix, s in PATCH_STYLES if line.startswith(prefix)), "")
        text.append(line + "\n", style=style)
    console.print(text, end="", soft_wrap=True)


def print_flips(result: ReleaseDiff) -> None:
    console.print()
    if result.missing:
        console.print(f"no flip table: {escape(result.missing)}", soft_wrap=True)
        return
    assert result.old_outcomes and result.new_outcomes
    console.print(
        f"stored gate outcomes: {result.old}: {escape(result.old_outcomes.describe())}; "
        f"{result.new}: {escape(result.new_outcomes.describe())}",
        soft_wrap=True,
    )
    counts = ", ".join(f"{kind} {n}" for kind, n in result.counts.items())
    confirmed = ", ".join(f"{kind} {n}" for kind, n in result.confirmed.items())
    console.print(
        f"flips {result.old} -> {result.new}: {counts}; confirmed (one-sided Fisher, "
        f"alpha {result.alpha:g}): {confirmed}"
    )
    if not result.flips:
        console.print("no task changed its majority outcome")
        return
    table = Table(
        "task",
        "kind",
        "runs",
        "confirmed",
        "p",
        "error before",
        "error after",
        title=f"{result.agent}: tasks that changed, {result.old} -> {result.new}",
        box=box.SIMPLE_HEAD,
    )
    for flip in result.flips:
        table.add_row(
            flip.task_id,
            flip.kind,
            _flip_runs(flip),
            _yes_no(flip.confirmed),
            f"{flip.p_value:.4f}" if flip.p_value is not None else "",
            flip.baseline_error or "",
            flip.candidate_error or "",
        )
    console.print(table)


def _flip_runs(flip: Flip) -> str:
    if flip.baseline_runs is None or flip.candidate_runs is None:
        return ""
    from ratchet.releases import TaskRuns

    before = TaskRuns(passes=round(flip.baseline_pass_rate * flip.baseline_runs), runs=flip.baseline_runs)
    after = TaskRuns(passes=round(flip.candidate_pass_rate * flip.candidate_runs), runs=flip.candidate_runs)
    return f"{before} -> {after}"


def _yes_no(value: bool | None) -> str:
    return {True: "yes", False: "no"}.get(value, "") if value is not None else ""


def why(
    agent: str = typer.Argument(..., help="The agent, e.g. coder."),
    task_id: str = typer.Argument(..., help="A gate task id, e.g. HumanEval/11."),
    workspace: Path = WorkspaceOption,
    as_json: bool = JsonOption,
    every: bool = typer.Option(
        False,
        "--all",
        help=f"List every decision; by default runs of more than "
        f"{COLLAPSE_AFTER} unchanged outcomes are shown as one line.",
    ),
) -> None:
    """A task's gate outcome across every decision and release: when it broke, when it was fixed, by which RC."""
    with release_line(workspace, agent) as line:
        from ratchet.pipeline.release_outcomes import task_history

        history = task_history(line, task_id)
    if as_json:
        typer.echo(history.model_dump_json(indent=2))
        return
    print_task_history(history, every)


def print_task_history(history: TaskHistory, every: bool = False) -> None:
    rows = [
        [
            str(d.seq),
            d.decision,
            d.rc,
            d.release or "",
            d.remediation or d.intent,
            d.base_release or "",
            f"{d.baseline or '-'} -> {d.candidate or '-'}",
            d.kind or "",
            _yes_no(d.confirmed),
        ]
        for d in history.decisions
    ]
    print_rows(
        f"{history.agent}: {history.task_id} in every gate evaluation",
        ["#", "decision", "RC", "made", "change", "base", "passed/runs", "kind", "confirmed"],
        rows if every else _collapse_stable(rows, kind_column=7),
        shrink=4,
    )
    line = ", ".join(f"{s.release} {s.runs} {s.runs.letter}" for s in history.canonical[-COLLAPSE_AFTER:])
    skipped = len(history.canonical) - COLLAPSE_AFTER
    console.print(
        f"releases: {f'... {skipped} earlier, ' if skipped > 0 else ''}{line or 'none measured'}"
        + (f" (no stored outcomes: {', '.join(history.unmeasured)})" if history.unmeasured else ""),
        soft_wrap=True,
    )
    console.print(escape(history.summary), soft_wrap=True)


def _collapse_stable(rows: list[list[str]], kind_column: int) -> list[list[str]]:
    """Runs of more than COLLAPSE_AFTER rows where the task kept its outcome (P->P, F->F) shrink to one line."""
    shown: list[list[str]] = []
    run: list[list[str]] = []
    for row in [*rows, None]:
        if row is not None and row[kind_column] in ("P->P", "F->F"):
            run.append(row)
            continue
        if len(run) > COLLAPSE_AFTER:
            kinds = sorted({r[kind_column] for r in run})
            shown += [run[0], ["", f"... {len(run) - 2} more", "", "", "", "", "", "/".join(kinds), ""], run[-1]]
        else:
            shown += run
        run = []
        if row is not None:
            shown.append(row)
    return shown


def print_rows(title: str, headers: list[str], rows: list[list[str]], shrink: int | None = None) -> None:
    """A table laid out like rich's box.SIMPLE_HEAD, rendered as aligned text in one piece: rich's Table
    measures and renders every cell (about half a millisecond a row), too slow for a 1,000-release ledger.
    Column `shrink` is cut (with an ellipsis) when the table is wider than the console."""
    widths = [max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)]
    total = 4 + sum(widths) + 3 * (len(widths) - 1)
    if shrink is not None and total > console.width:
        widths[shrink] = max(len(headers[shrink]), widths[shrink] - (total - console.width))
        total = 4 + sum(widths) + 3 * (len(widths) - 1)

    def line(cells: list[str]) -> str:
        return (
            "  "
            + "   ".join(_fit(cell, width).ljust(width) for cell, width in zip(cells, widths, strict=True))
            + "  \n"
        )

    text = Text(title.center(total).rstrip() + "\n\n", style="italic")
    text.append(line(headers), style="bold")
    text.append(" " + "\u2500" * (total - 2) + " \n")
    text.append("".join(line(row) for row in rows) + "\n")
    console.print(text, end="", soft_wrap=True)


def _fit(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: width - 1] + "\u2026"
