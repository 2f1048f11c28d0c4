"""Executable diagnosis: symptom reports aggregate into ordered patterns and a markdown work order."""

from __future__ import annotations

import re

import pytest

from ratchet.critics.diagnosis import EngineeringSpec, diagnose, symptom_frame
from ratchet.critics.symptoms import TAXONOMY, Symptom, SymptomReport


def _report(
    task: str, label: str | None, error_type: str | None = None, tools: bool = False, evidence: str = "", trial: int = 0
) -> SymptomReport:
    if label is None:
        return SymptomReport(task_id=task, trial=trial, passed=True, used_tools=tools)
    symptom = Symptom(
        label=label, description=TAXONOMY.get(label, "?"), evidence=[evidence or f"{label} in {task}"], detector="test"
    )
    return SymptomReport(
        task_id=task, trial=trial, passed=False, error_type=error_type, used_tools=tools, symptoms=[symptom]
    )


@pytest.fixture
def reports() -> list[SymptomReport]:
    return [
        _report("T/1", "undefined_name", "NameError", evidence="NameError: name 'math' is not defined"),
        _report("T/2", "non_code_output", "SyntaxError", evidence="```python"),
        _report("T/3", "non_code_output", "SyntaxError", tools=True, evidence="Here is the code:"),
        _report("T/4", "non_code_output", "SyntaxError", evidence="```python"),
        _report("T/5", "undefined_name", "NameError", tools=True, evidence="NameError: name 'List' is not defined"),
        _report("T/6", "wrong_answer", "AssertionError"),
        _report("T/7", None),
        _report("T/8", None),
        _report("T/9", None),
        _report("T/10", None),
        _report("T/2", "non_code_output", "IndentationError", trial=1, evidence="```"),
        _report("T/11", "timeout", "Timeout"),
    ]


def test_patterns_are_ordered_by_count_then_label(reports: list[SymptomReport]) -> None:
    spec = diagnose(reports, agent="coder", release="coder/v1", split="dev")
    assert [(p.label, p.count) for p in spec.patterns] == [
        ("non_code_output", 4),
        ("undefined_name", 2),
        ("timeout", 1),
        ("wrong_answer", 1),
    ]
    assert (spec.agent, spec.release, spec.split, spec.runs, spec.failed) == ("coder", "coder/v1", "dev", 12, 8)
    assert spec.pass_rate == pytest.approx(4 / 12, abs=1e-4)


def test_shares_and_trigger_conditions(reports: list[SymptomReport]) -> None:
    spec = diagnose(reports, agent="coder", release="coder/v1", split="dev")
    by_label = {p.label: p for p in spec.patterns}
    assert by_label["non_code_output"].share == pytest.approx(0.5)
    assert by_label["undefined_name"].share == pytest.approx(0.25)
    assert by_label["timeout"].share == pytest.approx(0.125)
    assert sum(p.count for p in spec.patterns) == spec.failed  # one symptom per failed run here

    noc = by_label["non_code_output"]
    assert noc.task_ids == ["T/2", "T/3", "T/4"]  # first-seen order, no duplicates
    assert noc.error_types == {"SyntaxError": 3, "IndentationError": 1}
    assert noc.with_tools == 1
    assert noc.examples == ["```python", "Here is the code:", "```"]  # distinct, at most three
    assert noc.description == TAXONOMY["non_code_output"]
    assert by_label["undefined_name"].with_tools == 1


def test_markdown_renders_a_table_with_every_label(reports: list[SymptomReport]) -> None:
    spec = diagnose(reports, agent="coder", release="coder/v1", split="dev")
    text = spec.markdown()
    assert "coder/v1" in text and "dev" in text
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + len(spec.patterns)  # header, separator, one row per pattern
    header_cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert len(header_cells) >= 4
    for index, pattern in enumerate(spec.patterns, start=2):
        row = rows[index]
        assert f"`{pattern.label}`" in row or pattern.label in row
        assert re.search(rf"\|\s*{pattern.count}\s*\|", row), row
        assert f"{pattern.share * 100:.0f}%" in row
        assert [c.strip() for c in row.strip("|").split("|")].__len__() == len(header_cells), row
    assert text.index("non_code_output") < text.index("undefined_name") < text.index("wrong_answer")
    assert "Here is the code:" in text


def test_spec_round_trips_as_json(reports: list[SymptomReport]) -> None:
    spec = diagnose(reports, agent="coder", release="coder/v1", split="dev")
    assert EngineeringSpec.model_validate_json(spec.model_dump_json()) == spec
    assert spec.version == 1


def test_no_failures_means_no_patterns() -> None:
    spec = diagnose([_report("T/1", None), _report("T/2", None)], agent="coder", release="coder/v1", split="gate")
    assert (spec.runs, spec.failed, spec.pass_rate, spec.patterns) == (2, 0, 1.0, [])
    text = spec.markdown()
    assert "coder/v1" in text and not [line for line in text.splitlines() if line.startswith("| 1 ")]


def test_no_reports_at_all() -> None:
    spec = diagnose([], agent="coder", release="coder/v1", split="dev")
    assert (spec.runs, spec.failed, spec.pass_rate, spec.patterns) == (0, 0, 0.0, [])
    spec.markdown()


def test_labels_outside_the_taxonomy_are_kept_and_flagged() -> None:
    spec = diagnose([_report("T/1", "prints_debug_output", "AssertionError")], agent="c", release="c/v1", split="dev")
    (pattern,) = spec.patterns
    assert pattern.label == "prints_debug_output" and "not in the taxonomy" in pattern.description


def test_symptom_frame_ignores_passed_runs(reports: list[SymptomReport]) -> None:
    frame = symptom_frame(reports)
    assert len(frame) == 8 and set(frame["label"]) == {"non_code_output", "undefined_name", "wrong_answer", "timeout"}
    assert list(frame.columns) == ["task_id", "trial", "label", "error_type", "used_tools", "evidence"]


def test_detect_then_diagnose_end_to_end() -> None:
    import asyncio

    from ratchet.critics.detectors import detect
    from ratchet.critics.view import blind_view
    from ratchet.gates.verifier import verify
    from tests.critics.test_detectors import CASES, TASK, _trace

    answers = [CASES[name][0] for name in ("fences", "prose_at_error_line", "name_error")]
    answers.append("def inc(x):\n    return x + 1\n")
    found = []
    for trial, answer in enumerate(answers):
        outcome = asyncio.run(verify(TASK, answer, trial=trial))
        view = blind_view(_trace(answer).model_copy(update={"trial": trial}), TASK, outcome)
        found.append(detect(view))
    spec = diagnose(found, agent="coder", release="coder/v1", split="dev")
    assert [(p.label, p.count) for p in spec.patterns] == [("non_code_output", 2), ("undefined_name", 1)]
    assert [p.share for p in spec.patterns] == pytest.approx([2 / 3, 1 / 3], abs=1e-4)
    assert spec.pass_rate == 0.25
