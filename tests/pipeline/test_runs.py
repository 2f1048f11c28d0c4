"""Real runs of the demo agent on the simulated model: the tool loop and the critic's blind view."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from ratchet.agents.artifact import load_artifact
from ratchet.agents.models import ModelClient
from ratchet.critics.detectors import detect
from ratchet.critics.view import blind_view
from ratchet.gates.evaluation import run_one
from ratchet.gates.run_store import RunKey
from ratchet.gates.suite import load_suite
from ratchet.pipeline.synthesis.edits import Edit, apply_edits

KEY = RunKey(artifact_hash="a", suite_hash="s", model_config_hash="m")


def artifact_with_self_test(workspace: Path) -> Path:
    root = workspace / "agents/coder"
    files = {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}
    edits = [
        Edit(enable_tool="python"),
        Edit(add_instruction="Before answering, test your code with the python tool and fix any error it shows."),
    ]
    for path, text in apply_edits("coder", files, edits).items():
        (workspace / path).write_text(text)
    return root


def test_agent_calls_the_python_tool_repairs_and_the_trace_holds_it(workspace: Path) -> None:
    artifact = load_artifact(artifact_with_self_test(workspace))
    task = load_suite(workspace, "humaneval").tasks["HumanEval/0"]  # the simulator forgets `from typing import List`
    client = ModelClient(artifact.spec.model, artifact.spec.model_params)

    record = asyncio.run(run_one(artifact, client, KEY, task, trial=0))
    trace = record.trace

    assert [c.name for c in trace.tool_calls] == ["python", "python"]
    assert trace.tool_calls[0].result.startswith("error: NameError: name 'List' is not defined")
    assert "from typing import List" not in trace.tool_calls[0].arguments["code"]
    assert "from typing import List" in trace.tool_calls[1].arguments["code"]
    assert trace.tool_calls[1].result.startswith("ok: ran 2 docstring example(s), all passed")
    roles = [m.role for m in trace.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert trace.messages[3].content == trace.tool_calls[0].result
    assert trace.messages[2].tool_calls[0].name == "python"
    assert len(trace.model_calls) == 3 and all(c.usage.completion_tokens > 0 for c in trace.model_calls)
    assert trace.usage.total_tokens == sum(c.usage.total_tokens for c in trace.model_calls)
    assert trace.simulated and trace.error is None
    assert record.outcome.passed, record.outcome.message


def test_blind_view_never_contains_the_artifact(workspace: Path) -> None:
    """Over real runs (with and without the tool), no line of any artifact file reaches the critic."""
    root = artifact_with_self_test(workspace)
    artifact = load_artifact(root)
    suite = load_suite(workspace, "humaneval")
    client = ModelClient(artifact.spec.model, artifact.spec.model_params)
    secrets = {
        line.strip()
        for path in root.rglob("*")
        if path.is_file()
        for line in path.read_text().splitlines()
        if len(line.strip()) >= 12
    }
    secrets |= {line.strip() for line in artifact.render("system").splitlines() if len(line.strip()) >= 12}
    secrets |= set(artifact.spec.instructions)
    assert len(secrets) > 20

    async def run_all() -> list:
        return await asyncio.gather(*(run_one(artifact, client, KEY, task, 0) for task in suite.split("dev")[:24]))

    records = asyncio.run(run_all())
    assert any(r.trace.tool_calls for r in records) and any(not r.outcome.passed for r in records)
    for record in records:
        view = blind_view(record.trace, suite.tasks[record.task_id], record.outcome)
        text = view.text()
        leaked = [s for s in secrets if s in text or json.dumps(s)[1:-1] in text]
        assert not leaked, f"{record.task_id}: {leaked[:3]}"
        assert view.task_input == suite.tasks[record.task_id].input
        report = detect(view)
        for symptom in report.symptoms:
            for quote in symptom.evidence:
                assert quote in text or json.dumps(quote)[1:-1] in text


def test_an_evaluation_bounds_work_sets_the_old_heap_aside_and_stores_every_run(workspace: Path) -> None:
    """concurrency bounds agent runs; the cyclic GC skips pre-existing objects only while runs are in flight."""
    import gc

    from ratchet.agents.artifact import ModelParams
    from ratchet.agents.providers.scripted import ScriptedProvider, ScriptedReply, register_scripted
    from ratchet.gates.evaluation import evaluate, run_key
    from ratchet.gates.run_store import RunStore

    artifact = load_artifact(workspace / "agents/coder")
    suite = load_suite(workspace, "humaneval")
    tasks = suite.split("dev")[:12]
    seen = {"in_flight": 0, "max_in_flight": 0, "frozen": []}

    client = ModelClient(
        register_scripted(
            "bounded", ScriptedProvider(lambda messages, tools: ScriptedReply(content="def f():\n    return 1\n"))
        ),
        ModelParams(),
    )
    complete = client.complete

    async def watched(*args, **kwargs):
        seen["in_flight"] += 1
        seen["max_in_flight"] = max(seen["max_in_flight"], seen["in_flight"])
        seen["frozen"].append(gc.get_freeze_count())
        await asyncio.sleep(0.01)
        try:
            return await complete(*args, **kwargs)
        finally:
            seen["in_flight"] -= 1

    client.complete = watched  # type: ignore[method-assign]
    store = RunStore(workspace / ".ratchet")
    before = gc.get_freeze_count()
    evaluation = asyncio.run(evaluate(artifact, client, suite, tasks, store, split="dev", concurrency=3))
    assert seen["max_in_flight"] == 3 and len(seen["frozen"]) == 12
    assert all(count > 0 for count in seen["frozen"]), "long-lived objects are frozen during the runs"
    assert gc.get_freeze_count() == before, "and handed back to the GC afterwards"
    assert evaluation.summary.runs == 12 and len(store.load(run_key(artifact, suite, client))) == 12
