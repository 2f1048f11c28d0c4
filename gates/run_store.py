"""The run store: finished (task, trial) runs, appended as they complete.

One JSONL file per run key (artifact hash, suite hash, model config) under
`.ratchet/runs/`. A record is appended, flushed and fsynced as soon as its task
finishes, so a killed run resumes without redoing finished work. A torn last line
(the process died mid-write) is ignored and cut off before the next append.

`GroupCommit` is the asynchronous writer evaluations use: records that finish while a
write is under way are written together, with one fsync (a database's group commit), and
each caller returns only once its own record is on disk.

Every line is UTF-8 JSON: text that is not Unicode (a lone surrogate that got past the layers
that refuse it) is written escaped (`\\ud800` as six characters), never a failed write.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticSerializationError

from ratchet.agents import StateError, Trace, storable
from ratchet.gates.outcome import Outcome


class RunKey(BaseModel):
    """What makes two runs interchangeable."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    artifact_hash: str
    suite_hash: str
    model_config_hash: str

    @property
    def slug(self) -> str:
        return f"{self.artifact_hash[:16]}-{self.suite_hash[:12]}-{self.model_config_hash[:12]}"


class RunRecord(BaseModel):
    """One finished (task, trial): the trace and the verifier's outcome."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = 1
    key: RunKey
    task_id: str
    trial: int
    trace: Trace
    outcome: Outcome


def model_config_hash(model: str, params: dict[str, object]) -> str:
    """Hash of everything about the model call that changes its answers (model identity, sampling)."""
    blob = json.dumps({"model": model, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class RunStore:
    """Append-only store of RunRecords under `<root>/runs/`."""

    def __init__(self, root: Path) -> None:
        self.root = root / "runs"
        self._lock = threading.Lock()

    def path(self, key: RunKey) -> Path:
        return self.root / f"{key.slug}.jsonl"

    def load(self, key: RunKey) -> dict[tuple[str, int], RunRecord]:
        """Every complete record for `key`, by (task id, trial)."""
        path = self.path(key)
        if not path.exists():
            return {}
        records: dict[tuple[str, int], RunRecord] = {}
        lines = path.read_bytes().split(b"\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = RunRecord.model_validate_json(line)
            except ValidationError as exc:
                if number == len(lines):  # torn final line: the writer died mid-append
                    continue
                raise StateError(
                    f"{path} line {number}: corrupted run record ({exc.errors()[0]['msg']}); "
                    f"delete the file to re-run these tasks"
                ) from exc
            records[(record.task_id, record.trial)] = record
        return records

    def append(self, record: RunRecord) -> None:
        """Write one record durably (flush + fsync) before returning."""
        self.append_many([record])

    def append_many(self, records: list[RunRecord]) -> None:
        """Write records durably, one write and one fsync per run key, before returning."""
        self.write_lines([(r.key, encode(r)) for r in records])

    def write_lines(self, lines: list[tuple[RunKey, bytes]]) -> None:
        """Append encoded records (see `encode`), grouped by key: one write and one fsync per file."""
        by_file: dict[Path, list[bytes]] = {}
        for key, line in lines:
            by_file.setdefault(self.path(key), []).append(line)
        with self._lock:
            for path, chunk in by_file.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                _cut_torn_tail(path)
                with path.open("ab") as handle:
                    handle.write(b"".join(chunk))
                    handle.flush()
                    os.fsync(handle.fileno())


def encode(record: RunRecord) -> bytes:
    """One JSONL line of the store (any surrogate escaped: see `agents.trace.storable`)."""
    try:
        return record.model_dump_json().encode() + b"\n"
    except PydanticSerializationError:
        return storable(record).model_dump_json().encode() + b"\n"


def history(store: RunStore, suite_hash: str, model_config_hash: str) -> list[RunRecord]:
    """Every stored run of this suite with this model, over all artifacts (unreadable files skipped)."""
    records: list[RunRecord] = []
    if not store.root.is_dir():
        return records
    for path in sorted(store.root.glob(f"*-{suite_hash[:12]}-{model_config_hash[:12]}.jsonl")):
        for line in path.read_bytes().splitlines():
            try:
                records.append(RunRecord.model_validate_json(line))
            except ValidationError:
                continue
    return records


class GroupCommit:
    """Appends records from many coroutines; those that arrive during a write share the next one."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._waiting: list[tuple[RunKey, bytes, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def append(self, record: RunRecord) -> None:
        """Return once `record` is on disk (fsynced); raise what the write raised."""
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Encoded here, not in the writer thread: the thread then only waits on the disk, without
        # holding the GIL the event loop needs.
        self._waiting.append((record.key, encode(record), written))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_until_empty())
        await asyncio.shield(written)  # a cancelled caller does not cancel the others' write

    async def flush(self) -> None:
        """Wait until every record handed over so far is written (or its write failed)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.wait([self._writer])

    async def _write_until_empty(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await asyncio.to_thread(self.store.write_lines, [(key, line) for key, line, _ in batch])
            except BaseException as exc:
                for _, _, written in batch:
                    if not written.done():
                        written.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                for _, _, written in batch:
                    if not written.done():
                        written.set_result(None)


def _cut_torn_tail(path: Path) -> None:
    """Drop a partial last line left by a killed writer, so appends start on a fresh line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        data = path.read_bytes()
        handle.truncate(data.rfind(b"\n") + 1)
