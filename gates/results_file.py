"""Evaluation results exchanged as files: the input of `ratchet gate` from any CI or eval tool.

JSONL, one object per (task, trial):

    {"task_id": "HumanEval/0", "trial": 0, "pass": true, "score": 1.0}

`task_id` (a non-empty string, or an integer, read as its text: 7 -> "7") and `pass` (true or
false) are required. `trial` (an integer >= 0) is optional: lines without one are numbered by
their position among that task's lines without one (0, 1, ...). `score` (0..1) is optional and
defaults to 1.0 for a pass and 0.0 for a fail; NaN counts as no score. Other fields are ignored
(so a run store export works as is), blank lines are skipped, and a (task_id, trial) pair may
appear once.

Two readers, one result (`load_results`):

- the fast path: pyarrow parses the whole file by columns (only the four fields above, in
  parallel blocks) and numpy checks them, with no Python object per line: several times faster
  than the per-line path, and a fraction of its memory (benchmarks/gate_cli_scale.py).
- the per-line path: `json` and the `ResultRow` model, line by line. It runs whenever the fast
  path declines a file: a line pyarrow cannot parse or that is not one JSON object, a value of
  the wrong type or out of range (or in a form only the model takes, such as trial 1.0), a file
  that mixes number and string ids, text that is not UTF-8 or that `str.splitlines` would split
  elsewhere. So a bad file is always reported by the per-line path, in one line naming the file,
  the line and the field (a repeated (task_id, trial) pair excepted: both paths say it alike).

Both say, in `LoadedResults.notes`, what they accepted but a user may want to know: task ids
given as numbers (and whether the file mixes them with string ids), and NaN scores. A note is
one line that names lines but not the file; the caller says which file (and side) it is about.
"""

from __future__ import annotations

import codecs
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import numpy as np
import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from ratchet.agents import UserError, validation_message

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]

