"""Evaluation shards on a real Dask LocalCluster give the local runner's outcomes (pipeline/execution.py)."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pandas as pd
import pytest

from ratchet.agents.errors import UserError
from ratchet.gates.run_store import RunRecord
from ratchet.gates.task import ExactMatchVerifier, Task
from ratchet.pipeline.execution import close_task_runners, shards
from ratchet.pipeline.progress import use_reporter
from ratchet.pipeline.settings import load_settings

OUTCOMES = [
    "outcomes-baseline-gate.csv",
    "outcomes-candidate-gate.csv",
    "outcomes-baseline-holdout.csv",
    "outcomes-candidate-holdout.csv",
]


def make_task(task_id: str) -> Task:
    return Task(id=task_id, input="?", verifier=ExactMatchVerifier(expected=["x"]))


def test_shards_hold_whole_tasks_in_order() -> None:
    a, b, c = make_task("a"), make_task("b"), make_task("c")
    runs = [(a, 0), (a, 1), (b, 1), (c, 0), (c, 1)]
    assert shards(runs, 2) == [[(a, 0), (a, 1), (b, 1)], [(c, 0), (c, 1)]]
    assert shards(runs, 16) == [runs]
    assert shards([], 4) == []
    with pytest.raises(ValueError, match="at least 1"):
        shards(runs, 0)


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ('runner = "ray"', "field 'execution.runner': input should be 'local' or 'dask'"),
        ('runner = "dask"\nworkers = 0', "field 'execution.workers': input should be greater than or equal to 1"),
        ('runner = "dask"\nshard_size = 0', "field 'execution.shard_size': input should be greater than or equal to 1"),
        ('address = "tcp://10.0.0.5:8786"', "field 'execution.address': only used with runner = \"dask\""),
        ('runner = "dask"\naddress = "10.0.0.5:8786"', "field 'execution.address': expected a scheduler address"),
        ('runner = "dask"\naddress = "tcp://10.0.0.5:8786"\nworkers = 4', "field 'execution.workers': sizes a local"),
        ('runner = "dask"\nshards = 4', "field 'execution.shards': unknown field"),
    ],
)
def test_execution_settings_errors_name_the_field(tmp_path: Path, table: str, error: str) -> None:
    (tmp_path / "ratchet.toml").write_text(f"[execution]\n{table}\n")
    with pytest.raises(UserError) as caught:
        load_settings(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'ratchet.toml'}: {error}")


def test_execution_settings_defaults_and_an_existing_cluster(tmp_path: Path) -> None:
    (tmp_path / "ratchet.toml").write_text("[run]\nconcurrency = 4\n")
    execution = load_settings(tmp_path).execution
    assert (execution.runner, execution.address, execution.workers, execution.shard_size) == ("local", None, 2, 16)
    (tmp_path / "ratchet.toml").write_text('[execution]\nrunner = "dask"\naddress = "tcp://10.0.0.5:8786"\n')
    assert load_settings(tmp_path).execution.address == "tcp://10.0.0.5:8786"


class Recorder:
    def __init__(self) -> None:
        self.stages: list[str] = []

    def stage(self, name: str, detail: str = "") -> None:
        self.stages.append(detail)

    def progress(self, label: str, done: int, total: int) -> None:
        pass


@pytest.fixture
def dask_clusters() -> Iterator[None]:
    yield
    close_task_runners()  # the cluster outlives a cycle (kept per process); not this test


def configure(ws: Path, table: str) -> None:
    settings = ws / "ratchet.toml"
    settings.write_text(settings.read_text() + f"\n[execution]\n{table}\n")
    subprocess.run(
        ["git", "-C", str(ws), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "execution settings"],
        check=True,
    )


def outcomes(ws: Path, rc: str) -> dict[str, pd.DataFrame]:
    """The RC's outcome tables without the trace hashes (traces hold timings)."""
    tables = {}
    for name in OUTCOMES:
        csv = subprocess.run(
            ["git", "-C", str(ws), "show", f"{rc}:releases/coder/rc-1/{name}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        tables[name] = pd.read_csv(io.StringIO(csv)).drop(columns=["trace_sha256"])
    return tables


def stored_outcomes(ws: Path) -> dict[str, list[tuple]]:
    """Every run-store record, by run-store file, as (task_id, trial, passed, score, error_type, message)."""
    found = {}
    for path in sorted((ws / ".ratchet" / "runs").glob("*.jsonl")):
        records = [RunRecord.model_validate_json(line) for line in path.read_bytes().splitlines()]
        found[path.name] = sorted(
            (r.task_id, r.trial, r.outcome.passed, r.outcome.score, r.outcome.error_type, r.outcome.message)
            for r in records
        )
    return found


def task_runs(flow_run_id: UUID, part: str) -> dict[str, str]:
    """Name -> state type of the flow run's task runs whose name holds `part`."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), sort=TaskRunSort.NAME_ASC, limit=200
        )
    return {run.name: run.state_type.value for run in runs if part in run.name}


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server", "dask_clusters")
def test_cycle_on_a_dask_local_cluster_matches_the_local_runner(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ratchet.pipeline.flows import improve_cycle

    secret = "sk-test-dask-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)  # the cluster's workers inherit it, as a real key would be
    on_dask = tmp_path / "on-dask"
    shutil.copytree(workspace, on_dask, symlinks=True)
    configure(workspace, 'runner = "local"')
    configure(on_dask, 'runner = "dask"\nworkers = 2')  # 16 tasks a shard: 4 shards per split

    local = improve_cycle(str(workspace), "coder")
    recorder = Recorder()
    with use_reporter(recorder):
        state = improve_cycle(str(on_dask), "coder", return_state=True)
    sharded = state.result()

    assert local.status == sharded.status == "decided"
    assert (sharded.decision, sharded.new_tag, sharded.counts, sharded.confirmed) == (
        local.decision,
        local.new_tag,
        local.counts,
        local.confirmed,
    )
    assert (sharded.confirmation_runs, sharded.in_doubt) == (local.confirmation_runs, local.in_doubt)
    for name, table in outcomes(workspace, local.rc).items():
        pd.testing.assert_frame_equal(outcomes(on_dask, sharded.rc)[name], table, obj=name)
    # every record of every run-store file, duplicates kept: no run was run twice, none is missing
    assert stored_outcomes(on_dask) == stored_outcomes(workspace)

    sharded_runs = [detail for detail in recorder.stages if "Dask worker" in detail]
    assert len(sharded_runs) >= 5, "dev, gate and holdout of both sides, confirmations: all on the cluster"
    workers = {worker for detail in sharded_runs for worker in re.search(r"\[(.*)\]$", detail).group(1).split(", ")}
    pids = {int(worker.rsplit(":", 1)[1]) for worker in workers}
    assert len(pids) >= 2, sharded_runs
    assert os.getpid() not in pids, "the shards ran in the cluster's worker processes, not in the flow's"
    shard_runs = task_runs(state.state_details.flow_run_id, "/shard-")
    assert {"evaluate/dev/shard-0", "evaluate/dev/shard-3", "evaluate/gate/shard-0"} <= set(shard_runs)
    assert set(shard_runs.values()) == {"COMPLETED"}, "one Prefect task run per shard, in the cycle's flow run"
    for path in (on_dask / ".ratchet" / "runs").glob("*.jsonl"):
        assert secret.encode() not in path.read_bytes(), path
