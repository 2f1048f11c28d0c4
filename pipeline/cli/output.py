"""Rich output for the CLI: progress bars during runs, one block per cycle."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:  # the CLI imports this module at start-up: what only some commands need is imported there
    from ratchet.pipeline.cycle_result import CycleResult


def _width() -> int | None:
    """Terminal width on a terminal; 120 columns (or $COLUMNS) when piped, so tables stay readable."""
    return None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "120"))


console = Console(highlight=False, width=_width())
WORLD_NOTE = "SIMULATED offline model, rules in agents/providers/worlds/{world}.yaml"


class RichReporter:
    """Shows one progress bar per evaluation while the flow runs."""

    def __init__(self, progress: Progress) -> None:
        self.bars: dict[str, TaskID] = {}
        self.live = progress

    def stage(self, name: str, detail: str = "") -> None:
        pass

    def progress(self, label: str, done: int, total: int) -> None:
        if label not in self.bars:
            self.bars[label] = self.live.add_task(label, total=total)
        self.live.update(self.bars[label], completed=done, total=total)


def progress_bars() -> Progress:
    return Progress(
        TextColumn("  [dim]run[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def model_label(model: str, simulated: bool) -> str:
    if simulated:
        return f"{model} [bold yellow]({WORLD_NOTE.format(world=model.split('/', 1)[-1])})[/]"
    return model


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def print_cycle(number: int, result: CycleResult) -> None:
    console.rule(f"Cycle {number} · {result.base_release}")
    console.print(f"model: {model_label(result.model, result.simulated)}")
    passed = round(result.dev_pass_rate * result.dev_runs)
    console.print(f"dev split: {passed}/{result.dev_runs} passed ({pct(result.dev_pass_rate)})")
    symptoms = ", ".join(f"{label} {count}" for label, count in result.patterns) or "none"
    console.print(f"symptoms (top patterns, failed dev runs): {symptoms}")
    if result.status == "nothing_to_fix":
        console.print("[green]nothing left to fix on the dev split[/]")
        return
    if result.status == "no_proposal":
        console.print("[yellow]no release candidate: the playbook has no untried remediation for these patterns[/]")
        return
    console.print(f"RC {result.rc} {escape(f'[{result.remediation}]')}: {escape(result.intent or '')}")
    if result.smoke:
        console.print(escape(result.smoke))
    if result.counts:
        flips = ", ".join(f"{kind} {n}" for kind, n in result.counts.items())
        console.print(f"gate flips: {flips}")
        confirmed = ", ".join(f"{kind} {n}" for kind, n in result.confirmed.items())
        console.print(
            f"confirmed (one-sided Fisher): {confirmed}; {result.trials} trial(s) per task, "
            f"{result.confirmation_runs} confirmation run(s) on {result.in_doubt} task(s) in doubt"
        )
        console.print(
            f"gate pass rate {pct(result.baseline_gate_pass_rate)} -> {pct(result.gate_pass_rate)}"
            f" · holdout {pct(result.baseline_holdout_pass_rate)} -> {pct(result.holdout_pass_rate)} (report only)"
        )
    color = {"promote": "green", "reject": "red", "hold": "yellow", "inconclusive": "yellow"}[result.decision or "hold"]
    stage = {"validate": " before evaluation", "smoke": " before the gate"}.get(result.stage or "", "")
    console.print(
        f"verdict: [bold {color}]{(result.decision or '').upper()}[/]{stage}: {escape('; '.join(result.reasons))}"
    )
    if result.new_tag:
        console.print(f"new release: [bold]{result.new_tag}[/]")
    if result.rejected_tag:
        console.print(f"tagged {result.rejected_tag}; the canonical line stays at {result.base_release}")
    if result.decision == "hold":
        console.print(f"on hold: decide with `ratchet promote {result.rc} --reason ...` or `ratchet reject ...`")
    if result.decision == "inconclusive" and result.rc:
        console.print(inconclusive_hint(result.rc))


def inconclusive_hint(rc: str) -> str:
    """What to do about a candidate the gate found inconclusive: a person reads the tasks and decides."""
    from ratchet.pipeline.decisions import parse_rc
    from ratchet.releases import NOTES_MD, evidence_dir

    agent, number = parse_rc(rc)
    notes = f"{rc}:{evidence_dir(agent, number)}/{NOTES_MD}"
    return (
        f"inconclusive: the gate could not decide, so {rc} waits for a person; read the inconclusive tasks in "
        f"its notes (`git show {notes}`), then promote it with `ratchet promote {rc} --reason ...` or "
        f"`ratchet reject {rc} --reason ...`"
    )


class _NoTraceback(logging.Filter):
    """Drops the traceback from a log record (the one-line message stays)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return True


def hide_run_tracebacks() -> None:
    """Keep Prefect's console log of a failed task or flow run to its one-line message.

    The CLI reports the error itself, as one line (`--debug` shows the traceback, and sets
    RATCHET_DEBUG so this is skipped). Call after Prefect configured logging (on import). Only the
    console handlers are touched, after the API handlers of the run loggers have seen the record,
    so the Prefect server still gets the traceback."""
    if os.environ.get("RATCHET_DEBUG"):
        return
    for name in ("", "prefect"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and not any(
                isinstance(f, _NoTraceback) for f in handler.filters
            ):
                handler.addFilter(_NoTraceback())
