"""The publish stage: the decided cycle's notes, flips, symptoms and HTML report, as Prefect artifacts."""

from __future__ import annotations

from pathlib import Path

from prefect.logging import get_run_logger

from ratchet.pipeline.artifacts import publish_cycle
from ratchet.pipeline.context import CycleContext
from ratchet.pipeline.record import Evidence, build_notes
from ratchet.releases import BOT, CandidateRef


def publish(ctx: CycleContext, rc: CandidateRef, ev: Evidence, new_tag: str | None) -> Path | None:
    """Write the agent's HTML report to `.ratchet/reports/<agent>.html` and publish the artifacts.
    A report that cannot be drawn is logged and left out; it never fails the recorded decision."""
    title = new_tag or f"{rc.branch} ({ev.verdict.decision})"
    notes = build_notes(ctx, rc, ev, title, actor=str(BOT)).markdown()
    html = ctx.scratch / "reports" / f"{ctx.agent}.html"
    report: Path | None = html
    try:
        from ratchet.pipeline.report import write_report

        write_report(ctx.workspace, ctx.agent, html)
    except Exception as exc:  # noqa: BLE001 - the decision is recorded already; the report is a convenience
        get_run_logger().warning("HTML report not written: %s", exc)
        report = None
    publish_cycle(ctx.agent, notes, ev.flips, ev.spec, report)
    return report
