"""The LLM critic over real runs of the demo agent, with scripted critic replies."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from ratchet.agents.artifact import ModelParams, load_artifact
from ratchet.agents.models import ModelClient
from ratchet.agents.providers.scripted import ScriptedProvider, ScriptedReply, register_scripted
from ratchet.critics.llm_critic import critic_contract, llm_critique, render_view
from ratchet.critics.view import blind_view
from ratchet.gates.evaluation import run_one
from ratchet.gates.run_store import RunKey
from ratchet.gates.suite import load_suite

KEY = RunKey(artifact_hash="a", suite_hash="s", model_config_hash="m")


def failed_views(workspace: Path, count: int = 6) -> list:
    artifact = load_artifact(workspace / "agents/coder")
    suite = load_suite(workspace, "humaneval")
    client = ModelClient(artifact.spec.model, artifact.spec.model_params)

    async def run_all() -> list:
        return await asyncio.gather(*(run_one(artifact, client, KEY, t, 0) for t in suite.split("dev")[:20]))

    records = [r for r in asyncio.run(run_all()) if not r.outcome.passed]
    assert len(records) >= count
    return [blind_view(r.trace, suite.tasks[r.task_id], r.outcome) for r in records[:count]]


def critic(name: str, script) -> tuple[ModelClient, ScriptedProvider]:
    provider = ScriptedProvider(script)
    return ModelClient(register_scripted(name, provider), ModelParams(temperature=0.0)), provider


def test_a_grounded_report_is_accepted_and_an_ungrounded_one_is_not(workspace: Path) -> None:
    view = failed_views(workspace, 1)[0]
    quote = view.final_output.strip().splitlines()[0]
    grounded = {
        "symptoms": [{"label": "wrong_answer", "new_label": False, "description": "tests fail", "evidence": [quote]}]
    }
    invented = {
        "symptoms": [
            {
                "label": "wrong_answer",
                "new_label": False,
                "description": "tests fail",
                "evidence": ["the agent clearly forgot to think"],
            }
        ]
    }
    client, _ = critic("critic-grounded", [ScriptedReply(content=json.dumps(grounded))])
    report, record = asyncio.run(llm_critique(client, view))
    assert report.source == "llm" and record.source == "sample"
    assert report.symptoms[0].evidence == [quote] and report.symptoms[0].detector == "llm-critic"

    client, _ = critic("critic-ungrounded", [ScriptedReply(content=json.dumps(invented))] * 3)
    report, record = asyncio.run(llm_critique(client, view))
    assert record.source == "computed_fallback", "the detectors' report replaces the invented quotes"
    assert [f.clause for s in record.samples for f in s.failures] == ["grounded"] * 3
    assert report.source == "detectors" and report.symptoms
    text = render_view(view)
    assert all(q in text for s in report.symptoms for q in s.evidence)


def test_a_new_label_must_be_flagged(workspace: Path) -> None:
    view = failed_views(workspace, 1)[0]
    quote = view.verifier_message[:20]
    unflagged = {"symptoms": [{"label": "weird_output", "new_label": False, "description": "odd", "evidence": [quote]}]}
    flagged = {"symptoms": [{"label": "weird_output", "new_label": True, "description": "odd", "evidence": [quote]}]}
    client, _ = critic(
        "critic-labels", [ScriptedReply(content=json.dumps(unflagged)), ScriptedReply(content=json.dumps(flagged))]
    )
    report, record = asyncio.run(llm_critique(client, view))
    assert [f.clause for f in record.samples[0].failures] == ["known_or_flagged"]
    assert report.symptoms[0].label == "weird_output" and report.symptoms[0].new_label


def test_the_critic_prompt_holds_nothing_from_the_artifact(workspace: Path) -> None:
    """What the model receives, byte for byte, contains no line of any artifact file or rendered prompt."""
    root = workspace / "agents/coder"
    artifact = load_artifact(root)
    secrets = {
        line.strip()
        for path in root.rglob("*")
        if path.is_file()
        for line in path.read_text().splitlines()
        if len(line.strip()) >= 12
    }
    secrets |= {line.strip() for line in artifact.render("system").splitlines() if len(line.strip()) >= 12}
    secrets |= set(artifact.spec.instructions)
    assert len(secrets) > 10
    client, provider = critic("critic-prompt", lambda messages, tools: ScriptedReply(content='{"symptoms": []}'))
    for view in failed_views(workspace):
        asyncio.run(llm_critique(client, view))
    assert len(provider.requests) >= 6
    for request in provider.requests:
        sent = json.dumps(request["messages"])
        leaked = [s for s in secrets if s in sent or json.dumps(s)[1:-1] in sent]
        assert not leaked, leaked[:3]


def test_the_critic_contract_loads_and_passing_runs_cost_nothing(workspace: Path) -> None:
    contract = critic_contract()
    assert set(contract.clauses) == {"known_or_flagged", "new_is_new", "grounded"}
    view = failed_views(workspace, 1)[0].model_copy(update={"passed": True, "error_type": None})
    client, provider = critic("critic-passing", [])
    report, record = asyncio.run(llm_critique(client, view))
    assert record is None and report.symptoms == [] and provider.requests == []
