"""The run store on a real filesystem: durable appends, group commit, torn tails."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ratchet.agents.trace import Message, Trace
from ratchet.gates.outcome import Outcome
from ratchet.gates.run_store import GroupCommit, RunKey, RunRecord, RunStore

KEY = RunKey(artifact_hash="a" * 64, suite_hash="b" * 64, model_config_hash="c" * 64)


def record(i: int, key: RunKey = KEY) -> RunRecord:
    trace = Trace(
        task_id=f"t/{i}",
        agent="coder",
        artifact_hash=key.artifact_hash,
        model="sim/x",
        simulated=True,
        messages=[Message(role="assistant", content=f"answer {i}")],
        started_at="2026-11-24T00:00:00Z",
        duration_s=0.1,
    )
    return RunRecord(
        key=key,
        task_id=f"t/{i}",
        trial=0,
        trace=trace,
        outcome=Outcome(task_id=f"t/{i}", passed=i % 2 == 0, score=float(i % 2 == 0)),
    )


def test_group_commit_writes_every_record_with_fewer_fsyncs(tmp_path: Path, monkeypatch) -> None:
    store = RunStore(tmp_path)
    other = RunKey(artifact_hash="d" * 64, suite_hash="b" * 64, model_config_hash="c" * 64)
    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd))[1])

    async def many() -> None:
        writer = GroupCommit(store)
        await asyncio.gather(*(writer.append(record(i, KEY if i % 3 else other)) for i in range(200)))

    asyncio.run(many())
    assert len(store.load(KEY)) == 133 and len(store.load(other)) == 67
    assert 2 <= len(fsyncs) < 200, "records that finish together share a write and an fsync"
    assert store.load(KEY)[("t/1", 0)].trace.messages[0].content == "answer 1"


def test_a_failed_write_reaches_every_caller_in_its_group(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.root.mkdir(parents=True)
    store.path(KEY).mkdir()  # a folder where the JSONL file should be: every append fails

    async def many() -> list:
        writer = GroupCommit(store)
        return await asyncio.gather(*(writer.append(record(i)) for i in range(5)), return_exceptions=True)

    results = asyncio.run(many())
    assert len(results) == 5 and all(isinstance(r, OSError) for r in results)


def test_an_append_after_a_torn_tail_starts_on_a_fresh_line(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.append(record(0))
    with store.path(KEY).open("ab") as handle:
        handle.write(b'{"version": 1, "key": {"artif')  # the writer died mid-line
    assert list(store.load(KEY)) == [("t/0", 0)], "a torn last line is ignored"
    store.append_many([record(1), record(2)])
    assert sorted(store.load(KEY)) == [("t/0", 0), ("t/1", 0), ("t/2", 0)]
    with pytest.raises(Exception, match="corrupted run record"):
        store.path(KEY).write_bytes(b"garbage\n" + store.path(KEY).read_bytes())
        store.load(KEY)
