"""What each cycle publishes to Prefect, under keys that stay the same from night to night.

Keys (Prefect keeps every version; the UI shows the latest and the history per key):

    <agent>-release-notes   markdown: the release notes of the decided RC (intent, verdict, flips)
    <agent>-flips           table: changed tasks of the gate (kind, runs, confirmed, p-value)
    <agent>-symptoms        table: symptom patterns of the failed dev runs, most frequent first
    <agent>-report          markdown: where the HTML report of the whole version line was written

Artifact keys may hold only lowercase letters, digits and dashes; agent names are made to fit.
"""

from __future__ import annotations

import re
from pathlib import Path

from ratchet.critics import EngineeringSpec
from ratchet.gates import FlipTable


def artifact_key(agent: str, what: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", f"{agent}-{what}".lower()).strip("-")


def publish_cycle(
    agent: str, notes_markdown: str | None, flips: FlipTable | None, spec: EngineeringSpec, report: Path | None
) -> None:
    """Create this cycle's artifacts on the flow run (call inside the flow)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    if notes_markdown:
        create_markdown_artifact(
            key=artifact_key(agent, "release-notes"),
            markdown=notes_markdown,
            description=f"Release notes of {agent}'s latest decision",
        )
    if flips is not None:
        rows = [
            {
                "task": f.task_id,
                "kind": f.kind,
                "confirmed": f.confirmed,
                "p_value": f.p_value,
                "baseline runs": f.baseline_runs,
                "candidate runs": f.candidate_runs,
            }
            for f in flips.flips
            if f.kind in ("P->F", "F->P")
        ]
        create_table_artifact(
            key=artifact_key(agent, "flips"),
            table=rows or [{"task": "(no changed task)"}],
            description=f"Gate flips of {agent}'s latest candidate",
        )
    patterns = [{"pattern": p.label, "failed runs": p.count} for p in spec.patterns]
    create_table_artifact(
        key=artifact_key(agent, "symptoms"),
        table=patterns or [{"pattern": "(none)"}],
        description=f"Symptom patterns of {agent}'s release on the dev split",
    )
    if report is not None:
        create_markdown_artifact(
            key=artifact_key(agent, "report"),
            markdown=f"HTML report of {agent}'s version line: `{report}` (open it in a browser)",
            description="Where `ratchet report` wrote the page",
        )