EXAMPLE = '{"task_id": "t1", "trial": 0, "pass": true}'
MAX_TRIAL = 2**63 - 1  # trials are int64
# U+0085, U+2028, U+2029 in UTF-8: str.splitlines breaks lines there, pyarrow does not
UNICODE_BREAKS = (b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xa9")
NEWLINE, CR, OPEN, CLOSE = 10, 13, ord("{"), ord("}")
DECODE_CHUNK = SCAN_CHUNK = 1 << 22  # bytes decoded or scanned at a time, to keep the temporaries small
BLOCK = 1 << 20  # pyarrow parses a file in blocks of this many bytes, in parallel


def _id_text(value: Any) -> Any:
    """A JSON integer task id as its text (7 -> "7"); anything else goes on to the string check."""
    return str(value) if type(value) is int else value


def _no_nan(value: Any) -> Any:
    """A NaN score counts as no score: the pass field decides it."""
    return None if isinstance(value, float) and math.isnan(value) else value


class ResultRow(BaseModel):
    """One line of a results file."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    task_id: Annotated[str, BeforeValidator(_id_text)] = Field(min_length=1)
    trial: int | None = Field(default=None, ge=0, le=MAX_TRIAL)
    passed: bool = Field(alias="pass", strict=True)
    score: Annotated[float | None, BeforeValidator(_no_nan)] = Field(default=None, ge=0.0, le=1.0)


@dataclass(frozen=True)
class LoadedResults:
    """A results file as read: the outcomes, and one-line notes on data that was accepted as is."""

    outcomes: pd.DataFrame  # task_id (str), trial (int64), passed (bool), score (float64); one row per line
    notes: list[str] = field(default_factory=list)  # e.g. "score is NaN on 2 lines (first: line 7); ..."


class _Lines(NamedTuple):
    """Where a file's rows are: row i on line `numbers[i]`, or on line i + 1 when `numbers` is None."""

    rows: int
    first: bytes  # the text of the first row's line
    numbers: np.ndarray | None = None

    def number(self, row: int) -> int:
        return row + 1 if self.numbers is None else int(self.numbers[row])


class _Columns(NamedTuple):
    """A file's columns as the fast path parsed and checked them."""

    task_ids: pd.Series  # str
    trial: np.ndarray  # int64; 0 where missing
    missing: np.ndarray  # bool: no trial on the line
    passed: np.ndarray  # bool
    score: np.ndarray  # float64; NaN where absent or NaN
    nan: np.ndarray  # bool: the score is NaN
    number_ids: bool  # task_id was a JSON number (on every line)


def read_results(path: Path) -> pd.DataFrame:
    """task_id, trial, passed, score for every line; UserError naming the file and line on bad input."""
    return load_results(path).outcomes


def load_results(path: Path) -> LoadedResults:
    """The outcomes of a results file and notes about its data; UserError naming the file and line on bad input."""
    data = _read_bytes(path)
    lines = _object_lines(data) if _plain_text(data) else None
    table = _parse(data, lines.first) if lines is not None else None
    if table is None or lines is None or table.num_rows != lines.rows:
        return _read_per_line(path, data)
    del data  # the bytes go before the columns are converted (a bad value, rare, reads the file again)
    columns = _columns(table)
    del table
    if columns is None:
        return _read_per_line(path)
    outcomes = _outcomes(path, columns.task_ids, columns.trial, columns.missing, columns.passed, columns.score, lines)
    notes = [_nan_note(columns.nan, lines)] if columns.nan.any() else []
    if columns.number_ids:
        notes.insert(0, _id_note(lines.rows, lines.number(0), str(columns.task_ids.iat[0]), mixed=False))
    _release_memory()
    return LoadedResults(outcomes, notes)


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise UserError(f"{path}: no such results file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the results file ({exc.strerror or exc})") from exc


# ---- the fast path -----------------------------------------------------------------------------


def _plain_text(data: bytes) -> bool:
    """UTF-8 that `str.splitlines` splits only at \\n and \\r\\n, as pyarrow does."""
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return False
    if data.isascii():
        return True
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for start in range(0, len(data), DECODE_CHUNK):
            decoder.decode(view[start : start + DECODE_CHUNK])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return not any(sequence in data for sequence in UNICODE_BREAKS)


def _object_lines(data: bytes) -> _Lines | None:
    """The number of each line that holds an object, if every non-blank line starts with `{` and ends with `}`
    (blanks aside); else None.

    `}` then `{` never occurs inside a JSON value and strings cannot hold a newline, so if pyarrow
    then parses as many objects as there are such lines, each line holds exactly one.
    """
    breaks = data.count(b"\n") - data.endswith(b"\n")
    if data.startswith(b"{") and data.endswith((b"}", b"}\n")) and data.count(b"}\n{") == breaks:
        return _Lines(breaks + 1, data[: data.find(b"\n")] if breaks else data)
    return _scanned_lines(data) if data else None


def _scanned_lines(data: bytes) -> _Lines | None:
    """`_object_lines` for any other layout: blank lines, blanks around objects, \\r\\n line ends."""
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.concatenate(
        [np.flatnonzero(raw[at : at + SCAN_CHUNK] == NEWLINE) + at for at in range(0, raw.size, SCAN_CHUNK)]
    )
    if data[-1] != NEWLINE:
        ends = np.append(ends, len(data))
    starts = np.empty_like(ends)
    starts[0], starts[1:] = 0, ends[:-1] + 1
    last = ends - 1
    last -= (last >= starts) & (raw[np.maximum(last, 0)] == CR)
    filled = last >= starts
    plain = filled & (raw[starts] == OPEN) & (raw[np.maximum(last, 0)] == CLOSE)
    for index in np.flatnonzero(filled & ~plain):  # blank lines and lines with blanks around the object
        stripped = data[starts[index] : ends[index]].strip(b" \t\r")
        if stripped[:1] != b"{" or stripped[-1:] != b"}":
            if stripped:
                return None
            filled[index] = False
    objects = np.flatnonzero(filled)
    if not objects.size:
        return None
    first = int(objects[0])
    return _Lines(objects.size, data[starts[first] : ends[first]], objects + 1)


def _parse(data: bytes, first: bytes) -> pa.Table | None:
    """task_id, trial, pass, score as pyarrow parses them (other fields skipped); None on any parse error, or
    without pyarrow (pandas 3 does not require it)."""
    try:
        import pyarrow as pa
        import pyarrow.json as pj  # type: ignore[import-untyped]
    except ImportError:
        return None

    try:
        head = json.loads(first)
    except ValueError:
        return None
    number_ids = isinstance(head, dict) and type(head.get("task_id")) is int
    schema = pa.schema(
        [
            ("task_id", pa.int64() if number_ids else pa.large_string()),  # large: pandas' str, without a copy
            ("trial", pa.int64()),
            ("pass", pa.bool_()),
            ("score", pa.float64()),
        ]
    )
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    for block in (BLOCK, min(len(data) + 1, 2**31 - 1)):  # the second for a line longer than a block
        try:
            return pj.read_json(
                pa.BufferReader(data),
                read_options=pj.ReadOptions(block_size=block),
                parse_options=options,
                memory_pool=pa.system_memory_pool(),
            )
        except (pa.ArrowException, ValueError) as exc:  # ArrowInvalid is both; a UnicodeDecodeError is a ValueError
            if "block size" not in str(exc) or block >= len(data):
                return None
    return None


def _release_memory() -> None:
    """Hand the read's freed buffers back to the system (malloc_trim; mimalloc's collect): the caller's next
    steps, such as reading the other side, need the room more than the allocators' free lists."""
    import pyarrow as pa

    pa.system_memory_pool().release_unused()
    pa.default_memory_pool().release_unused()


def _columns(table: pa.Table) -> _Columns | None:
    """The parsed columns checked, or None when a value is missing, of the wrong type or out of range."""
    import pyarrow as pa
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    ids, trials, passed, scores = (table.column(name) for name in ("task_id", "trial", "pass", "score"))
    number_ids = pa.types.is_integer(ids.type)
    if ids.null_count or passed.null_count or (not number_ids and pc.min(pc.binary_length(ids)).as_py() == 0):
        return None
    score = np.array(scores.to_numpy(), dtype=np.float64)  # null -> NaN; a copy of our own
    if (pc.min(trials).as_py() or 0) < 0 or ((score < 0.0) | (score > 1.0)).any():  # NaN compares False
        return None
    return _Columns(
        task_ids=(pc.cast(ids, pa.large_string()) if number_ids else ids).to_pandas(),
        trial=np.array(pc.fill_null(trials, 0).to_numpy(), dtype=np.int64),
        missing=trials.is_null().to_numpy(),
        passed=passed.to_numpy(),
        score=score,
        nan=pc.fill_null(pc.is_nan(scores), False).to_numpy(),
        number_ids=number_ids,
    )


# ---- shared by both paths ----------------------------------------------------------------------


def _outcomes(
    path: Path,
    task_ids: pd.Series,
    trial: np.ndarray,
    missing: np.ndarray,
    passed: np.ndarray,
    score: np.ndarray,
    lines: _Lines,
) -> pd.DataFrame:
    """The outcome frame: missing trials numbered, missing or NaN scores from pass; UserError on a repeated run.

    `trial` and `score` are the caller's own arrays and are filled in place.
    """
    codes = pd.factorize(task_ids)[0]
    if missing.any():
        trial[missing] = pd.Series(codes[missing]).groupby(codes[missing], sort=False).cumcount().to_numpy()
    _check_unique(path, task_ids, codes, trial, lines)
    passed = passed.astype(bool, copy=False)
    unscored = np.isnan(score)
    score[unscored] = passed[unscored]
    frame = {"task_id": task_ids.reset_index(drop=True), "trial": trial, "passed": passed, "score": score}
    return pd.DataFrame(frame, copy=False)


def _check_unique(path: Path, task_ids: pd.Series, codes: np.ndarray, trial: np.ndarray, lines: _Lines) -> None:
    """UserError naming the first line that repeats a (task_id, trial) pair, and the line it repeats."""
    if codes.size and trial.max() < 2**32 and codes.max() < 2**31:  # one int64 key per pair: a sort tells
        ordered = np.sort((codes.astype(np.int64) << 32) | trial)
        if not (ordered[1:] == ordered[:-1]).any():
            return
    repeated = pd.DataFrame({"task": codes, "trial": trial}).duplicated().to_numpy()
    if not repeated.any():
        return
    again = int(repeated.argmax())
    first = int(((codes == codes[again]) & (trial == trial[again])).argmax())
    raise UserError(
        f"{path} line {lines.number(again)}: task {task_ids.iat[again]!r} trial {trial[again]} appears twice "
        f"(first on line {lines.number(first)}); give each run its own trial number"
    )


def _lines_text(count: int, first: int) -> str:
    return f"{count:,} line{'s' if count != 1 else ''} (first: line {first})"


def _id_note(count: int, first: int, example: str, mixed: bool) -> str:
    """The note on task ids given as JSON numbers (the caller names the file)."""
    also = f'; the file mixes number and string ids, so {example} and "{example}" name the same task' if mixed else ""
    return f"task_id is a JSON number on {_lines_text(count, first)}; read as text ({example} -> {example!r}){also}"


def _nan_note(nan: np.ndarray, lines: _Lines) -> str:
    """The note on NaN scores (the caller names the file)."""
    where = _lines_text(int(nan.sum()), lines.number(int(nan.argmax())))
    return f"score is NaN on {where}; ignored there, the pass field decides the score (1.0 or 0.0)"


# ---- the per-line path -------------------------------------------------------------------------


def _read_per_line(path: Path, data: bytes | None = None) -> LoadedResults:
    """Every line through `json` and ResultRow: the reference reader, whose messages name the file, line and field."""
    text = _text(path, _read_bytes(path) if data is None else data)
    task_ids: list[str] = []
    trials: list[int] = []
    missing: list[bool] = []
    passed: list[bool] = []
    scores: list[float] = []
    numbers: list[int] = []
    number_ids: list[int] = []  # lines whose task_id is a JSON number
    nan: list[bool] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = _line_object(path, number, line)
        row = _row(path, number, fields)
        task_ids.append(row.task_id)
        trials.append(0 if row.trial is None else row.trial)
        missing.append(row.trial is None)
        passed.append(row.passed)
        scores.append(math.nan if row.score is None else row.score)
        numbers.append(number)
        nan.append(isinstance(fields.get("score"), float) and math.isnan(fields["score"]))
        if type(fields.get("task_id")) is int:
            number_ids.append(number)
    if not numbers:
        raise UserError(f"{path}: no results; expected JSONL lines like {EXAMPLE}")
    lines = _Lines(len(numbers), b"", np.array(numbers, dtype=np.int64))
    trial, score = np.array(trials, dtype=np.int64), np.array(scores, dtype=np.float64)
    outcomes = _outcomes(path, pd.Series(task_ids), trial, np.array(missing), np.array(passed), score, lines)
    notes: list[str] = []
    if number_ids:
        example = str(task_ids[numbers.index(number_ids[0])])
        mixed = len(number_ids) < len(numbers)
        notes.append(_id_note(len(number_ids), number_ids[0], example, mixed))
    if any(nan):
        notes.append(_nan_note(np.array(nan), lines))
    return LoadedResults(outcomes, notes)


def _text(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8") from exc


def _line_object(path: Path, number: int, line: str) -> dict[str, Any]:
    """One non-empty line as a JSON object; UserError naming the file and line."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} line {number}: not JSON ({exc.msg}); one JSON object per line") from exc
    if not isinstance(data, dict):
        raise UserError(
            f"{path} line {number}: expected a JSON object with task_id and pass, got {type(data).__name__}"
        )
    return data


def _row(path: Path, number: int, data: dict[str, Any]) -> ResultRow:
    """One line's object as a ResultRow; UserError naming the file, line and field."""
    try:
        return ResultRow.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{path} line {number}: {validation_message(exc, data)}") from exc
