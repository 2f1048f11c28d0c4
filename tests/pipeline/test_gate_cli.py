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
    stable = {f"t{i}": [True] * 4 for i in range(10)} | {"hard": [False] * 4}
    write(tmp_path / "base.jsonl", stable | {"reg": [True] * 4, "noisy": [True, True, False, True]})
    write(tmp_path / "same.jsonl", stable | {"reg": [True] * 4, "noisy": [True, False, True, True]})
    write(tmp_path / "worse.jsonl", stable | {"reg": [False] * 4, "noisy": [False, True, False, False]})
    write(tmp_path / "better.jsonl", stable | {"reg": [True] * 4, "noisy": [True] * 4, "hard": [True] * 4})
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
    assert isinstance(cases["reg"].result[0], Failure) and "4/4" in cases["reg"].result[0].message
    assert isinstance(cases["noisy"].result[0], Skipped), "3/4 vs 1/4 is not enough evidence at alpha 0.05"
    assert isinstance(cases["verdict"].result[0], Failure)


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
