"""Evaluation shards on a Dask cluster (`[execution] runner = "dask"` in ratchet.toml).

The driver (the flow's process) works out which (task, trial) runs the run store lacks,
cuts their tasks into shards of `shard_size` tasks and submits one Prefect task per shard
(`evaluate/<split>/shard-<i>`) through `prefect_dask.DaskTaskRunner`. A shard runs its runs
with asyncio in a worker process and *returns* the RunRecords; only the driver appends them
to the run store (one writer per run-store file), then builds the Evaluation exactly as the
local runner does. Outcomes match the local runner's: the simulated model is deterministic
given (prompt, seed) and the runtime sends a per-(task, trial) seed.

A shard carries plain data only (run key, the artifact's files, model config and sampling
parameters, tasks, trial numbers): no live clients and no secrets. A worker reads API keys
from its own environment, as the local path does (`ModelConfig.api_key_env`,
`agents.redaction.secret_values`).

Why a DaskTaskRunner entered here rather than `improve_cycle.with_options(task_runner=...)` or
a subflow: the runner is chosen by the workspace's ratchet.toml, which the flow reads only
once it runs, so a caller cannot pick the flow's runner beforehand; and the stages are plain
task calls on live objects, so a flow-level runner would only ever see these shards anyway.
A subflow would add a flow run per evaluation and still need this runner. Entering the runner
ourselves is what Prefect's flow engine does with `flow.task_runner`; the shards still appear
as task runs of the cycle's flow run (the runner sends the current Prefect context along).
The runner, and so the cluster, is kept for the life of the process (`close_task_runners`):
a cycle evaluates a dozen times, and starting worker processes each time would cost more
than the shards.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import logging
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed

from ratchet.agents import (
    Artifact,
    ModelClient,
    ModelConfig,
    ModelParams,
    StateError,
    artifact_files,
    load_artifact,
    secret_values,
)
from ratchet.gates import Evaluation, RunKey, RunRecord, RunStore, Task, evaluate, run_key, run_one
from ratchet.pipeline.context import CycleContext, ReleaseState, client_for
from ratchet.pipeline.process_setup import setup
from ratchet.pipeline.progress import reporter
from ratchet.pipeline.settings import ExecutionSettings

if TYPE_CHECKING:
    from prefect_dask import DaskTaskRunner


Run = tuple[Task, int]  # (task, trial)


@dataclass(frozen=True)
class Shard:
    """What a worker needs to run some (task, trial) runs of one version: plain, picklable data."""

    key: RunKey
    agent: str
    files: dict[str, bytes]  # the artifact folder agents/<agent>/, byte for byte
    model: ModelConfig  # names its API key's environment variable; never holds the key
    params: ModelParams
    runs: list[Run]
    concurrency: int


@dataclass(frozen=True)
class ShardResult:
    records: list[RunRecord]
    worker: str  # host:pid of the process that ran the shard


def shards(runs: list[Run], size: int) -> list[list[Run]]:
    """Cut runs into shards of at most `size` tasks, in order; all runs of a task stay in one shard."""
    if size < 1:
        raise ValueError(f"shard size must be at least 1, got {size}")
    by_task: dict[str, list[Run]] = {}
    for run in runs:
        by_task.setdefault(run[0].id, []).append(run)
    groups = list(by_task.values())
    return [[run for group in groups[i : i + size] for run in group] for i in range(0, len(groups), size)]


# --- driver side -------------------------------------------------------------------------------


def run_sharded(
    ctx: CycleContext, state: ReleaseState, split: str, tasks: list[Task], trials: int, label: str
) -> Evaluation:
    """`stages.run_tasks` on a Dask cluster: same run store, same Evaluation; the runs happen in shards."""

    client = client_for(ctx, state.artifact)
    key = run_key(state.artifact, ctx.suite, client)
    done = ctx.store.load(key)  # resumable: stored runs are not submitted again
    todo = [(task, trial) for task in tasks for trial in range(trials) if (task.id, trial) not in done]
    total = len(tasks) * trials
    reused = total - len(todo)
    reporter().progress(label, reused, total)
    if todo:
        work = _shards_of(ctx, state, client, key, todo)
        workers = _run_shards(
            ctx.settings.execution,
            ctx.store,
            split,
            work,
            lambda finished: reporter().progress(label, reused + finished, total),
        )
        reporter().stage(
            "run",
            f"{label}: {len(work)} shard(s) on {len(workers)} Dask worker process(es) [{', '.join(sorted(workers))}]",
        )

    async def collect() -> Evaluation:
        # Every run is stored now, so `evaluate` runs nothing: it reads the records back and
        # builds the Evaluation exactly as on the local runner.
        try:
            return await evaluate(state.artifact, client, ctx.suite, tasks, ctx.store, split=split, trials=trials)
        finally:
            await client.aclose()

    evaluation = asyncio.run(collect())
    if evaluation.summary.reused != total:  # a guard: `_check` saw every shard return all of its runs
        raise StateError(
            f"{label}: {total - evaluation.summary.reused} run(s) ran in the flow's process, not in the Dask shards"
        )
    return evaluation.model_copy(update={"summary": evaluation.summary.model_copy(update={"reused": reused})})


def _shards_of(
    ctx: CycleContext, state: ReleaseState, client: ModelClient, key: RunKey, todo: list[tuple[Task, int]]
) -> list[Shard]:
    """The runs still to do, cut into shards of `[execution] shard_size`, each carrying the artifact's files."""
    files = artifact_files(state.artifact.root)
    return [
        Shard(
            key=key,
            agent=ctx.agent,
            files=files,
            model=client.config,
            params=client.params,
            runs=part,
            concurrency=ctx.settings.run.concurrency,
        )
        for part in shards(todo, ctx.settings.execution.shard_size)
    ]


