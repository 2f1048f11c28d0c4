"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path

import typer

WorkspaceOption = typer.Option(
    Path("."),
    "--workspace",
    "-w",
    envvar="RATCHET_WORKSPACE",
    help="The workspace (a git repo made by `ratchet init`).",
    file_okay=False,
    resolve_path=True,
)
AgentOption = typer.Option("coder", "--agent", "-a", help="Which agent of the workspace.")
ModelOption = typer.Option(
    None,
    "--model",
    help="Run with this model (a [models.<alias>] of ratchet.toml, or a litellm string) instead of agent.yaml's.",
)
ApiBaseOption = typer.Option(
    None,
    "--api-base",
    envvar="RATCHET_API_BASE",
    help="Endpoint for --model, e.g. http://127.0.0.1:8000/v1 (vLLM). Credentials in it (user:password@, "
    "?api_key=) are sent, and masked in every record, log and Prefect parameter; prefer the variable to "
    "keep them off the command line.",
)
