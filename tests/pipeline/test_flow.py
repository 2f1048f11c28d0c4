"""The improvement cycle through the real Prefect flow on a real git workspace."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from git import Repo

from ratchet.pipeline.flows import improve_cycle
from ratchet.pipeline.workspace import demo_files
from ratchet.releases.registry import Registry, initialize

pytestmark = pytest.mark.usefixtures("prefect_server")


def git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(ws), *args], check=True, capture_output=True, text=True).stdout


def make_workspace(path: Path, edit: dict[str, bytes]) -> Path:
    files = demo_files()
    files.update(edit)
    initialize(path, files, ["coder"], "test workspace")
    return path


def test_one_cycle_promotes_and_records_everything(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    state = improve_cycle(str(workspace), "coder", return_state=True)
    assert state.is_completed()
    result = state.result()

    assert result.status == "decided" and result.decision == "promote"
    assert result.simulated and result.model == "sim/humaneval"
    assert result.patterns[0][0] == "non_code_output"
    assert result.counts["F->P"] >= 1 and result.counts["P->F"] == 0
    unconfirmed = result.counts["F->P"] - result.confirmed["F->P"]
    assert 0 <= unconfirmed <= 2, "every real fix confirms; only a task with per-sample noise may stay unconfirmed"
    assert result.trials == 2 and result.in_doubt >= result.counts["F->P"] and result.confirmation_runs > 0
    assert result.new_tag == "coder/v2"
    assert result.gate_pass_rate > result.baseline_gate_pass_rate

    tags = git(workspace, "tag").split()
    assert tags == ["coder/v1", "coder/v2"]
    assert git(workspace, "status", "--porcelain") == ""
    parents = git(workspace, "log", "-1", "--format=%P", "coder/v2").split()
    assert len(parents) == 2, "a promotion is a merge of the RC branch"
    agent = yaml.safe_load((workspace / "agents/coder/agent.yaml").read_text())
    assert any("only the Python code" in line for line in agent["instructions"]), "working tree follows main"

    entries = Registry(workspace).ledger("coder")
    assert [e.decision for e in entries] == ["release", "promote"]
    assert entries[1].release == "coder/v2" and entries[1].fixes == result.confirmed["F->P"]
    evidence = git(workspace, "ls-tree", "--name-only", "coder/v2", "releases/coder/rc-1/").split()
    for name in (
        "spec.md",
        "spec.json",
        "symptoms.csv",
        "flips.csv",
        "verdict.json",
        "notes.md",
        "outcomes-baseline-gate.csv",
        "outcomes-candidate-gate.csv",
        "intent.json",
    ):
        assert f"releases/coder/rc-1/{name}" in evidence
    flips_csv = git(workspace, "show", "coder/v2:releases/coder/rc-1/flips.csv")
    assert "confirmed" in flips_csv.splitlines()[0] and "p_value" in flips_csv.splitlines()[0]
    verdict = json.loads(git(workspace, "show", "coder/v2:releases/coder/rc-1/verdict.json"))
    assert verdict["decision"] == "promote"
    assert "coder/v2" in git(workspace, "tag", "-n1", "coder/v2")

    # no secret anywhere: run store, working tree, git history
    assert secret not in git(workspace, "log", "-p", "--all")
    for path in workspace.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert secret.encode() not in path.read_bytes(), path


def test_rc_touching_gates_is_rejected_before_evaluation(tmp_path: Path) -> None:
    playbook = {
        "remediations": [
            {
                "id": "loosen-the-gate",
                "targets": ["non_code_output"],
                "intent": "Make the gate easier to pass.",
                "edits": [{"write_file": {"path": "../../gates/default.yaml", "content": "max_regressions: 99\n"}}],
            }
        ],
    }
    ws = make_workspace(tmp_path / "ws", {"agents/coder/meta/playbook.yaml": yaml.safe_dump(playbook).encode()})
    before = (ws / "gates/default.yaml").read_text()

    result = improve_cycle(str(ws), "coder")

    assert result.decision == "reject" and result.stage == "validate"
    assert "protected path" in result.reasons[0] and "gates/default.yaml" in result.reasons[0]
    assert result.counts == {} and result.gate_pass_rate is None
    runs = list((ws / ".ratchet" / "runs").glob("*.jsonl"))
    assert len(runs) == 1, "only the dev run of coder/v1 happened: nothing was evaluated on the gate split"
    assert (ws / "gates/default.yaml").read_text() == before
    assert git(ws, "show", "main:gates/default.yaml") == before
    assert "coder/rc1-rejected" in git(ws, "tag").split()
    entry = Registry(ws).ledger("coder")[-1]
    assert entry.decision == "reject" and "protected path" in entry.reason


def test_held_candidate_takes_a_manual_decision(tmp_path: Path, cli) -> None:
    policy = b"trials: 1\nmax_regressions: 0\nmin_fixes: 1\nrequire_manual_approval: true\n"
    ws = make_workspace(tmp_path / "ws", {"gates/default.yaml": policy})

    held = improve_cycle(str(ws), "coder")
    assert held.decision == "hold" and held.new_tag is None
    assert git(ws, "tag").split() == ["coder/v1"]

    out = cli("promote", "rc/coder/1", "--reason", "checked the flips", "--workspace", str(ws))
    assert out.exit_code == 2 and "--actor" in out.output, "no git identity: the CLI asks who decides"
    out = cli(
        "promote",
        "rc/coder/1",
        "--reason",
        "checked the flips",
        "--actor",
        "Ada Lovelace <ada@example.com>",
        "--workspace",
        str(ws),
    )
    assert out.exit_code == 0, out.output
    assert "coder/v2" in git(ws, "tag").split()
    with Repo(ws) as repo:
        tagger = repo.tags["coder/v2"].tag.tagger
    assert tagger.name == "Ada Lovelace"
    entry = Registry(ws).ledger("coder")[-1]
    assert entry.decision == "manual_promote" and entry.actor == "Ada Lovelace <ada@example.com>"
    assert entry.reason == "checked the flips"

    again = cli(
        "promote", "rc/coder/1", "--reason", "twice", "--actor", "Ada <ada@example.com>", "--workspace", str(ws)
    )
    assert again.exit_code == 4 and "not on hold" in again.output

    held2 = improve_cycle(str(ws), "coder")
    assert held2.decision == "hold"
    out = cli(
        "reject", held2.rc, "--reason", "not convinced", "--actor", "Grace <grace@example.com>", "--workspace", str(ws)
    )
    assert out.exit_code == 0, out.output
    assert Registry(ws).ledger("coder")[-1].decision == "manual_reject"
    assert "coder/rc2-rejected" in git(ws, "tag").split()


def test_a_cycle_with_the_llm_critic_uses_its_symptoms(tmp_path: Path) -> None:
    """ratchet.toml names a critic model; its grounded reports (scripted here) drive the diagnosis."""
    from ratchet.agents.providers.scripted import ScriptedProvider, ScriptedReply, register_scripted

    def critic(messages, tools):
        prompt = next(m["content"] for m in messages if m["role"] == "user")
        final = prompt.split("--- final output ---\n", 1)[1].splitlines()[0]
        code_like = final.startswith(("def ", "from ", "import ", "    "))
        label = "wrong_answer" if code_like else "non_code_output"
        quote = final if len(final) >= 3 else prompt.split("--- verifier: ", 1)[1].splitlines()[0]
        return ScriptedReply(
            content=json.dumps(
                {
                    "symptoms": [
                        {"label": label, "new_label": False, "description": "seen from outside", "evidence": [quote]}
                    ]
                }
            )
        )

    provider = ScriptedProvider(critic)
    register_scripted("cycle-critic", provider)
    settings = demo_files()["ratchet.toml"] + b'critic_model = "scripted/cycle-critic"\n'
    ws = make_workspace(tmp_path / "ws", {"ratchet.toml": settings})
    result = improve_cycle(str(ws), "coder")

    symptom_rows = git(ws, "show", "coder/v2:releases/coder/rc-1/symptoms.csv").splitlines()[1:]
    assert symptom_rows and len(provider.requests) == len(symptom_rows), "one call (one symptom) per failed run"
    labels = {row.split(",")[2] for row in symptom_rows}
    assert labels <= {"wrong_answer", "non_code_output"}, "every report is the critic's, none the detectors'"
    calls = [
        json.loads(line) for line in git(ws, "show", "coder/v2:releases/coder/rc-1/critic-calls.jsonl").splitlines()
    ]
    assert len(calls) == len(symptom_rows) and all(c["source"] == "sample" and len(c["samples"]) == 1 for c in calls)
    assert result.patterns[0][0] == "non_code_output"
    assert result.decision == "promote" and result.new_tag == "coder/v2"


def test_intent_coverage_and_a_gated_holdout(tmp_path: Path) -> None:
    """An RC whose fixes are not the symptoms it claimed to target is rejected under min_intent_coverage;
    an honest one passes, with the holdout split gated too."""
    strict = b"min_fixes: 1\nmin_intent_coverage: 0.8\nholdout: gate\n"
    honest = make_workspace(tmp_path / "honest", {"gates/default.yaml": strict})
    result = improve_cycle(str(honest), "coder")
    assert result.decision == "promote"
    verdict = json.loads(git(honest, "show", "coder/v2:releases/coder/rc-1/verdict.json"))
    assert verdict["intent_coverage"] == 1.0 and verdict["holdout_regressions"] == 0

    misdirected = yaml.safe_dump(
        {
            "remediations": [
                {
                    "id": "misdirected",
                    "targets": ["wrong_answer"],
                    "intent": "Claims to fix logic errors.",
                    "edits": [
                        {
                            "add_instruction": "Return only the Python code of the complete function, without markdown "
                            "fences or explanations."
                        }
                    ],
                }
            ]
        }
    ).encode()
    liar = make_workspace(
        tmp_path / "liar", {"gates/default.yaml": strict, "agents/coder/meta/playbook.yaml": misdirected}
    )
    result = improve_cycle(str(liar), "coder")
    assert result.decision == "reject" and result.remediation == "misdirected"
    assert any("intent does not explain its fixes" in reason for reason in result.reasons)
