"""`ratchet gate` from a shell script, as a CI job would run it: exit codes, JSON, JUnit XML."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from junitparser import Failure, JUnitXml, Skipped

SCRIPT = """\
set -u
ratchet() {{ "{python}" -m pipeline.cli "$@"; }}
ratchet gate --baseline base.jsonl --candidate {candidate} {extra}
echo "exit=$?"
"""


def write(path: Path, rows: dict[str, list[bool]]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"task_id": task, "trial": k, "pass": ok}) + "\n"
            for task, outcomes in rows.items()
            for k, ok in enumerate(outcomes)
        )
    )
    return path


def gate(tmp_path: Path, candidate: str, extra: str = "") -> tuple[int, str]:
    script = tmp_path / "ci.sh"
    script.write_text(SCRIPT.format(python=sys.executable, candidate=candidate, extra=extra))
    root = Path(__file__).parents[2]
    done = subprocess.run(
        ["bash", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "HOME": str(tmp_path)},
    )
    code = int(done.stdout.strip().splitlines()[-1].removeprefix("exit="))
    return code, done.stdout + done.stderr


def test_exit_codes_json_and_junit(tmp_path: Path) -> None:
    stable = {f"t{i}": [True] * 6 for i in range(10)} | {"hard": [False] * 6}
    write(tmp_path / "base.jsonl", stable | {"reg": [True] * 6, "noisy": [True, True, False, True, True, True]})
    write(tmp_path / "same.jsonl", stable | {"reg": [True] * 6, "noisy": [True] * 6})
    write(tmp_path / "worse.jsonl", stable | {"reg": [False] * 6, "noisy": [False, True, False, False, True, True]})
    write(tmp_path / "better.jsonl", stable | {"reg": [True] * 6, "noisy": [True] * 6, "hard": [True] * 6})
    (tmp_path / "held.yaml").write_text("min_fixes: 1\nrequire_manual_approval: true\n")

    code, out = gate(tmp_path, "same.jsonl")
    assert code == 0 and "PROMOTE" in out
    code, out = gate(tmp_path, "worse.jsonl", "--junit report.xml")
    assert code == 1 and "REJECT" in out and "reg" in out
    code, out = gate(tmp_path, "better.jsonl", "--policy held.yaml --json")
    assert code == 2
    payload = json.loads(out[: out.rindex("}") + 1])
    assert payload["verdict"]["decision"] == "hold" and payload["verdict"]["fixes"] == 1
    assert {f["task_id"]: f["flip"] for f in payload["flips"]} == {"hard": "fix"}

    suite = next(iter(JUnitXml.fromfile(str(tmp_path / "report.xml"))))
    cases = {case.name: case for case in suite}
    assert set(cases) == {"reg", "noisy", "verdict"}
    assert isinstance(cases["reg"].result[0], Failure) and "6/6" in cases["reg"].result[0].message
    assert isinstance(cases["noisy"].result[0], Skipped) and "undecided" in cases["noisy"].result[0].message
    assert isinstance(cases["verdict"].result[0], Failure)


def test_a_deterministic_regression_is_never_promoted_at_any_trial_count(tmp_path: Path) -> None:
    """1/1 -> 0/1, 2/2 -> 0/2 and 3/3 -> 0/3 used to PROMOTE: now inconclusive (exit 2) with the trials
    per side that would settle it; from enough trials on, rejected."""
    for trials, expected in ((1, 2), (2, 2), (3, 2), (6, 1)):
        stable = {f"t{i}": [True] * trials for i in range(10)}
        write(tmp_path / "base.jsonl", stable | {"broke": [True] * trials})
        write(tmp_path / f"cand{trials}.jsonl", stable | {"broke": [False] * trials})
        code, out = gate(tmp_path, f"cand{trials}.jsonl", "--json")
        verdict = json.loads(out[: out.rindex("}") + 1])["verdict"]
        assert code == expected, (trials, out)
        if expected == 2:
            assert verdict["decision"] == "inconclusive" and verdict["undecided_count"] == 1
            (open_task,) = verdict["undecided"]
            assert open_task["task_id"] == "broke" and open_task["baseline"] == f"{trials}/{trials}"
            assert open_task["more_trials"] is not None and open_task["more_trials"] >= 1
        else:
            assert verdict["decision"] == "reject" and verdict["regressions"] == 1


def test_missing_candidate_tasks_are_named_and_never_promoted(tmp_path: Path) -> None:
    stable = {f"t{i}": [True] * 3 for i in range(10)}
    write(tmp_path / "base.jsonl", stable | {"crashed": [True] * 3, "also": [True] * 3})
    write(tmp_path / "partial.jsonl", stable | {"extra": [True] * 3})
    code, out = gate(tmp_path, "partial.jsonl")
    assert code == 2 and "INCONCLUSIVE" in out
    assert "no result for 2 task(s) the baseline ran: also, crashed" in " ".join(out.split())
    assert "only in the candidate" in out and "extra" in out
    (tmp_path / "strict.yaml").write_text("missing_tasks: reject\n")
    code, out = gate(tmp_path, "partial.jsonl", "--policy strict.yaml --json")
    verdict = json.loads(out[: out.rindex("}") + 1])["verdict"]
    assert code == 1 and verdict["decision"] == "reject" and verdict["missing_tasks"] == ["also", "crashed"]


def test_the_table_shows_the_worst_tasks_and_the_counts(tmp_path: Path) -> None:
    stable = {f"t{i:03}": [True] * 6 for i in range(300)}
    worse = {f"t{i:03}": [False] * 6 if i < 40 else [True] * 6 for i in range(300)}
    write(tmp_path / "base.jsonl", stable)
    write(tmp_path / "many.jsonl", worse)
    code, out = gate(tmp_path, "many.jsonl", "--top 5")
    assert code == 1
    assert "40 changed or undecided (the worst 5 shown; --top N for more)" in out
    assert "confirmed regressions 40" in out
    assert sum(line.strip().startswith("t0") for line in out.splitlines()) == 5


def test_bad_input_exits_3_with_the_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "base.jsonl", {"a": [True]})
    (tmp_path / "broken.jsonl").write_text(
        '{"task_id": "a", "trial": 0, "pass": true}\n{"task_id": "a", "pass": "yes"}\n'
    )
    code, out = gate(tmp_path, "broken.jsonl")
    assert code == 3 and "broken.jsonl line 2" in out and "pass" in out
    code, out = gate(tmp_path, "missing.jsonl")
    assert code == 3 and "no such results file" in out
    (tmp_path / "twice.jsonl").write_text('{"task_id": "a", "trial": 0, "pass": true}\n' * 2)
    code, out = gate(tmp_path, "twice.jsonl")
    assert code == 3 and "appears twice" in out


def test_versions_are_read_from_the_run_store(workspace: Path, cli) -> None:
    base = ["gate", "--baseline", "coder/v1", "--candidate", "coder/v1", "--workspace", str(workspace), "--json"]
    out = cli(*base)
    assert out.exit_code == 3 and "coder/v1: no stored runs on humaneval/gate" in out.output
    assert cli("eval", "coder/v1", "--split", "gate", "--trials", "2", "--workspace", str(workspace)).exit_code == 0
    out = cli(*base)
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output[out.output.index("{") : out.output.rindex("}") + 1])
    assert payload["verdict"]["decision"] == "promote" and payload["flips"] == []
    assert payload["verdict"]["baseline_pass_rate"] == payload["verdict"]["candidate_pass_rate"]
    out = cli("gate", "--baseline", "coder/v9", "--candidate", "coder/v1", "--workspace", str(workspace))
    assert out.exit_code == 3 and "coder/v9" in out.output
