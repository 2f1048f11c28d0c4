"""The recorded start of a gate's confirmation is written whole once and then read back, never recomputed."""

from __future__ import annotations

from pathlib import Path

from ratchet.pipeline.confirmation_start import ConfirmationStart, load_or_record, start_path


def test_the_first_start_is_recorded_and_a_restart_replays_it(tmp_path: Path) -> None:
    path = start_path(tmp_path, "base", "cand", "gate")
    calls: list[int] = []

    def compute(n: int) -> ConfirmationStart:
        calls.append(n)
        return ConfirmationStart(baseline={"t1": n}, candidate={"t1": 2}, flaky=["t1"])

    first = load_or_record(path, lambda: compute(2))
    again = load_or_record(path, lambda: compute(5))  # a restart, with more runs stored by then
    assert first == again and again.baseline == {"t1": 2} and calls == [2]
    assert path.name == "base--cand--gate.json" and not list(tmp_path.rglob("*.partial"))


def test_an_unreadable_record_is_recomputed(tmp_path: Path) -> None:
    path = start_path(tmp_path, "b", "c", "holdout")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    start = load_or_record(path, lambda: ConfirmationStart(baseline={}, candidate={}))
    assert ConfirmationStart.model_validate_json(path.read_text()) == start
