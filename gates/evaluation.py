"""Evaluate one agent version on one split of a suite: run, verify, store.

Per-task work runs concurrently with asyncio (bounded); each finished (task, trial)
is appended to the run store at once, and already-stored ones are reused.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pandas as pd
from pydantic import BaseModel, ConfigDict

from ratchet.agents import (
    Artifact,
    ModelClient,
    Trace,
    bounded_for_storage,
    redact,
    redact_trace,
    run_agent_unredacted,
    secret_values,
    storable,
)
from ratchet.gates.outcome import Outcome
from ratchet.gates.python_tool import PythonExamplesTool
from ratchet.gates.run_store import GroupCommit, RunKey, RunRecord, RunStore, model_config_hash
from ratchet.gates.suite import Suite
from ratchet.gates.task import Task, natural_key
from ratchet.gates.verifier import verify_run

ProgressFn = Callable[[int, int], None]


class EvaluationSummary(BaseModel):
    """Headline numbers of one evaluation."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    split: str
    artifact_hash: str
    suite_hash: str
    model: str
    simulated: bool
    tasks: int
    trials: int
    runs: int
    passed: int
    reused: int

    @property
    def pass_rate(self) -> float:
        return self.passed / self.runs if self.runs else 0.0


class Evaluation(BaseModel):
    """Summary plus every record, sorted by (task id, trial)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    summary: EvaluationSummary
    records: list[RunRecord]

    def outcome_table(self) -> pd.DataFrame:
        return outcome_table(self.records)


def outcome_table(records: list[RunRecord]) -> pd.DataFrame:
    """One row per (task, trial): task_id, trial, passed, score, error_type, message."""
    rows = [
        {
            "task_id": r.task_id,
            "trial": r.trial,
            "passed": r.outcome.passed,
            "score": r.outcome.score,
            "error_type": r.outcome.error_type,
            "message": r.outcome.message,
        }
        for r in records
    ]
    columns = ["task_id", "trial", "passed", "score", "error_type", "message"]
    return pd.DataFrame(rows, columns=columns)


def run_key(artifact: Artifact, suite: Suite, client: ModelClient) -> RunKey:
    params = client.params.model_dump(mode="json", exclude={"timeout_s"})
    return RunKey(
        artifact_hash=artifact.content_hash,
        suite_hash=suite.content_hash(),
        model_config_hash=model_config_hash(client.config.behaviour_hash(), params),
    )


async def evaluate(
    artifact: Artifact,
    client: ModelClient,
    suite: Suite,
    tasks: list[Task],
    store: RunStore,
    split: str,
    trials: int = 1,
    concurrency: int = 8,
    on_progress: ProgressFn | None = None,
) -> Evaluation:
    """Run every (task, trial) not yet in the store, then return all of them."""
    key = run_key(artifact, suite, client)
    done = store.load(key)
    wanted = [(task, trial) for task in tasks for trial in range(trials)]
    todo = [(task, trial) for task, trial in wanted if (task.id, trial) not in done]
    reused = len(wanted) - len(todo)
    progress = on_progress or (lambda finished, total: None)
    progress(reused, len(wanted))
    agent_gate = asyncio.Semaphore(concurrency)  # agent runs in flight: their model and tool calls
    verify_gate = asyncio.Semaphore(concurrency)  # verifications in flight: their sandboxes
    writer = GroupCommit(store)  # durable (fsync) without stalling the event loop, one fsync per group
    secrets = secret_values()
    finished = reused

    async def one(task: Task, trial: int) -> None:
        nonlocal finished
        async with agent_gate:
            trace = await run_agent_unredacted(artifact, task.id, task.input, client, tools=_tools(task), trial=trial)
        # Let the run that just got the slot send its request before this one is verified and
        # stored: the next model call then never waits for bookkeeping.
        await asyncio.sleep(0)
        async with verify_gate:
            outcome = await verify_run(task, trace, trial=trial)
        record = stored_record(key, trace, outcome, secrets)
        await writer.append(record)
        done[(task.id, trial)] = record
        finished += 1
        progress(finished, len(wanted))

    with _frozen_heap():
        try:
            await _gather_all([one(task, trial) for task, trial in todo])
        finally:
            await writer.flush()  # runs that finished before a failure stay stored
    records = sorted((done[(t.id, k)] for t, k in wanted), key=lambda r: (natural_key(r.task_id), r.trial))
    return _evaluation(key, client, split, len(tasks), records, trials=trials, reused=reused)


def _evaluation(
    key: RunKey, client: ModelClient, split: str, tasks: int, records: list[RunRecord], trials: int, reused: int
) -> Evaluation:
    summary = EvaluationSummary(
        split=split,
        artifact_hash=key.artifact_hash,
        suite_hash=key.suite_hash,
        model=client.model,
        simulated=client.simulated,
        tasks=tasks,
        trials=trials,
        runs=len(records),
        passed=sum(r.outcome.passed for r in records),
        reused=reused,
    )
    return Evaluation(summary=summary, records=records)


def stored_evaluation(
    artifact: Artifact, client: ModelClient, suite: Suite, tasks: list[Task], store: RunStore, split: str
) -> Evaluation:
    """Every stored run of these tasks for this artifact and model, whatever the trial count (no new runs)."""
    key = run_key(artifact, suite, client)
    wanted = {task.id for task in tasks}
    records = sorted(
        (r for (task_id, _), r in store.load(key).items() if task_id in wanted),
        key=lambda r: (natural_key(r.task_id), r.trial),
    )
    trials = max((r.trial + 1 for r in records), default=0)
    return _evaluation(key, client, split, len(tasks), records, trials=trials, reused=len(records))


async def run_one(
    artifact: Artifact, client: ModelClient, key: RunKey, task: Task, trial: int, secrets: list[str] | None = None
) -> RunRecord:
    """Run the agent on one task and verify its final answer."""
    trace = await run_agent_unredacted(artifact, task.id, task.input, client, tools=_tools(task), trial=trial)
    outcome = await verify_run(task, trace, trial=trial)
    return stored_record(key, trace, outcome, secrets)


def stored_record(key: RunKey, trace: Trace, outcome: Outcome, secrets: list[str] | None = None) -> RunRecord:
    """The record of one run as the run store keeps it: the verdict on what the model said, with every
    secret masked in the trace and in the verifier's message (which may quote the answer), and any
    text that is not Unicode (a lone surrogate) escaped, so that it can be written."""
    secrets = secret_values() if secrets is None else secrets
    message = redact(outcome.message, secrets)
    stored_outcome = outcome if message == outcome.message else outcome.model_copy(update={"message": message})
    return RunRecord(
        key=key,
        task_id=trace.task_id,
        trial=trace.trial,
        trace=bounded_for_storage(redact_trace(storable(trace), secrets)),
        outcome=stored_outcome,
    )


def _tools(task: Task) -> dict[str, PythonExamplesTool]:
    """The tools an agent may enable, bound to this task (the python tool runs its examples)."""
    return {"python": PythonExamplesTool(task)}


_FROZEN_DEPTH = 0


@contextmanager
def _frozen_heap() -> Iterator[None]:
    """Keep the cyclic GC off the objects that exist before the runs start, until they end.

    A process with litellm (and Prefect, pandas) loaded holds ~300,000 long-lived objects;
    every full collection triggered by the runs' own allocations rescans them all (~140 ms
    here), a third of Ratchet's CPU per task at 1,000 tasks (benchmarks/README.md).
    `gc.freeze()` sets them aside; `gc.unfreeze()` hands them back when the last running
    evaluation ends, so garbage among them is still collected afterwards.
    """
    global _FROZEN_DEPTH
    if _FROZEN_DEPTH == 0:
        gc.freeze()
    _FROZEN_DEPTH += 1
    try:
        yield
    finally:
        _FROZEN_DEPTH -= 1
        if _FROZEN_DEPTH == 0:
            gc.unfreeze()


async def _gather_all(coroutines: list) -> None:
    """Run all; on the first failure cancel the rest (finished ones are already stored) and re-raise."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
