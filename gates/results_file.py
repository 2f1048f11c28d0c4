"""Evaluation results exchanged as files: the input of `ratchet gate` from any CI or eval tool.

JSONL, one object per (task, trial):

    {"task_id": "HumanEval/0", "trial": 0, "pass": true, "score": 1.0}

`task_id` (string) and `pass` (boolean) are required; `trial` (integer >= 0, default: the
line's position among that task's lines) and `score` (0..1, default 1.0 for a pass and 0.0
for a fail) are optional; other fields are ignored (so a run store export works as is).
A (task_id, trial) pair may appear once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ratchet.agents import UserError, validation_message


class ResultRow(BaseModel):
    """One line of a results file."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    task_id: str = Field(min_length=1)
    trial: int | None = Field(default=None, ge=0)
    passed: bool = Field(alias="pass", strict=True)
    score: float | None = Field(default=None, ge=0.0, le=1.0)


def read_results(path: Path) -> pd.DataFrame:
    """task_id, trial, passed, score for every line; UserError naming the file and line on bad input."""
    if not path.is_file():
        raise UserError(f"{path}: no such results file")
    rows: list[ResultRow] = []
    numbers: list[int] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8") from exc
    for number, line in enumerate(lines, start=1):
        if line.strip():
            rows.append(_row(path, number, line))
            numbers.append(number)
    if not rows:
        raise UserError(f'{path}: no results; expected JSONL lines like {{"task_id": "t1", "trial": 0, "pass": true}}')
    frame = pd.DataFrame(
        {
            "task_id": [r.task_id for r in rows],
            "trial": [r.trial for r in rows],
            "passed": [r.passed for r in rows],
            "score": [r.score if r.score is not None else float(r.passed) for r in rows],
        }
    )
    missing = frame["trial"].isna()
    if missing.any():
        frame.loc[missing, "trial"] = frame[missing].groupby("task_id").cumcount()
    frame["trial"] = frame["trial"].astype("int64")
    duplicated = frame.duplicated(["task_id", "trial"])
    if duplicated.any():
        again = int(duplicated.to_numpy().argmax())
        task_id, trial = frame["task_id"].iat[again], int(frame["trial"].to_numpy()[again])
        first = int(((frame["task_id"] == task_id) & (frame["trial"] == trial)).to_numpy().argmax())
        raise UserError(
            f"{path} line {numbers[again]}: task {task_id!r} trial {trial} appears twice (first on line "
            f"{numbers[first]}); give each run its own trial number"
        )
    return frame


def _row(path: Path, number: int, line: str) -> ResultRow:
    """One non-empty line as a ResultRow; UserError naming the file and line."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} line {number}: not JSON ({exc.msg}); one JSON object per line") from exc
    if not isinstance(data, dict):
        raise UserError(
            f"{path} line {number}: expected a JSON object with task_id and pass, got {type(data).__name__}"
        )
    try:
        return ResultRow.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{path} line {number}: {validation_message(exc, data)}") from exc
