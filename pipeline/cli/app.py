"""The `ratchet` command: typer app, global options, error handling."""

from __future__ import annotations

import os
import sys
import traceback

import typer
from rich.markup import escape

from ratchet.agents import RatchetError, StateError
from ratchet.pipeline.cli import (
    audit_cmds,
    cycle_cmds,
    gate_cmds,
    ledger_cmds,
    release_cmds,
    schedule_cmds,
    serve_cmds,
    workspace_cmds,
)
from ratchet.pipeline.cli.output import console
from ratchet.pipeline.process_setup import setup

app = typer.Typer(
    name="ratchet",
    help="Release engineering for self-improving LLM agents: one canonical version line, a regression gate, git.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors.")) -> None:
    """Ratchet: run, critique, diagnose, synthesize one RC, gate it, record it."""


workspace_cmds.register(app)
cycle_cmds.register(app)
release_cmds.register(app)
ledger_cmds.register(app)
serve_cmds.register(app)
gate_cmds.register(app)
audit_cmds.register(app)
schedule_cmds.register(app)


def main() -> None:
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the CLI prints its own progress
    setup(defer_models=True)  # litellm is imported by the first command that calls a model
    debug = "--debug" in sys.argv
    sys.argv = [arg for arg in sys.argv if arg != "--debug"]  # accepted anywhere on the line
    if debug:
        os.environ["RATCHET_DEBUG"] = "1"  # for code that shows or hides tracebacks below the CLI
    try:
        app()
    except RatchetError as exc:
        if debug:
            traceback.print_exc()
        console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - only a full or read-only disk becomes a one-line error
        _exit_on_disk_problem(exc, debug)
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]: finished work is kept in .ratchet/; run the command again to resume")
        sys.exit(130)


def _exit_on_disk_problem(exc: BaseException, debug: bool) -> None:
    """Exit with a one-line error when the disk cannot be written; re-raise anything else."""
    from ratchet.pipeline.cli.disk_errors import disk_problem

    problem = disk_problem(exc)
    if problem is None:
        raise exc
    if debug:
        traceback.print_exc()
    console.print(f"[bold red]error:[/] {escape(problem)}", soft_wrap=True)
    sys.exit(StateError.exit_code)
