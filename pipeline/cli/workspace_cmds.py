"""`ratchet init` and `ratchet quickstart`."""

from __future__ import annotations

from pathlib import Path

import typer

from ratchet.agents import UserError
from ratchet.pipeline.cli.output import console, print_cycle
from ratchet.pipeline.cli.runner import run_cycle
from ratchet.pipeline.workspace import init_workspace


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("quickstart")(quickstart)


def init(directory: Path = typer.Argument(..., help="New workspace folder (must be absent or empty).")) -> None:
    """Create a workspace: git repo on main, demo agent `coder`, HumanEval suite, default gate, tag coder/v1."""
    refs = init_workspace(directory.resolve())
    console.print(f"created workspace {directory} with release {', '.join(r.tag for r in refs)}")
    console.print(f"next: ratchet cycle --workspace {directory}")


def quickstart(
    directory: Path = typer.Option(Path("ratchet-demo"), "--dir", help="Where to create the demo workspace."),
    max_cycles: int = typer.Option(5, "--max-cycles", min=1, max=20, help="Stop after this many cycles."),
) -> None:
    """Create a demo workspace and run improvement cycles until one is rejected or inconclusive, or nothing is left
    to fix."""
    target = directory.resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(
            f"{directory}: already exists and is not empty; remove it or pass --dir NEW_DIR (nothing was changed)"
        )
    init_workspace(target)
    console.print(f"demo workspace: {directory} (agent coder, suite humaneval, release coder/v1)")
    for number in range(1, max_cycles + 1):
        result = run_cycle(target, "coder")
        print_cycle(number, result)
        if result.status != "decided" or result.decision in ("reject", "inconclusive"):  # inconclusive: a person's turn
            break
    console.rule("Done")
    console.print(f"see the history:   ratchet history --workspace {directory}")
    console.print(f"read a release:    ratchet show coder/v2 --workspace {directory}")
    console.print(f"git agrees:        git -C {directory} tag; git -C {directory} log --oneline --all")
