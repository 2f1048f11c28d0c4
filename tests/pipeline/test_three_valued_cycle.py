"""A real improvement cycle whose gate cannot decide: the verdict is inconclusive, the RC waits for a
person, `ratchet verify` re-derives the verdict from its outcome tables, and a person's promotion ends it.

The demo's simulated model has per-sample noise on a few tasks (its world file, `noise:`). With the
confirmation caps the gate had before verdict version 3 (11 a side, 7 for flaky tasks), one such task,
HumanEval/102, passes 9 of 9 baseline runs and 5 of 9 candidate runs and can be neither confirmed
nor cleared within its cap: the old rule promoted it, the three-valued one does not.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]


def git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(ws), *args], capture_output=True, text=True, check=True).stdout


def test_an_inconclusive_cycle_waits_for_a_person_and_re_derives(workspace: Path, cli) -> None:
    policy = workspace / "gates/default.yaml"
    policy.write_text(
        policy.read_text()
        .replace("confirmation_cap: 20", "confirmation_cap: 11")
        .replace("flaky_confirmation_cap: 11", "flaky_confirmation_cap: 7")
    )
    git(workspace, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "the caps of the old gate")

    out = cli("cycle", "--workspace", str(workspace))
    assert "INCONCLUSIVE" in out.output, out.output
    assert "waits for a person" in out.output
    ledger = [json.loads(line) for line in (workspace / "releases/coder/ledger.jsonl").read_text().splitlines()]
    assert ledger[-1]["decision"] == "inconclusive" and ledger[-1]["rc"] == "rc/coder/1"
    assert "coder/v2" not in git(workspace, "tag").split(), "an inconclusive candidate is never promoted"

    verdict = json.loads(git(workspace, "show", "rc/coder/1:releases/coder/rc-1/verdict.json"))
    assert verdict["version"] == 3 and verdict["sequential"] is True and verdict["decision"] == "inconclusive"
    (open_task,) = verdict["undecided"]
    assert open_task["task_id"] == "HumanEval/102" and verdict["undecided_count"] == 1
    assert verdict["fixes"] == 10, "the fixes were confirmed all the same"

    checked = cli("verify", "--workspace", str(workspace))
    assert checked.exit_code == 0, checked.output

    decided = cli("promote", "rc/coder/1", "--reason", "HumanEval/102 is a noisy task", "--actor", "Ada <ada@example.com>",
                  "--workspace", str(workspace))  # fmt: skip
    assert decided.exit_code == 0, decided.output
    assert "coder/v2" in git(workspace, "tag").split()
    after = cli("verify", "--workspace", str(workspace))
    assert after.exit_code == 0, after.output
