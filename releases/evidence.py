"""The evidence of a decision, committed on its RC branch in `releases/<agent>/rc-<N>/`: the one module
that names its files (written by pipeline.record) and reads them (`ratchet verify`'s re-derivation,
`why`, `diff`, `history`, the report). docs/formats.md describes each file.

Every read goes through one open repository's persistent `git cat-file --batch` process with a
Every read goes through one open repository's persistent `git cat-file --batch` process with a
`<rev>:<path>` request: git resolves the path itself, so a blob costs one pipe round trip and no
subprocess, whatever the number of releases. Outcome tables (`outcomes-<side>-<split>.csv`, see
pipeline.record) are parsed only as far as a command needs: one task's rows, or the whole table.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from ratchet.gates import Evaluation, Outcome
from ratchet.releases.gitstore import GitStore
from ratchet.releases.ledger import MAIN, LedgerEntry, ledger_path, parse_ledger

if TYPE_CHECKING:  # pandas only for whole tables (`diff`, the report); `why` counts without it
    import pandas as pd

Side = Literal["baseline", "candidate"]
OUTCOME_HEADER = b"task_id,trial,passed,"

# The files of a decision's evidence folder (docs/formats.md).
VERDICT = "verdict.json"  # gates.policy.Verdict: the decision, its policy and every input besides the outcomes
INTENT = "intent.json"  # the RC's proposal (pipeline.synthesis.Proposal)
SPEC_JSON, SPEC_MD = "spec.json", "spec.md"  # the engineering spec (critics.diagnosis.EngineeringSpec)
SYMPTOMS = "symptoms.csv"  # one row per symptom of the baseline's runs
NOTES_JSON, NOTES_MD = "notes.json", "notes.md"  # the release notes (releases.notes.ReleaseNotes)
CRITIC_CALLS = "critic-calls.jsonl"  # the LLM critic's guarded calls, when it ran
SMOKE = "smoke.json"  # gates.smoke.SmokeCheck, when the agent has a smoke suite
FLIPS = "flips.csv"  # gates.flips.FlipTable, one row per task


def evidence_dir(agent: str, number: int) -> str:
    """The evidence folder of an agent's RC number `number`, on that RC's branch."""
    return f"releases/{agent}/rc-{number}"


def outcome_file(side: Side, split: str = "gate") -> str:
    """The evidence file holding one side's outcomes on a split, e.g. outcomes-candidate-gate.csv."""
    return f"outcomes-{side}-{split}.csv"


def outcome_tables(split: str) -> tuple[str, str]:
    """(baseline, candidate) outcome files of a split."""
    return outcome_file("baseline", split), outcome_file("candidate", split)


def is_outcome_file(name: str) -> bool:
    return name.startswith("outcomes-") and name.endswith(".csv")


GATE_TABLES = outcome_tables("gate")
HOLDOUT_TABLES = outcome_tables("holdout")
# what re-deriving a verdict reads (releases.rederive)
REDERIVATION_FILES = (VERDICT, *GATE_TABLES, *HOLDOUT_TABLES)
# (passes, runs) per task of an outcome table, by the table's sha256: a release's candidate table is often
# the next cycle's baseline.
TaskCounts = dict[str, tuple[int, int]]
OutcomeCache = dict[str, TaskCounts]


class TaskRuns(BaseModel):
    """One task's runs in one outcome table (confirmation trials included)."""

    model_config = ConfigDict(frozen=True)
    passes: int = Field(ge=0)
    runs: int = Field(ge=1)

    @computed_field  # type: ignore[prop-decorator]  # mypy rejects decorators over @property; the form pydantic documents
    @property
    def passed(self) -> bool:
        """The majority outcome, as the gate counts it (a tie passes)."""
        return self.passes / self.runs >= 0.5

    @property
    def letter(self) -> str:
        return "P" if self.passed else "F"

    def __str__(self) -> str:
        return f"{self.passes}/{self.runs}"