def _run_shards(
    execution: ExecutionSettings, store: RunStore, split: str, work: list[Shard], progress: Callable[[int], None]
) -> set[str]:
    """Submit every shard and store each one's records as it finishes; the workers that ran them.

    A failed shard fails its Prefect task and then this stage, once the other shards' records
    are stored: a re-run redoes only the failed shards' runs."""
    runner = task_runner(execution)
    with _without_parent_parameters(), _api_reachable_from_workers():
        futures: dict[PrefectFuture[ShardResult], Shard] = {
            runner.submit(evaluate_shard, parameters={"split": split, "index": i, "shard": shard}): shard
            for i, shard in enumerate(work)
        }
    failure: BaseException | None = None
    finished, workers = 0, set()
    for future in as_completed(list(futures)):
        try:
            result: ShardResult = future.result()
            _check(futures[future], result)
        except Exception as exc:  # noqa: BLE001 - re-raised below, once every finished shard is stored
            failure = failure or exc
            continue
        store.append_many(result.records)
        finished += len(result.records)
        workers.add(result.worker)
        progress(finished)
    if failure is not None:
        raise failure
    return workers


def _check(shard: Shard, result: ShardResult) -> None:
    wanted = sorted((task.id, trial) for task, trial in shard.runs)
    got = sorted((r.task_id, r.trial) for r in result.records)
    if got != wanted or any(r.key != shard.key for r in result.records):
        raise StateError(f"Dask worker {result.worker} returned runs other than its shard's")


_RUNNERS: dict[tuple[str | None, int], DaskTaskRunner] = {}
_RUNNERS_LOCK = threading.Lock()


def task_runner(execution: ExecutionSettings) -> DaskTaskRunner:
    """The started DaskTaskRunner for this cluster, connected (or its local cluster started) on first use."""
    cluster = (execution.address, execution.workers)
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get(cluster)
        if runner is None:
            runner = _start_runner(execution)
            if not _RUNNERS:
                atexit.register(close_task_runners)
            _RUNNERS[cluster] = runner
        return runner


