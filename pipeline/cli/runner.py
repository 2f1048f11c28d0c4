"""Run one cycle from the CLI with progress bars."""

from __future__ import annotations

from pathlib import Path

from ratchet.pipeline.cli.output import RichReporter, hide_run_tracebacks, progress_bars
from ratchet.pipeline.cycle_result import CycleResult
from ratchet.pipeline.progress import use_reporter


def run_cycle(workspace: Path, agent: str, model: str | None = None, api_base: str | None = None) -> CycleResult:
    from ratchet.pipeline.locking import check_unlocked
    from ratchet.pipeline.settings import load_settings
    from ratchet.releases import Registry

    load_settings(workspace)  # a clear error for a folder that is no workspace, before Prefect starts
    check_unlocked(workspace, agent)
    Registry(workspace).require_consistent()  # tags, ledger and main agree (the flow checks again at each write)
    from ratchet.pipeline.flows import improve_cycle  # Prefect is imported only when a flow runs

    hide_run_tracebacks()

    with progress_bars() as bars, use_reporter(RichReporter(bars)):
        return improve_cycle(str(workspace), agent, model, api_base)
