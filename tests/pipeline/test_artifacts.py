"""Each decided cycle publishes Prefect artifacts under stable keys, and task runs say what they are."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ratchet.pipeline.artifacts import artifact_key
from ratchet.pipeline.flows import improve_cycle

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_artifact_keys_fit_prefects_rules() -> None:
    assert artifact_key("coder", "release-notes") == "coder-release-notes"
    assert artifact_key("My_Agent.2", "flips") == "my-agent-2-flips"


def test_a_cycle_publishes_notes_flips_symptoms_and_the_report(workspace: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, TaskRunFilter
    from prefect.client.schemas.sorting import ArtifactSort, TaskRunSort

    state = improve_cycle(str(workspace), "coder", return_state=True)
    assert state.is_completed()
    run_id = state.state_details.flow_run_id
    report = workspace / ".ratchet" / "reports" / "coder.html"
    assert report.is_file() and "data:image/png;base64," in report.read_text()

    async def published() -> tuple[dict[str, str], list[str]]:
        async with get_client() as client:
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])),
                flow_run_filter=FlowRunFilter(),
                task_run_filter=TaskRunFilter(),
                sort=ArtifactSort.KEY_ASC,
                limit=50,
            )
            tasks = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(),
                task_run_filter=TaskRunFilter(),
                sort=TaskRunSort.EXPECTED_START_TIME_DESC,
                limit=200,
            )
        return {a.key: str(a.data) for a in artifacts if a.key}, [t.name for t in tasks if t.flow_run_id == run_id]

    artifacts, task_names = asyncio.run(published())
    assert set(artifacts) == {"coder-release-notes", "coder-flips", "coder-symptoms", "coder-report"}
    assert "coder/v2" in artifacts["coder-release-notes"] and "non_code_output" in artifacts["coder-symptoms"]
    assert "F->P" in artifacts["coder-flips"] and str(report) in artifacts["coder-report"]
    assert {"evaluate/dev", "evaluate/gate", "evaluate/holdout"} <= set(task_names)
