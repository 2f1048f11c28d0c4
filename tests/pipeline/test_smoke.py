"""The smoke check before the gate: TQB++ on both sides, a tripwire for broken candidates."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from ratchet.gates.smoke import SmokeCheck
from ratchet.pipeline.flows import improve_cycle
from ratchet.pipeline.workspace import demo_files
from ratchet.releases.registry import Registry, initialize

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_the_check_allows_a_drop_up_to_the_policy_and_no_more() -> None:
    check = SmokeCheck(suite="tqb", model="m", tasks=52, baseline_passed=52, candidate_passed=39, max_drop=0.25)
    assert check.passed and check.drop == pytest.approx(0.25)
    assert not check.model_copy(update={"candidate_passed": 38}).passed
    assert check.summary() == "smoke suite tqb: 52/52 -> 39/52 (drop 25.0 points, allowed 25)"


def test_a_candidate_that_breaks_the_smoke_suite_is_rejected_before_the_gate(tmp_path: Path) -> None:
    # "complete-answers" drops "Keep your answer brief.": the simulated QA model then answers a
    # seeded 30% of the TQB++ items in a full sentence, which exact match refuses
    playbook = {
        "remediations": [
            {
                "id": "complete-answers",
                "targets": ["non_code_output"],
                "intent": "Stop asking for brevity.",
                "edits": [{"remove_instruction": "Keep your answer brief."}],
            }
        ]
    }
    files = demo_files()
    files["agents/coder/meta/playbook.yaml"] = yaml.safe_dump(playbook).encode()
    ws = tmp_path / "ws"
    initialize(ws, files, ["coder"], "test workspace")

    result = improve_cycle(str(ws), "coder")

    assert result.decision == "reject" and result.stage == "smoke"
    assert result.smoke is not None and result.smoke.startswith("smoke suite tqb: 52/52 -> ")
    assert result.counts == {} and result.gate_pass_rate is None, "the gate split was never evaluated"
    entry = Registry(ws).ledger("coder")[-1]
    assert entry.decision == "reject" and entry.reason.startswith("smoke suite tqb")
    smoke = json.loads(
        subprocess.run(
            ["git", "-C", str(ws), "show", "rc/coder/1:releases/coder/rc-1/smoke.json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert smoke["tasks"] == 52 and smoke["baseline_passed"] - smoke["candidate_passed"] > 0.25 * 52
