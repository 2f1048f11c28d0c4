"""Results files (gates/results_file.py): the columnar fast path reads what the per-line path reads, and every
bad line still gets the per-line path's message naming the file, the line and the field."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from ratchet.agents import UserError
from ratchet.gates import results_file
from ratchet.gates.results_file import LoadedResults, load_results, read_results

GOOD = '{"task_id": "a", "trial": 0, "pass": true}\n'


def write(tmp_path: Path, text: str | bytes, name: str = "results.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def fast_only(monkeypatch: pytest.MonkeyPatch, path: Path) -> LoadedResults:
    """`load_results(path)`, failing if the file needed the per-line path."""

    def per_line(path: Path, data: bytes | None = None) -> LoadedResults:
        raise AssertionError(f"{path} went to the per-line path")

    with monkeypatch.context() as patch:
        patch.setattr(results_file, "_read_per_line", per_line)
        return load_results(path)


def same_both_ways(monkeypatch: pytest.MonkeyPatch, path: Path) -> LoadedResults:
    """The fast path's result, checked against the per-line path's."""
    fast, reference = fast_only(monkeypatch, path), results_file._read_per_line(path)
    pd.testing.assert_frame_equal(fast.outcomes, reference.outcomes)
    assert fast.notes == reference.notes
    return fast


def varied_lines(count: int = 300) -> list[str]:
    """Tasks with and without trials and scores, extra fields of every JSON type, ids with escapes and accents."""
    lines = []
    for i in range(count):
        row: dict[str, object] = {
            "task_id": f"HumanEval/{i % 40}" if i % 7 else f'caf\u00e9-"{i % 5}"\\x',
            "pass": i % 3 != 0,
        }
        if i % 4:
            row["trial"] = i
        if i % 5 == 0:
            row["score"] = 0.25 if i % 3 == 0 else 1
        if i % 6 == 0:
            row["meta"] = {"model": "m", "tokens": [i, None, 1.5], "ok": True} if i % 12 else "plain"
        lines.append(json.dumps(row, ensure_ascii=i % 2 == 0))
    return lines


# ---- the fast path reads what the per-line path reads -------------------------------------------


def test_fast_path_equals_per_line_path_on_a_varied_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = same_both_ways(monkeypatch, write(tmp_path, "\n".join(varied_lines()) + "\n"))
    frame = loaded.outcomes
    assert list(frame.columns) == ["task_id", "trial", "passed", "score"]
    text = pd.Series(["x"]).dtype  # str on pandas 3, object before
    assert frame.dtypes.tolist() == [text, "int64", "bool", "float64"]
    assert len(frame) == 300 and loaded.notes == []
    assert frame["score"].iloc[0] == 0.25 and frame["score"].iloc[10] == 1.0 and frame["score"].iloc[2] == 1.0


def test_blank_lines_crlf_and_blanks_around_objects_keep_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = varied_lines(40)
    text = "\r\n".join(f"  {line}\t" if i % 3 == 0 else line for i, line in enumerate(lines))
    text = "\n\n" + text.replace(lines[10], lines[10] + "\r\n \t\r\n") + "\r\n\n"
    loaded = same_both_ways(monkeypatch, write(tmp_path, text))
    assert len(loaded.outcomes) == 40


def test_a_line_longer_than_a_parse_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    long_line = json.dumps({"task_id": "big", "pass": True, "trace": "x" * (3 << 20)})
    loaded = same_both_ways(monkeypatch, write(tmp_path, GOOD + long_line + "\n" + GOOD.replace('"a"', '"b"')))
    assert loaded.outcomes["task_id"].tolist() == ["a", "big", "b"]


def test_read_results_is_the_outcomes_frame(tmp_path: Path) -> None:
    path = write(tmp_path, "\n".join(varied_lines(20)))
    pd.testing.assert_frame_equal(read_results(path), load_results(path).outcomes)


def test_trial_defaults_to_the_position_among_the_tasks_lines_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (
        '{"task_id": "a", "pass": true}\n{"task_id": "b", "pass": false}\n{"task_id": "a", "pass": false}\n'
        '{"task_id": "c", "trial": 7, "pass": true}\n{"task_id": "c", "pass": true}\n{"task_id": "a", "pass": true}\n'
    )
    frame = same_both_ways(monkeypatch, write(tmp_path, text)).outcomes
    assert list(zip(frame["task_id"], frame["trial"], strict=True)) == [
        ("a", 0),
        ("b", 0),
        ("a", 1),
        ("c", 7),
        ("c", 0),
        ("a", 2),
    ]
    assert frame["score"].tolist() == [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]


# ---- notes on data that did not stop the read -----------------------------------------------------


def test_integer_ids_become_text_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path, '\n{"task_id": 7, "pass": true}\n{"task_id": -3, "pass": false}\n{"task_id": 7, "pass": true}\n'
    )
    loaded = same_both_ways(monkeypatch, path)
    assert loaded.outcomes["task_id"].tolist() == ["7", "-3", "7"]
    assert loaded.outcomes["trial"].tolist() == [0, 0, 1]
    assert loaded.notes == ["task_id is a JSON number on 3 lines (first: line 2); read as text (7 -> '7')"]


def test_mixed_number_and_string_ids_are_read_with_a_note(tmp_path: Path) -> None:
    path = write(
        tmp_path, '{"task_id": "x", "pass": true}\n{"task_id": 12, "pass": true}\n{"task_id": "12", "pass": true}\n'
    )
    loaded = load_results(path)
    assert loaded.outcomes["task_id"].tolist() == ["x", "12", "12"]
    assert loaded.outcomes["trial"].tolist() == [0, 0, 1], "12 and '12' are the same task"
    assert loaded.notes == [
        "task_id is a JSON number on 1 line (first: line 2); read as text (12 -> '12'); the file mixes number and "
        'string ids, so 12 and "12" name the same task'
    ]


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "per-line"])
def test_a_nan_score_is_ignored_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool) -> None:
    text = (
        '{"task_id": "a", "pass": true, "score": 0.5}\n{"task_id": "b", "pass": false, "score": NaN}\n'
        '{"task_id": "c", "pass": true, "score": NaN}\n'
    )
    if not fast:  # a trial of 1.0 is read by the per-line path only, and it must agree
        text = text.replace('"a", "pass"', '"a", "trial": 1.0, "pass"')
    path = write(tmp_path, text)
    if fast:
        loaded = same_both_ways(monkeypatch, path)
    else:
        calls: list[Path] = []
        per_line = results_file._read_per_line
        monkeypatch.setattr(results_file, "_read_per_line", lambda p, d=None: calls.append(p) or per_line(p, d))
        loaded = load_results(path)
        assert calls == [path]
    assert loaded.outcomes["passed"].tolist() == [True, False, True]
    assert loaded.outcomes["score"].tolist() == [0.5, 0.0, 1.0]
    assert loaded.notes == [
        "score is NaN on 2 lines (first: line 2); ignored there, the pass field decides the score (1.0 or 0.0)"
    ]


# ---- bad input: the per-line path's message, with the file and the line ----------------------------

BAD_LINES = [
    ("not-json", '{"task_id": "b", "pass": ', ("not JSON",)),
    ("not-an-object", '["b", true]', ("expected a JSON object", "got list")),
    ("a-number", "5", ("expected a JSON object", "got int")),
    ("missing-pass", '{"task_id": "b"}', ("field 'pass': missing",)),
    ("missing-task-id", '{"pass": true}', ("field 'task_id': missing",)),
    ("pass-yes", '{"task_id": "b", "pass": "yes"}', ("field 'pass'",)),
    ("pass-1", '{"task_id": "b", "pass": 1}', ("field 'pass'",)),
    ("pass-null", '{"task_id": "b", "pass": null}', ("field 'pass'",)),
    ("trial-negative", '{"task_id": "b", "trial": -1, "pass": true}', ("field 'trial'", "greater than or equal to 0")),
    ("trial-fraction", '{"task_id": "b", "trial": 1.5, "pass": true}', ("field 'trial'",)),
    ("trial-huge", '{"task_id": "b", "trial": 99999999999999999999, "pass": true}', ("field 'trial'",)),
    ("score-2", '{"task_id": "b", "pass": true, "score": 2}', ("field 'score'", "less than or equal to 1")),
    ("score-negative", '{"task_id": "b", "pass": true, "score": -0.5}', ("field 'score'",)),
    ("score-infinity", '{"task_id": "b", "pass": true, "score": Infinity}', ("field 'score'",)),
    ("task-id-bool", '{"task_id": true, "pass": true}', ("field 'task_id'",)),
    ("task-id-float", '{"task_id": 1.5, "pass": true}', ("field 'task_id'",)),
    ("task-id-empty", '{"task_id": "", "pass": true}', ("field 'task_id'",)),
    ("task-id-null", '{"task_id": null, "pass": true}', ("field 'task_id'",)),
    ("two-objects", '{"task_id": "b", "pass": true} {"task_id": "c", "pass": true}', ("not JSON",)),
    ("split-object", '{"task_id": "b",\n"pass": true}', ("not JSON",)),
    ("line-separator-in-string", '{"task_id": "b\u2028c", "pass": true}', ("not JSON",)),
    ("byte-order-mark", '\ufeff{"task_id": "b", "pass": true}', ("not JSON",)),
    ("repeated-key", '{"task_id": "b", "pass": true, "pass": "no"}', ("field 'pass'",)),
]


@pytest.mark.parametrize(("bad", "needles"), [pytest.param(bad, needles, id=name) for name, bad, needles in BAD_LINES])
def test_a_bad_line_is_named_with_its_file_line_and_field(tmp_path: Path, bad: str, needles: tuple[str, ...]) -> None:
    after = [f'{{"task_id": "z", "trial": {trial}, "pass": true}}' for trial in range(50)]
    lines = [GOOD.strip(), "", '{"task_id": "a", "trial": 1, "pass": false}', bad, *after]
    path = write(tmp_path, "\n".join(lines) + "\n", name="bad.jsonl")
    with pytest.raises(UserError) as caught:
        load_results(path)
    message = str(caught.value)
    assert message.startswith(f"{path} line 4: "), message
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize("blank", ["", "  ", "\r"], ids=["lf", "spaces", "crlf"])
def test_a_repeated_task_and_trial_names_both_lines(tmp_path: Path, blank: str) -> None:
    rows = [f'{{"task_id": "t{i}", "trial": 0, "pass": true}}' for i in range(1000)]
    rows[700] = '{"task_id": "t123", "pass": false, "trial": 0}'
    text = "\n".join(rows[:500]) + "\n" + blank + "\n" + "\n".join(rows[500:]) + "\n"
    path = write(tmp_path, text, name="twice.jsonl")
    with pytest.raises(UserError) as caught:
        load_results(path)
    assert str(caught.value) == (
        f"{path} line 702: task 't123' trial 0 appears twice (first on line 124); give each run its own trial number"
    )


def test_a_repeat_made_by_a_default_trial(tmp_path: Path) -> None:
    path = write(tmp_path, '{"task_id": "a", "trial": 0, "pass": true}\n{"task_id": "a", "pass": false}\n')
    with pytest.raises(UserError, match=r"line 2: task 'a' trial 0 appears twice \(first on line 1\)"):
        load_results(path)


@pytest.mark.parametrize("text", ["", "\n", "  \n\n\t\n", "\r\n"], ids=["empty", "newline", "blanks", "crlf"])
def test_no_results_is_an_error(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UserError, match="no results; expected JSONL lines like") as caught:
        load_results(path)
    assert str(caught.value).startswith(f"{path}: ")


@pytest.mark.parametrize("where", [0, 5000], ids=["first-line", "far-in"])
def test_not_utf8_is_an_error_with_the_byte(tmp_path: Path, where: int) -> None:
    lines = [GOOD.replace('"a"', f'"t{i}"').encode() for i in range(200)]
    data = b"".join(lines)
    data = data[:where] + b'{"task_id": "caf\xe9", "pass": true}\n' + data[where:]
    path = write(tmp_path, data)
    with pytest.raises(UserError) as caught:
        load_results(path)
    assert str(caught.value) == (
        f"{path}: not UTF-8 text (invalid continuation byte at byte {where + 16}); save the file as UTF-8"
    )


def test_not_utf8_in_an_ignored_field_is_an_error_too(tmp_path: Path) -> None:
    path = write(tmp_path, b'{"task_id": "a", "pass": true, "note": "\xff"}\n')
    with pytest.raises(UserError, match="not UTF-8 text"):
        load_results(path)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such results file"):
        load_results(tmp_path / "nowhere.jsonl")


# ---- both paths agree on whatever a file holds ----------------------------------------------------

FIELD_VALUES = {
    "task_id": [
        '"a"',
        '"b"',
        "7",
        "-0",
        "1.5",
        "true",
        "null",
        '""',
        '"caf\u00e9"',
        '"x\\u2028y"',
        "99999999999999999999",
    ],
    "trial": ["0", "1", "2", "-1", "1.0", "1.5", '"1"', "true", "null", "1e2", "99999999999999999999", "NaN"],
    "pass": ["true", "false", '"yes"', "1", "null"],
    "score": ["0.5", "1", "0", "2", "-0.1", "NaN", "Infinity", "null", '"0.5"', "true", "1e400"],
    "x": ["1", '"s"', '{"a": [1, {"b": null}]}', "NaN", '"\\u00e9"'],
}


def random_line(rng: random.Random) -> str:
    """Mostly good lines; now and then a bad value, a repeated key, two objects, blanks, a split or blank line."""
    parts = []
    for key, values in FIELD_VALUES.items():
        if rng.random() < (0.95 if key in ("task_id", "pass") else 0.5):
            parts.append(f'"{key}": {rng.choice(values[:3]) if rng.random() < 0.97 else rng.choice(values)}')
    if rng.random() < 0.03:
        parts.append('"pass": false')
    rng.shuffle(parts)
    line = "{" + ", ".join(parts) + "}"
    shape = rng.random()
    if shape < 0.01:
        return f"  {line}\t"
    if shape < 0.02:
        return f"{line} {line}"
    if shape < 0.03:
        return line.replace(", ", ",\n", 1)
    return "" if shape < 0.04 else line


def outcome_of(path: Path, read: Callable[[Path], LoadedResults]) -> tuple[str, object, list[str] | None]:
    try:
        loaded = read(path)
    except UserError as exc:
        return "error", str(exc), None
    return "read", loaded.outcomes, loaded.notes


def test_both_paths_agree_on_random_files(tmp_path: Path) -> None:
    rng = random.Random(20261203)
    path = tmp_path / "random.jsonl"
    good = 0
    for _ in range(400):
        newline = rng.choice(["\n", "\n", "\r\n"])
        path.write_text(newline.join(random_line(rng) for _ in range(rng.randint(1, 8))) + newline, newline="")
        kind, value, notes = outcome_of(path, load_results)
        ref_kind, ref_value, ref_notes = outcome_of(path, results_file._read_per_line)
        assert (kind, notes) == (ref_kind, ref_notes), path.read_text()
        if kind == "error":
            assert value == ref_value, path.read_text()
        else:
            pd.testing.assert_frame_equal(value, ref_value)
            good += 1
    assert good > 30, "enough of the random files should be good ones"
