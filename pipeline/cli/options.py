"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path

import typer

WorkspaceOption = typer.Option(
    Path("."), "--workspace", "-w", envvar="RATCHET_WORKSPACE", help="The workspace (a git repo made by `ratchet init`).",
    file_okay=False, resolve_path=True,
)
AgentOption = typer.Option("coder", "--agent", "-a", help="Which agent of the workspace.")