class EvidenceReader:
    """Reads ledgers and evidence files of one workspace through one open repository; caches blobs."""

    def __init__(self, git: GitStore) -> None:
        self.git = git
        self._blobs: dict[str, bytes | None] = {}
        self._runs: dict[tuple[int, str, str, str], TaskRuns | None] = {}

    def blob(self, rev: str, path: str) -> bytes | None:
        """A file's bytes at a revision, or None when the revision or the file does not exist."""
        key = f"{rev}:{path}"
        if key not in self._blobs:
            kind: str | bytes  # GitPython's annotation says str; cat-file's header comes back as bytes
            data: bytes | None
            try:
                _, kind, _, data = self.git.repo.git.get_object_data(key)
            except ValueError:  # cat-file answered "<rev>:<path> missing"
                data, kind = None, b"missing"
            self._blobs[key] = data if kind in (b"blob", "blob") else None
        return self._blobs[key]

    def prefetch(self, entries: Iterable[LedgerEntry], names: Iterable[str]) -> None:
        """Read the named evidence files of many decisions with one `git cat-file --batch` run: one process
        and one pass over the pipe instead of a round trip per file (what makes a 1,000-release ledger cheap)."""
        names = list(names)
        keys = [f"{e.rc_commit}:{e.evidence}/{name}" for e in entries if e.rc_commit and e.evidence for name in names]
        keys = [key for key in dict.fromkeys(keys) if key not in self._blobs]
        if keys:
            self._blobs.update(zip(keys, batch_read(Path(self.git.repo.git_dir), keys), strict=True))

    def ledger(self, agent: str, rev: str = MAIN) -> list[LedgerEntry]:
        """The agent's ledger, hash chain checked (as releases.registry.Registry.ledger reads it)."""
        data = self.blob(rev, ledger_path(agent))
        return parse_ledger(data.decode() if data else "", f"{rev}:{ledger_path(agent)}")

    def read(self, entry: LedgerEntry, name: str) -> bytes | None:
        """An evidence file of a decision: at the recorded commit, else at the RC branch's tip."""
        if not entry.evidence:
            return None
        for rev in (entry.rc_commit, f"refs/heads/{entry.rc}" if entry.rc else None):
            if rev and (data := self.blob(rev, f"{entry.evidence}/{name}")) is not None:
                return data
        return None

    def read_json(self, entry: LedgerEntry, name: str) -> dict[str, object]:
        data = self.read(entry, name)
        return json.loads(data) if data else {}

    def has_outcomes(self, entry: LedgerEntry, side: Side, split: str = "gate") -> bool:
        """Whether the decision's evidence holds that outcome table (the ledger says so for newer entries)."""
        name = outcome_file(side, split)
        if entry.outcome_hashes and name not in entry.outcome_hashes:
            return False
        return self.read(entry, name) is not None

    def task_runs(self, entry: LedgerEntry, side: Side, task_id: str, split: str = "gate") -> TaskRuns | None:
        """Passes and runs of one task in one side's outcome table; None if the table or the task is absent."""
        key = (entry.seq, side, task_id, split)
        if key not in self._runs:
            data = self.read(entry, outcome_file(side, split))
            self._runs[key] = task_runs(data, task_id) if data else None
        return self._runs[key]

    def outcomes(self, entry: LedgerEntry, side: Side, split: str = "gate") -> pd.DataFrame | None:
        data = self.read(entry, outcome_file(side, split))
        return outcome_frame(data) if data else None


def batch_read(git_dir: Path, keys: list[str]) -> list[bytes | None]:
    """`<rev>:<path>` blobs through one `git cat-file --batch`; None for what is missing or not a blob."""
    out = subprocess.run(
        ["git", "--git-dir", str(git_dir), "cat-file", "--batch", "--buffer"],
        input="".join(f"{key}\n" for key in keys).encode(),
        capture_output=True,
        check=True,
    ).stdout
    found: list[bytes | None] = []
    pos = 0
    for _ in keys:
        end = out.index(b"\n", pos)
        header = out[pos:end].split(b" ")
        pos = end + 1
        if len(header) == 3 and header[2].isdigit():  # "<sha> <type> <size>", then the content and a newline
            size = int(header[2])
            found.append(out[pos : pos + size] if header[1] == b"blob" else None)
            pos += size + 1
        else:  # "<key> missing" or "<key> ambiguous"
            found.append(None)
    return found


def task_runs(table: bytes, task_id: str) -> TaskRuns | None:
    """One task's passes/runs in an outcome CSV, without parsing the other rows.

    Rows start with `task_id,trial,passed,`; verifier messages are single lines (the last line of an
    error), so a row is a line that starts with the task's CSV field. Tables with another layout are
    parsed in full.
    """
    if not table.startswith(OUTCOME_HEADER):
        frame = outcome_frame(table)
        rows = frame[frame["task_id"] == task_id]["passed"]
        return TaskRuns(passes=int(rows.sum()), runs=len(rows)) if len(rows) else None
    needle = b"\n" + _csv_field(task_id).encode() + b","
    passes = runs = 0
    pos = table.find(needle)
    while pos >= 0:
        trial, _, rest = table[pos + len(needle) : pos + len(needle) + 32].partition(b",")
        if trial.isdigit() and rest.startswith((b"True,", b"False,")):
            runs += 1
            passes += rest.startswith(b"True,")
        pos = table.find(needle, pos + 1)
    return TaskRuns(passes=passes, runs=runs) if runs else None


