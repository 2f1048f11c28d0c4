"""The run store: finished (task, trial) runs, appended as they complete.

One JSONL file per run key (artifact hash, suite hash, model config) under
`.ratchet/runs/`. A record is appended, flushed and fsynced as soon as its task
finishes, so a killed run resumes without redoing finished work. A torn last line
(the process died mid-write) is ignored and cut off before the next append.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from agents.errors import StateError
from agents.trace import Trace
from gates.outcome import Outcome


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
        path = self.path(record.key)
        line = record.model_dump_json().encode() + b"\n"
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            _cut_torn_tail(path)
            with path.open("ab") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())


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