def _start_runner(execution: ExecutionSettings) -> DaskTaskRunner:
    from prefect_dask import DaskTaskRunner

    if execution.address:
        runner = DaskTaskRunner(address=execution.address)
    else:
        # The scheduler and nannies log to this process, through Prefect's handlers; LocalCluster's
        # own `silence_logs` only quiets distributed's handlers. Keep the CLI's output to warnings.
        logging.getLogger("distributed").setLevel(logging.WARNING)
        runner = DaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs={
                "n_workers": execution.workers,
                "processes": True,
                "threads_per_worker": 1,
                "host": "127.0.0.1",
                "dashboard_address": None,
            },
        )
    runner.__enter__()
    try:
        runner.client  # noqa: B018 - connect, or start the local cluster, now (under the lock)
    except BaseException:
        runner.__exit__(None, None, None)
        raise
    return runner


def close_task_runners() -> None:
    """Close the Dask clients and shut down the local clusters this process started."""
    with _RUNNERS_LOCK:
        runners = list(_RUNNERS.values())
        _RUNNERS.clear()
    for runner in runners:
        runner.__exit__(None, None, None)


@contextmanager
def _without_parent_parameters() -> Iterator[None]:
    """The runner sends the current Prefect context to the worker, the calling task's parameters
    included; those are the stage's live objects (a RunStore holds a lock) and cannot be pickled.
    The shards need none of them: send a copy of the task run context without them."""
    from prefect.context import TaskRunContext

    parent = TaskRunContext.get()
    if parent is None:
        yield
        return
    with parent.model_copy(update={"parameters": {}}):
        yield


@contextmanager
def _api_reachable_from_workers() -> Iterator[None]:
    """With no PREFECT_API_URL the flow talks to a temporary server of its own process; hand
    workers its address, or each would start a temporary server of its own (for a cluster
    beyond this machine, set PREFECT_API_URL to a real Prefect server)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    from prefect.client.orchestration import get_client

    with temporary_settings(updates={PREFECT_API_URL: str(get_client(sync_client=True).api_url)}):
        yield


# --- worker side -------------------------------------------------------------------------------


def _evaluate_shard(split: str, index: int, shard: Shard) -> ShardResult:
    """Run one shard's runs in this (worker) process and return their records; stores nothing."""
    del split, index  # they name the task run
    _prepare_worker()
    with tempfile.TemporaryDirectory(prefix="ratchet-shard-") as scratch:
        root = Path(scratch) / shard.agent
        for rel, data in shard.files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        artifact = load_artifact(root)
        if artifact.content_hash != shard.key.artifact_hash:
            raise StateError(
                f"shard artifact hash {artifact.content_hash[:12]} is not the run key's {shard.key.artifact_hash[:12]}"
            )
        records = asyncio.run(_run_all(artifact, shard))
    return ShardResult(records=records, worker=f"{socket.gethostname()}:{os.getpid()}")


_WORKER_READY = False


def _prepare_worker() -> None:
    """Once per worker process: offline litellm cost map, Ratchet's providers (sim/...) registered,
    and the long-lived heap set aside from the cyclic GC (`gc.freeze`), as gates.evaluation does
    around local runs: full collections during the runs skip Prefect's and litellm's ~300,000
    objects, and the process exits at once when the cluster closes (else the nanny waits out
    its 4 s grace period and kills it)."""
    global _WORKER_READY
    if not _WORKER_READY:
        setup()
        gc.freeze()
        _WORKER_READY = True


async def _run_all(artifact: Artifact, shard: Shard) -> list[RunRecord]:
    client = ModelClient(shard.model, shard.params)  # reads the API key from this worker's environment
    secrets = secret_values()
    gate = asyncio.Semaphore(shard.concurrency)

    async def one(task: Task, trial: int) -> RunRecord:
        async with gate:
            return await run_one(artifact, client, shard.key, task, trial, secrets)

    try:
        return list(await asyncio.gather(*(one(task, trial) for task, trial in shard.runs)))
    finally:
        await client.aclose()


evaluate_shard = task(
    name="evaluate-shard",
    task_run_name="evaluate/{split}/shard-{index}",
    cache_policy=NO_CACHE,
    persist_result=False,
)(_evaluate_shard)
