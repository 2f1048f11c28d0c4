"""The LLM synthesizer (scripted model) through the real Prefect flow: guarded proposals and meta-edits."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from ratchet.agents.providers.scripted import ScriptedProvider, ScriptedReply, register_scripted
from ratchet.pipeline.flows import improve_cycle
from ratchet.pipeline.synthesis.llm import PROMPT_FILE
from ratchet.pipeline.workspace import demo_files
from ratchet.releases.registry import Registry, initialize

pytestmark = pytest.mark.usefixtures("prefect_server")
MARKER = "PROCEDURE v2: prefer testing over rewording."
BUILTIN = (Path(__file__).parents[2] / "pipeline/synthesis/templates/synthesizer.md.j2").read_text()


def git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(ws), *args], check=True, capture_output=True, text=True).stdout


def critic(messages, tools):
    prompt = next(m["content"] for m in messages if m["role"] == "user")
    final = prompt.split("--- final output ---\n", 1)[1].splitlines()[0]
    label = "wrong_answer" if final.startswith(("def ", "from ", "import ", "    ")) else "non_code_output"
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


def llm_workspace(path: Path, model: str, with_critic: bool = False) -> Path:
    files = demo_files()
    meta = yaml.safe_load(files["agents/coder/meta/synthesizer.yaml"])
    meta.update(strategies=["llm", "playbook"], llm={"model": model, "samples": 2})
    files["agents/coder/meta/synthesizer.yaml"] = yaml.safe_dump(meta).encode()
    if with_critic:
        register_scripted("synth-test-critic", ScriptedProvider(critic))
        files["ratchet.toml"] += b'critic_model = "scripted/synth-test-critic"\n'
    initialize(path, files, ["coder"], "test workspace")
    return path


def reply(value: dict) -> ScriptedReply:
    return ScriptedReply(content=json.dumps(value))


CODE_ONLY = {
    "remediation": "bare-code",
    "targets": ["non_code_output"],
    "intent": "Answer with bare code so the tests can run it; remember what was tried.",
    "edits": [
        {"add_instruction": "Return only the Python code of the function, without markdown fences."},
        {"write_file": {"path": "meta/prompts/synthesizer.md.j2", "content": MARKER + "\n\n" + BUILTIN}},
        {"write_file": {"path": "meta/memory.md", "content": "- bare-code: asked for code only\n"}},
    ],
}
SELF_TEST = {
    "remediation": "self-test",
    "targets": ["wrong_answer"],
    "intent": "Let the agent run its code with the python tool before answering.",
    "edits": [
        {"enable_tool": "python"},
        {"add_instruction": "Before answering, test your code with the python tool and fix any error it shows."},
    ],
}


def test_a_meta_edit_is_promoted_and_the_next_cycle_uses_the_edited_procedure(tmp_path: Path) -> None:
    prompts: list[str] = []

    def synthesizer(messages, tools):
        prompt = next(m["content"] for m in messages if m["role"] == "user")
        prompts.append(prompt)
        return reply(SELF_TEST if MARKER in prompt else CODE_ONLY)

    register_scripted("meta-synth", ScriptedProvider(synthesizer))
    ws = llm_workspace(tmp_path / "ws", "scripted/meta-synth", with_critic=True)

    first = improve_cycle(str(ws), "coder")
    assert first.decision == "promote" and first.new_tag == "coder/v2"
    assert len(prompts) == 1 and MARKER not in prompts[0] and "agent.yaml" in prompts[0], "it sees the artifact"
    intent = json.loads(git(ws, "show", "coder/v2:releases/coder/rc-1/intent.json"))
    assert intent["strategy"] == "llm" and intent["remediation"] == "bare-code"
    assert intent["synthesis_call"]["source"] == "sample"
    critic_calls = git(ws, "show", "coder/v2:releases/coder/rc-1/critic-calls.jsonl").splitlines()
    assert critic_calls and all(json.loads(c)["source"] == "sample" for c in critic_calls), "the LLM critic ran"
    assert "## Engineering spec" in prompts[0] or "non_code_output" in prompts[0], "it got the critic's diagnosis"
    notes = git(ws, "show", "coder/v2:releases/coder/rc-1/notes.md")
    assert "Meta-edits" in notes and "meta/prompts/synthesizer.md.j2" in notes and "meta/memory.md" in notes
    assert MARKER in (ws / "agents/coder" / PROMPT_FILE).read_text(), "the procedure edit is on main"

    second = improve_cycle(str(ws), "coder")
    assert len(prompts) == 2 and MARKER in prompts[1], "RC 2 was made by release v2's own procedure"
    assert "bare-code: asked for code only" in prompts[1], "and it reads its memory"
    assert "rc/coder/1 `bare-code`: promote (fixes" in prompts[1], "and what the gate did"
    assert second.decision == "promote" and second.new_tag == "coder/v3"
    assert [e.remediation for e in Registry(ws).ledger("coder")][1:] == ["bare-code", "self-test"]


def test_a_patch_outside_the_edit_surface_is_refused_and_the_playbook_takes_over(tmp_path: Path) -> None:
    suite_attack = {
        "remediation": "easier-tests",
        "targets": ["non_code_output"],
        "intent": "Make the tests pass by editing them.",
        "edits": [{"write_file": {"path": "../../suites/humaneval/suite.yaml", "content": "tasks: []\n"}}],
    }
    provider = ScriptedProvider([reply(suite_attack), reply(suite_attack)])
    register_scripted("attack-synth", provider)
    ws = llm_workspace(tmp_path / "ws", "scripted/attack-synth")

    result = improve_cycle(str(ws), "coder")
    assert len(provider.requests) == 2, "both samples were drawn and refused"
    intent = json.loads(git(ws, "show", "rc/coder/1:releases/coder/rc-1/intent.json"))
    assert intent["strategy"] == "playbook" and intent["remediation"] == "code-only-output"
    assert result.decision == "promote"
    assert git(ws, "diff", "coder/v1", "coder/v2", "--stat", "--", "suites").strip() == ""
