"""gates.suite: builtin HumanEval, task files, pinned splits, suites in a workspace."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ratchet.agents.errors import UserError
from ratchet.gates.suite import (
    SPLITS,
    Suite,
    assign_splits,
    builtin_humaneval_tasks,
    load_suite,
    load_task_file,
    write_splits_file,
)
from ratchet.gates.task import ExactMatchVerifier, PythonTestsVerifier

PY_TASK = {
    "id": "double",
    "input": "Write double(x).",
    "verifier": {"type": "python_tests", "test": "def check(f):\n    assert f(2) == 4\n", "entry_point": "double"},
}
EM_TASK = {"id": "capital", "input": "Capital of France?", "verifier": {"type": "exact_match", "expected": ["Paris"]}}


def write_jsonl(path: Path, items: list[object]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


def test_builtin_humaneval() -> None:
    tasks = builtin_humaneval_tasks()
    assert len(tasks) == 164
    first = tasks[0]
    assert first.id == "HumanEval/0"
    assert first.input.startswith("from typing import List")
    assert isinstance(first.verifier, PythonTestsVerifier)
    assert first.verifier.entry_point == "has_close_elements"
    assert first.rubric == "The function `has_close_elements` must pass the task's hidden unit tests."
    assert first.metadata == {"source": "humaneval"}
    assert builtin_humaneval_tasks()[0] is first  # cached per process
    tasks.clear()
    assert len(builtin_humaneval_tasks()) == 164  # callers get their own list


def test_assign_splits_is_deterministic_disjoint_and_covering() -> None:
    ids = [t.id for t in builtin_humaneval_tasks()]
    splits = assign_splits(ids)
    assert tuple(splits) == SPLITS
    assert splits == assign_splits(list(reversed(ids)))
    flat = [i for name in SPLITS for i in splits[name]]
    assert sorted(flat) == sorted(ids)  # covering and disjoint
    assert all(40 <= len(splits[name]) <= 70 for name in SPLITS)
    assert assign_splits(ids, seed="other") != splits


def test_splits_are_in_natural_order() -> None:
    ids = [f"HumanEval/{i}" for i in range(40)]
    for members in assign_splits(ids).values():
        assert members == sorted(members, key=lambda i: int(i.split("/")[1]))


def test_content_hash_is_stable_across_processes() -> None:
    tasks = builtin_humaneval_tasks()[:5]
    suite = Suite(name="s", tasks={t.id: t for t in tasks}, splits=assign_splits(t.id for t in tasks))
    script = (
        "from ratchet.gates.suite import Suite, assign_splits, builtin_humaneval_tasks\n"
        "tasks = builtin_humaneval_tasks()[:5]\n"
        "print(Suite(name='s', tasks={t.id: t for t in reversed(tasks)}, "
        "splits=assign_splits(t.id for t in tasks)).content_hash())\n"
    )
    root = Path(__file__).resolve().parents[2]
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=root, check=True)
    assert other.stdout.strip() == suite.content_hash()
    changed = Suite(name="s", tasks=suite.tasks, splits={**suite.splits, "dev": []})
    assert changed.content_hash() != suite.content_hash()


def test_load_jsonl_task_file(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(PY_TASK) + "\n\n" + json.dumps(EM_TASK) + "\n", encoding="utf-8")
    tasks = load_task_file(path)
    assert [t.id for t in tasks] == ["double", "capital"]
    assert isinstance(tasks[0].verifier, PythonTestsVerifier)
    assert isinstance(tasks[1].verifier, ExactMatchVerifier)


def test_load_yaml_task_file(tmp_path: Path) -> None:
    path = tmp_path / "tasks.yaml"
    path.write_text(
        "- id: capital\n  input: Capital of France?\n  verifier:\n    type: exact_match\n    expected: [Paris]\n",
        encoding="utf-8",
    )
    assert [t.id for t in load_task_file(path)] == ["capital"]


BAD_VERIFIER = {**EM_TASK, "id": "x", "verifier": {"type": "regex", "expected": ["a"]}}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([json.dumps(PY_TASK), "{not json"], "tasks.jsonl line 2: invalid JSON: Expecting property name"),
        (
            [json.dumps(PY_TASK), json.dumps(EM_TASK), json.dumps(BAD_VERIFIER)],
            "tasks.jsonl line 3: field 'verifier.type': must be 'python_tests' or 'exact_match'",
        ),
        (
            [json.dumps({k: v for k, v in PY_TASK.items() if k != "input"})],
            "tasks.jsonl line 1: field 'input': missing",
        ),
        (
            [json.dumps({**PY_TASK, "verifier": {"type": "python_tests", "test": "x"}})],
            "tasks.jsonl line 1: field 'verifier.entry_point': missing",
        ),
        (
            [json.dumps(EM_TASK), json.dumps({**PY_TASK, "rubrik": "x"})],
            "tasks.jsonl line 2: field 'rubrik': unknown field",
        ),
        (
            [json.dumps(EM_TASK), "", json.dumps(EM_TASK)],
            "tasks.jsonl line 3: field 'id': duplicate task id 'capital' (first at line 1)",
        ),
        (["[1, 2]"], "tasks.jsonl line 1: a task must be an object, got list"),
    ],
)
def test_bad_jsonl_files_give_one_line_errors(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_task_file(path)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(str(path.parent))
    assert message in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id: x\n", "tasks.yaml: must be a YAML list of tasks, got dict"),
        ("- [unclosed\n", "tasks.yaml: invalid YAML:"),
        (
            "- id: a\n  input: x\n  verifier: {type: exact_match, expected: [a]}\n- id: b\n  input: x\n  verifier: {}\n",
            "tasks.yaml item 2: field 'verifier.type': missing",
        ),
    ],
)
def test_bad_yaml_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "tasks.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match="^[^\n]*$") as caught:
        load_task_file(path)
    assert message in str(caught.value)


def test_non_utf8_task_file(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(b'{"id": "caf\xe9"}\n')
    with pytest.raises(UserError, match="tasks.jsonl: not UTF-8"):
        load_task_file(path)


def make_workspace(tmp_path: Path, name: str = "mini", source: str = "tasks.jsonl") -> Path:
    folder = tmp_path / "suites" / name
    folder.mkdir(parents=True)
    (folder / "suite.yaml").write_text(f"name: {name}\nsource: {source}\ndescription: two tasks\n", encoding="utf-8")
    write_jsonl(folder / "tasks.jsonl", [PY_TASK, EM_TASK])
    write_splits_file(folder / "splits.json", {"dev": ["double"], "gate": ["capital"], "holdout": []})
    return tmp_path


def test_load_suite_from_workspace(tmp_path: Path) -> None:
    suite = load_suite(make_workspace(tmp_path), "mini")
    assert suite.name == "mini"
    assert sorted(suite.tasks) == ["capital", "double"]
    assert [t.id for t in suite.split("dev")] == ["double"]
    assert suite.split("holdout") == []
    assert json.loads((tmp_path / "suites/mini/splits.json").read_text()) == suite.splits
    assert suite.content_hash() == load_suite(tmp_path, "mini").content_hash()
    with pytest.raises(UserError, match="unknown split 'train'"):
        suite.split("train")


def test_load_builtin_suite(tmp_path: Path) -> None:
    folder = tmp_path / "suites" / "humaneval"
    folder.mkdir(parents=True)
    (folder / "suite.yaml").write_text("name: humaneval\nsource: builtin:humaneval\n", encoding="utf-8")
    write_splits_file(folder / "splits.json", assign_splits(t.id for t in builtin_humaneval_tasks()))
    suite = load_suite(tmp_path, "humaneval")
    assert len(suite.tasks) == 164
    assert sum(len(suite.split(name)) for name in SPLITS) == 164


def edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda f: (f / "suite.yaml").unlink(), "suite 'mini' not found: no suites/mini/suite.yaml"),
        (
            lambda f: (f / "suite.yaml").write_text("name: mini\nsorce: x\n"),
            "suites/mini/suite.yaml: field 'source': missing",
        ),
        (lambda f: (f / "suite.yaml").write_text("name: mini\nsource: t.csv\n"), "field 'source': 't.csv' must be"),
        (lambda f: (f / "suite.yaml").write_text("name: other\nsource: tasks.jsonl\n"), "field 'name': is 'other'"),
        (lambda f: (f / "suite.yaml").write_text("name: mini\nsource: builtin:mbpp\n"), "unknown 'builtin:mbpp'"),
        (lambda f: (f / "suite.yaml").write_text("[a, b"), "suites/mini/suite.yaml: invalid YAML"),
        (lambda f: (f / "splits.json").unlink(), "suites/mini/splits.json: splits file missing"),
        (lambda f: edit_json(f / "splits.json", holdout=["nope"]), "field 'holdout': unknown task id 'nope'"),
        (
            lambda f: edit_json(f / "splits.json", holdout=["double"]),
            "task 'double' is in two splits (dev and holdout)",
        ),
        (lambda f: edit_json(f / "splits.json", gate=[]), "1 task(s) in no split: capital"),
        (lambda f: edit_json(f / "splits.json", train=[]), "must be a JSON object with keys dev, gate, holdout"),
    ],
)
def test_load_suite_errors(tmp_path: Path, breakage: Callable[[Path], object], message: str) -> None:
    workspace = make_workspace(tmp_path)
    breakage(workspace / "suites" / "mini")
    with pytest.raises(UserError) as caught:
        load_suite(workspace, "mini")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_suite_name_cannot_escape_the_workspace(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="invalid suite name"):
        load_suite(tmp_path, "../etc")