def _csv_field(value: str) -> str:
    """How pandas' to_csv writes a field (minimal quoting)."""
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def task_ids(table: bytes) -> list[str]:
    """The distinct task ids of an outcome CSV, in table order."""
    ids = re.findall(rb'(?m)^"?([^",\n]+)"?,\d+,(?:True|False),', table)
    return list(dict.fromkeys(i.decode() for i in ids))


def outcome_frame(table: bytes) -> pd.DataFrame:
    """The whole outcome table: task_id, trial, passed (bool), score, error_type and message ('' when none)."""
    import pandas as pd

    frame = pd.read_csv(
        io.BytesIO(table), dtype={"task_id": str, "error_type": str, "message": str}, keep_default_na=False
    )
    frame["passed"] = frame["passed"].astype(str).str.lower().eq("true")
    return frame


def outcomes_of(frame: pd.DataFrame) -> list[Outcome]:
    """An outcome frame as gates' Outcome records (what gates.flips takes for its error columns)."""
    columns = frame[["task_id", "trial", "passed", "score", "error_type", "message"]]
    return [
        Outcome(
            task_id=task_id,
            trial=int(trial),
            passed=bool(passed),
            score=float(score),
            error_type=error_type or None,
            message=str(message),
        )
        for task_id, trial, passed, score, error_type, message in columns.itertuples(index=False, name=None)
    ]


def flip_row(flips_csv: bytes, task_id: str) -> dict[str, str] | None:
    """One task's row of a stored flips.csv (columns of gates.flips.Flip), or None."""
    header, _, body = flips_csv.partition(b"\n")
    match = re.search(rb"(?m)^" + re.escape(_csv_field(task_id).encode()) + rb",.*$", body)
    if match is None:
        return None
    rows = list(csv.reader([header.decode(), match.group(0).decode()]))
    return dict(zip(rows[0], rows[1], strict=False))


def outcome_counts(data: bytes, cache: OutcomeCache | None = None, first_trials: int | None = None) -> TaskCounts:
    """(passes, runs) per task_id of an outcome table (columns task_id and passed, one row per run);
    with `first_trials`, only the runs numbered below it (column trial): the runs every task got
    before confirmation, which the gate's suite test reads.

    The same numbers as gates.statistics.task_counts (what re-deriving a verdict reads), read with the csv module: pandas' parser and
    groupby cost milliseconds a table, which a thousand releases would turn into most of `verify`.
    """
    key = hashlib.sha256(data).hexdigest() + ("" if first_trials is None else f"<{first_trials}")
    if cache is not None and key in cache:
        return cache[key]
    rows = csv.reader(io.StringIO(data.decode()))
    header = next(rows, [])
    if "task_id" not in header or "passed" not in header or (first_trials is not None and "trial" not in header):
        raise ValueError("an outcome table needs the columns task_id, trial and passed")
    task, passed = header.index("task_id"), header.index("passed")
    trial = header.index("trial") if first_trials is not None else None
    counts: dict[str, list[int]] = {}
    for row in rows:
        if row[passed] not in ("True", "False"):
            raise ValueError(f"column 'passed' holds {row[passed]!r}, not True or False")
        if trial is not None and first_trials is not None and int(row[trial]) >= first_trials:
            continue
        tally = counts.setdefault(row[task], [0, 0])
        tally[0] += row[passed] == "True"
        tally[1] += 1
    found = {t: (p, n) for t, (p, n) in counts.items()}
    if cache is not None:
        cache[key] = found
    return found


def outcome_csv(evaluation: Evaluation) -> bytes:
    """The outcome table plus each raw trace's content hash (the traces stay in the run store)."""
    table = evaluation.outcome_table()
    table["trace_sha256"] = [hashlib.sha256(r.trace.model_dump_json().encode()).hexdigest() for r in evaluation.records]
    buffer = io.StringIO()
    table.to_csv(buffer, index=False)
    return buffer.getvalue().encode()
