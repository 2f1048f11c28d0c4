"""The built-in TQB++ core suite and the simulated QA model that answers it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ratchet.agents.providers import sim_qa
from ratchet.gates.suite import TQBPP_CORE, builtin_tqbpp_tasks, load_suite
from ratchet.gates.task import ExactMatchVerifier
from ratchet.gates.verifier import verify
from ratchet.pipeline.workspace import demo_files


def test_the_suite_ships_all_52_items_with_their_licence() -> None:
    tasks = builtin_tqbpp_tasks()
    assert len(tasks) == 52 and len({t.id for t in tasks}) == 52
    assert all(t.id.startswith("tqb/") and isinstance(t.verifier, ExactMatchVerifier) for t in tasks)
    licence = (TQBPP_CORE.parent / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence
    paris = next(t for t in tasks if "capital of France" in t.input)
    assert "Its capital is Paris." in paris.input and paris.verifier.expected == ["Paris"]


def test_normalized_exact_match_accepts_the_answer_in_any_harmless_form() -> None:
    paris = next(t for t in builtin_tqbpp_tasks() if "capital of France" in t.input)
    for answer, passed in (
        ("Paris", True),
        ("paris.", True),
        ('"Paris"', True),
        ("The Paris", True),
        ("The answer is Paris.", False),
        ("Lyon", False),
    ):
        assert asyncio.run(verify(paris, answer)).passed is passed, answer


def test_the_demo_workspace_has_the_smoke_suite_with_pinned_splits(tmp_path: Path) -> None:
    for rel, data in demo_files().items():
        if rel.startswith("suites/tqb/"):
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_bytes(data)
    suite = load_suite(tmp_path, "tqb")
    assert sum(len(ids) for ids in suite.splits.values()) == 52


def test_the_simulated_qa_model_follows_its_documented_rules() -> None:
    world = sim_qa.load_qa_world("tqb")
    items = sim_qa.knowledge(world)
    assert len(items) == 52
    verbose = [i for i in items if "verbose" in sim_qa.plan_faults(world, i, frozenset())]
    assert 0.15 * 52 < len(verbose) < 0.45 * 52, "about 30% of the items, seeded"
    item = verbose[0]
    assert sim_qa.answer(world, item, frozenset()).startswith("The answer to the question is ")
    assert sim_qa.answer(world, item, frozenset({"brief"})) == item.answer, "told to be brief it answers bare"
    leaks = [i for i in items if "reasoning_leak" in sim_qa.plan_faults(world, i, frozenset({"brief", "step_by_step"}))]
    assert leaks and all("reasoning_leak" not in sim_qa.plan_faults(world, i, frozenset({"brief"})) for i in leaks)
    assert sim_qa.find_item(world, "Question: " + item.question) == item
    assert sim_qa.find_item(world, "def add(a, b):") is None


def test_noise_needs_a_seed_and_differs_between_samples() -> None:
    world = sim_qa.load_qa_world("tqb")
    noisy = [
        i
        for i in sim_qa.knowledge(world)
        if sim_qa.draw(world.seed, f"noise{world.noise.seed}", i.item_id) < world.noise.share
    ]
    assert noisy, "the seeded share picks some items"
    item = noisy[0]
    assert "wrong_value" not in sim_qa.plan_faults(world, item, frozenset({"brief"}))
    answers = {sim_qa.answer(world, item, frozenset({"brief"}), sample=str(s)) for s in range(40)}
    assert answers == {item.answer, f"not {item.answer}"}
